"""Converse tool use through boto3: forced and automatic calls, the tool result round trip, streamed toolUse
blocks, structured text output, and Bedrock's ValidationExceptions for inconsistent tool requests."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from botocore.exceptions import ClientError
from conftest import HAIKU, make_client, user

TOOL_USE_ID = re.compile(r"tooluse_[A-Za-z0-9_-]{22}")

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
}
WEATHER = {"toolSpec": {"name": "get_weather", "description": "Get the current weather for a city.",
                        "inputSchema": {"json": WEATHER_SCHEMA}}}
TIME_SCHEMA = {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}
CLOCK = {"toolSpec": {"name": "get_time", "description": "Tell the time in a timezone.",
                      "inputSchema": {"json": TIME_SCHEMA}}}
GREEDY = {"maxTokens": 60, "temperature": 0}


def tools(*specs: dict, choice: dict | None = None) -> dict:
    config: dict = {"tools": list(specs)}
    if choice is not None:
        config["toolChoice"] = choice
    return config


def error_of(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def tool_uses(reply: dict) -> list[dict]:
    return [block["toolUse"] for block in reply["output"]["message"]["content"] if "toolUse" in block]


# --- forced calls --------------------------------------------------------------------------------------------

def test_a_named_tool_is_called_with_input_that_follows_its_schema(client):
    reply = client.converse(modelId=HAIKU, messages=[user("What's the weather in Paris?")],
                            toolConfig=tools(WEATHER, CLOCK, choice={"tool": {"name": "get_weather"}}),
                            inferenceConfig=GREEDY)
    assert reply["stopReason"] == "tool_use"
    (use,) = tool_uses(reply)
    assert reply["output"]["message"]["content"] == [{"toolUse": use}]
    assert TOOL_USE_ID.fullmatch(use["toolUseId"])
    assert use["name"] == "get_weather"
    jsonschema.validate(use["input"], WEATHER_SCHEMA)
    assert set(use["input"]) == {"city", "unit"}  # no members the schema does not name
    assert use["input"]["city"] == "Paris"  # the model reads the question: the arguments are not canned
    assert reply["usage"]["outputTokens"] > 0


def test_any_calls_one_of_the_tools(client):
    reply = client.converse(modelId=HAIKU, messages=[user("What time is it in Tokyo?")],
                            toolConfig=tools(WEATHER, CLOCK, choice={"any": {}}), inferenceConfig=GREEDY)
    assert reply["stopReason"] == "tool_use"
    (use,) = tool_uses(reply)
    schema = {"get_weather": WEATHER_SCHEMA, "get_time": TIME_SCHEMA}[use["name"]]
    jsonschema.validate(use["input"], schema)


def test_each_call_gets_a_fresh_tool_use_id(client):
    ids = {
        tool_uses(client.converse(modelId=HAIKU, messages=[user("Weather in Rome?")],
                                  toolConfig=tools(WEATHER, choice={"any": {}}),
                                  inferenceConfig={"maxTokens": 40, "temperature": 0}))[0]["toolUseId"]
        for _ in range(2)
    }
    assert len(ids) == 2


# --- auto -----------------------------------------------------------------------------------------------------

def test_auto_calls_a_tool_the_question_is_about(client):
    """HEURISTIC (see tools/turn.py): the question shares a word with the tool's description."""
    reply = client.converse(modelId=HAIKU, messages=[user("What's the weather like in Berlin?")],
                            toolConfig=tools(WEATHER, CLOCK), inferenceConfig=GREEDY)
    assert reply["stopReason"] == "tool_use"
    (use,) = tool_uses(reply)
    assert use["name"] == "get_weather"
    jsonschema.validate(use["input"], WEATHER_SCHEMA)


def test_auto_answers_in_text_when_no_tool_fits(client):
    reply = client.converse(modelId=HAIKU, messages=[user("What is the capital of France?")],
                            toolConfig=tools(WEATHER, CLOCK, choice={"auto": {}}), inferenceConfig=GREEDY)
    assert reply["stopReason"] in ("end_turn", "max_tokens")
    assert tool_uses(reply) == []
    assert "Paris" in reply["output"]["message"]["content"][0]["text"]


def test_a_model_that_starts_a_call_itself_gets_text_then_a_tool_block(client):
    """With `auto` the model may write the call marker itself; what it said before becomes block 0."""
    lookup = {"toolSpec": {"name": "lookup", "description": "Look up a record.",
                           "inputSchema": {"json": {"type": "object", "properties": {"id": {"type": "integer"}},
                                                    "required": ["id"]}}}}
    kwargs = dict(modelId=HAIKU, messages=[user("Copy this text: Sure! <tool_call>")], toolConfig=tools(lookup),
                  inferenceConfig={"maxTokens": 30, "temperature": 0})
    reply = client.converse(**kwargs)
    content = reply["output"]["message"]["content"]
    assert [next(iter(block)) for block in content] == ["text", "toolUse"]
    assert "<tool_call>" not in content[0]["text"]  # the marker is ours, never the caller's text
    assert isinstance(content[1]["toolUse"]["input"]["id"], int)
    assert reply["stopReason"] == "tool_use"

    events = list(client.converse_stream(**kwargs)["stream"])
    indexed = [(name, body.get("contentBlockIndex")) for event in events for name, body in event.items()]
    assert indexed[0] == ("messageStart", None)
    first_tool = indexed.index(("contentBlockStart", 1))
    assert set(indexed[1:first_tool]) == {("contentBlockDelta", 0), ("contentBlockStop", 0)}
    assert indexed[first_tool - 1] == ("contentBlockStop", 0)
    assert indexed[-4:] == [("contentBlockDelta", 1), ("contentBlockStop", 1), ("messageStop", None), ("metadata", None)]
    text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)
    assert text == content[0]["text"]


# --- the round trip -----------------------------------------------------------------------------------------

ASKED = {"role": "assistant", "content": [
    {"text": "Let me check."},
    {"toolUse": {"toolUseId": "tooluse_abc123", "name": "get_weather", "input": {"city": "Paris", "unit": "celsius"}}},
]}


def answered(*content: dict, status: str = "success") -> list[dict]:
    return [user("What's the weather in Paris?"), ASKED,
            {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_abc123", "content": list(content),
                                                         "status": status}}]}]


@pytest.mark.parametrize("content", [
    {"text": "Sunny, 21 degrees Celsius."},
    {"json": {"forecast": "Sunny, 21 degrees Celsius."}},
], ids=["text", "json"])
def test_a_tool_result_reaches_the_model_which_answers_in_text(client, content):
    reply = client.converse(modelId=HAIKU, messages=answered(content), toolConfig=tools(WEATHER),
                            inferenceConfig={"maxTokens": 40, "temperature": 0})
    assert tool_uses(reply) == []  # after tool results the answer is text, so an agent loop ends
    assert reply["stopReason"] in ("end_turn", "max_tokens")
    assert "21" in reply["output"]["message"]["content"][0]["text"]


def test_a_text_document_result_reaches_the_model_whole(client):
    """A txt document in a tool result is rendered with its text (the 135M model does not always quote it back, so
    this checks the prompt's size: the same text plus the document's markup)."""
    def usage(content):
        reply = client.converse(modelId=HAIKU, messages=answered(content), toolConfig=tools(WEATHER),
                                inferenceConfig={"maxTokens": 1})
        assert tool_uses(reply) == []
        return reply["usage"]["inputTokens"]

    as_text = usage({"text": "Sunny, 21 degrees Celsius."})
    as_document = usage({"document": {"format": "txt", "name": "report",
                                      "source": {"bytes": b"Sunny, 21 degrees Celsius."}}})
    empty = usage({"document": {"format": "txt", "name": "report", "source": {"bytes": b" "}}})
    assert as_document > as_text and as_document > empty


def test_tool_results_cost_input_tokens_as_rendered(client):
    short = client.converse(modelId=HAIKU, messages=answered({"text": "Sunny."}), toolConfig=tools(WEATHER),
                            inferenceConfig={"maxTokens": 1})
    longer = client.converse(modelId=HAIKU, messages=answered({"text": "Sunny."}, {"json": {"uv_index": 7, "wind": "calm"}}),
                             toolConfig=tools(WEATHER), inferenceConfig={"maxTokens": 1})
    assert longer["usage"]["inputTokens"] > short["usage"]["inputTokens"]


def test_an_error_result_and_an_image_result_are_accepted(client):
    png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")
    reply = client.converse(modelId=HAIKU,
                            messages=answered({"text": "City not found."},
                                              {"image": {"format": "png", "source": {"bytes": png}}}, status="error"),
                            toolConfig=tools(WEATHER), inferenceConfig={"maxTokens": 5})
    assert reply["stopReason"] in ("end_turn", "max_tokens")
    assert tool_uses(reply) == []


# --- streaming ------------------------------------------------------------------------------------------------

def test_a_streamed_call_frames_its_input_and_reassembles_to_the_same_json(client):
    kwargs = dict(modelId=HAIKU, messages=[user("What's the weather in Madrid?")],
                  toolConfig=tools(WEATHER, choice={"tool": {"name": "get_weather"}}), inferenceConfig=GREEDY)
    events = list(client.converse_stream(**kwargs)["stream"])
    assert events[0] == {"messageStart": {"role": "assistant"}}
    start = events[1]["contentBlockStart"]
    assert start["contentBlockIndex"] == 0 and start["start"]["toolUse"]["name"] == "get_weather"
    assert TOOL_USE_ID.fullmatch(start["start"]["toolUse"]["toolUseId"])
    deltas = events[2:-3]
    assert len(deltas) > 1  # fragments as they are generated, not one piece at the end
    assert all(d["contentBlockDelta"]["contentBlockIndex"] == 0 for d in deltas)
    streamed = json.loads("".join(d["contentBlockDelta"]["delta"]["toolUse"]["input"] for d in deltas))
    assert events[-3] == {"contentBlockStop": {"contentBlockIndex": 0}}
    assert events[-2] == {"messageStop": {"stopReason": "tool_use"}}
    jsonschema.validate(streamed, WEATHER_SCHEMA)
    assert streamed == tool_uses(client.converse(**kwargs))[0]["input"]  # greedy: one answer either way


def test_too_few_tokens_for_any_valid_input_stop_with_max_tokens(client):
    kwargs = dict(modelId=HAIKU, messages=[user("Weather in Oslo?")],
                  toolConfig=tools(WEATHER, choice={"any": {}}), inferenceConfig={"maxTokens": 3})
    reply = client.converse(**kwargs)
    assert reply["stopReason"] == "max_tokens"
    assert reply["usage"]["outputTokens"] == 3
    (use,) = tool_uses(reply)
    assert use["name"] == "get_weather" and use["input"] == {}  # cut off: no partial JSON in a document
    events = list(client.converse_stream(**kwargs)["stream"])
    assert "contentBlockStart" in events[1]
    assert events[-3] == {"contentBlockStop": {"contentBlockIndex": 0}}
    assert events[-2] == {"messageStop": {"stopReason": "max_tokens"}}


def test_a_tight_budget_still_ends_with_complete_valid_input(client):
    """Close to maxTokens, decoding is steered to the shortest way to finish the JSON."""
    reply = client.converse(modelId=HAIKU, messages=[user("Weather in a city with a very long name, please.")],
                            toolConfig=tools(WEATHER, choice={"any": {}}), inferenceConfig={"maxTokens": 16})
    assert reply["stopReason"] == "tool_use"
    assert reply["usage"]["outputTokens"] <= 16
    jsonschema.validate(tool_uses(reply)[0]["input"], WEATHER_SCHEMA)


# --- structured text output (outputConfig) -------------------------------------------------------------------

def test_output_config_makes_the_text_answer_follow_the_schema(client):
    schema = {"type": "object", "properties": {"capital": {"type": "string"}, "population_millions": {"type": "number"}},
              "required": ["capital", "population_millions"]}
    reply = client.converse(modelId=HAIKU, messages=[user("What is the capital of France?")],
                            outputConfig={"textFormat": {"type": "json_schema",
                                                         "structure": {"jsonSchema": {"schema": json.dumps(schema)}}}},
                            inferenceConfig={"maxTokens": 60, "temperature": 0})
    assert reply["stopReason"] == "end_turn"
    answer = json.loads(reply["output"]["message"]["content"][0]["text"])
    jsonschema.validate(answer, schema)
    assert set(answer) == {"capital", "population_millions"}


# --- validation -----------------------------------------------------------------------------------------------

def converse(client, messages=None, **kwargs):
    return lambda: client.converse(modelId=HAIKU, messages=messages or [user("hi")], **kwargs)


def test_tool_blocks_need_a_tool_config(client):
    assert error_of(converse(client, answered({"text": "Sunny."}))) == (
        "ValidationException",
        "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
    )


def test_a_result_must_answer_a_call_of_the_previous_message(client):
    messages = answered({"text": "Sunny."})
    messages[2]["content"][0]["toolResult"]["toolUseId"] = "tooluse_unknown"
    assert error_of(converse(client, messages, toolConfig=tools(WEATHER))) == (
        "ValidationException",
        "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: tooluse_unknown. "
        "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
    )


def test_a_call_must_be_answered_in_the_next_message(client):
    messages = [user("What's the weather in Paris?"), ASKED, user("Never mind.")]
    assert error_of(converse(client, messages, toolConfig=tools(WEATHER))) == (
        "ValidationException",
        "messages.2: `tool_use` ids were found without `tool_result` blocks immediately after: tooluse_abc123. "
        "Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
    )


def test_tool_choice_must_name_a_provided_tool(client):
    assert error_of(converse(client, toolConfig=tools(WEATHER, choice={"tool": {"name": "get_time"}}))) == (
        "ValidationException",
        "The tool get_time named in toolConfig.toolChoice.tool.name isn't in toolConfig.tools. "
        "Name one of the tools you provided and try again.",
    )


def test_tool_names_must_be_unique(client):
    assert error_of(converse(client, toolConfig=tools(WEATHER, WEATHER))) == (
        "ValidationException", "The model returned the following errors: tools: Tool names must be unique.")


@pytest.mark.parametrize("schema, message", [
    (["not", "an", "object"], "The format of the value at toolConfig.tools.0.toolSpec.inputSchema.json is invalid. "
                              "Provide a json object for the field and try again."),
    ({"type": "object", "properties": {"a": {"type": "colour"}}},
     "The model returned the following errors: tools.0.custom.input_schema: JSON schema is invalid. "
     "It must match JSON Schema draft 2020-12 (https://json-schema.org/draft/2020-12)."),
    ({"type": "string"}, "The model returned the following errors: tools.0.custom.input_schema.type: Input should be 'object'"),
    ({"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}},
     'The emulator cannot constrain tool input to the schema at toolConfig.tools.0.toolSpec.inputSchema.json: '
     'Unimplemented keys: ["uniqueItems"]. Remove or rewrite that part of the schema and try again.'),
], ids=["not-an-object", "invalid", "not-object-typed", "unsupported-keyword"])
def test_input_schemas_are_checked(client, schema, message):
    spec = {"toolSpec": {"name": "f", "inputSchema": {"json": schema}}}
    assert error_of(converse(client, toolConfig=tools(spec))) == ("ValidationException", message)


def test_tool_blocks_sit_in_the_right_roles(client):
    messages = [{"role": "user", "content": [{"text": "hi"}, ASKED["content"][1]]}]
    assert error_of(converse(client, messages, toolConfig=tools(WEATHER))) == (
        "ValidationException", "messages.0.content.1: toolUse blocks can only appear in assistant messages.")


def test_an_empty_tool_list_is_rejected_by_the_service_model(server):
    unchecked = make_client(server.url, parameter_validation=False)  # boto3 would refuse it before sending
    code, message = error_of(converse(unchecked, toolConfig={"tools": []}))
    assert code == "ValidationException"
    assert "'toolConfig.tools' failed to satisfy constraint: Member must have length greater than or equal to 1" in message


def test_only_models_with_tool_use_take_tools(client):
    def ask(model: str, config: dict):
        return lambda: client.converse(modelId=model, messages=[user("hi")], toolConfig=config)

    titan = ask("amazon.titan-text-express-v1", tools(WEATHER))
    assert error_of(titan) == ("ValidationException", "This model doesn't support tool use.")
    llama = ask("meta.llama3-1-8b-instruct-v1:0", tools(WEATHER, choice={"any": {}}))
    assert error_of(llama) == (
        "ValidationException",
        "This model doesn't support the toolConfig.toolChoice.any field. Remove toolConfig.toolChoice.any and try again.",
    )


def test_system_tools_are_not_supported(client):
    assert error_of(converse(client, toolConfig={"tools": [{"systemTool": {"name": "web_search"}}]})) == (
        "ValidationException",
        "This model doesn't support the system tool web_search at toolConfig.tools.0. Remove it and try again.",
    )


def test_output_config_needs_a_json_schema(client):
    bad = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": "{not json"}}}}
    assert error_of(converse(client, outputConfig=bad)) == (
        "ValidationException",
        "The value at outputConfig.textFormat.structure.jsonSchema.schema is not a valid JSON schema. "
        "Provide a JSON schema object as a string and try again.",
    )


def test_validation_errors_come_before_a_stream_starts(client):
    with pytest.raises(ClientError) as caught:
        client.converse_stream(modelId=HAIKU, messages=[user("hi")], toolConfig=tools(WEATHER, choice={"tool": {"name": "nope"}}))
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_a_cache_point_among_the_tools_is_accepted(client):
    reply = client.converse(modelId=HAIKU, messages=[user("Weather in Lima?")],
                            toolConfig=tools(WEATHER, {"cachePoint": {"type": "default"}}, choice={"any": {}}),
                            inferenceConfig={"maxTokens": 40, "temperature": 0})
    assert reply["stopReason"] == "tool_use"
    assert reply["usage"]["cacheReadInputTokens"] == 0 and reply["usage"]["cacheWriteInputTokens"] == 0
