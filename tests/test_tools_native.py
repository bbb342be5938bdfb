"""Tool calls in the other native bodies that carry tools: Amazon Nova (`toolConfig`, Converse's shape), Mistral
Large (OpenAI-like `tools`, replies with `message.tool_calls` and `stop_reason: tool_calls`) and gpt-oss (OpenAI's
chat completion). Each call's arguments follow the tool's schema; streams carry the call as the family does."""

from __future__ import annotations

import json

import jsonschema
from conftest import user
from native_calls import invoke, malformed, rejected, stream

NOVA = "amazon.nova-micro-v1:0"
MISTRAL = "mistral.mistral-large-2407-v1:0"
GPT_OSS = "openai.gpt-oss-20b-1:0"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
          "required": ["city", "unit"]}
ASK = "What's the weather in Paris?"


def nova_body(**extra) -> dict:
    return {"messages": [user(ASK)], "inferenceConfig": {"maxTokens": 60, "temperature": 0},
            "toolConfig": {"tools": [{"toolSpec": {"name": "get_weather", "description": "Get the weather for a city.",
                                                   "inputSchema": {"json": SCHEMA}}}], "toolChoice": {"any": {}}}, **extra}


def openai_body(tool_choice="required", **extra) -> dict:
    return {"messages": [{"role": "user", "content": ASK}], "max_tokens": 60, "temperature": 0,
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather for a city.",
                                                        "parameters": SCHEMA}}],
            "tool_choice": tool_choice, **extra}


def test_nova_tool_use(client):
    reply, _ = invoke(client, NOVA, nova_body())
    assert reply["stopReason"] == "tool_use"
    (block,) = reply["output"]["message"]["content"]
    assert block["toolUse"]["name"] == "get_weather" and block["toolUse"]["toolUseId"].startswith("tooluse_")
    jsonschema.validate(block["toolUse"]["input"], SCHEMA)

    chunks, _ = stream(client, NOVA, nova_body())
    names = [next(iter(c)) for c in chunks]
    assert names[:2] == ["messageStart", "contentBlockStart"]
    assert names[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    assert set(names[2:-3]) == {"contentBlockDelta"}
    streamed = "".join(c["contentBlockDelta"]["delta"]["toolUse"]["input"] for c in chunks[2:-3])
    assert json.loads(streamed) == block["toolUse"]["input"]  # greedy: the same call either way
    assert chunks[-2] == {"messageStop": {"stopReason": "tool_use"}}


def test_nova_tool_config_is_checked(client):
    assert rejected(lambda: invoke(client, NOVA, nova_body(toolConfig={"tools": "get_weather"}))) == malformed(
        "#/toolConfig: Value 'get_weather' at 'toolConfig.tools' failed to satisfy constraint: Member must be a list")


def test_mistral_large_tool_calls(client):
    reply, _ = invoke(client, MISTRAL, openai_body("any"))
    (choice,) = reply["choices"]
    assert choice["stop_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather" and len(call["id"]) == 22
    jsonschema.validate(json.loads(call["function"]["arguments"]), SCHEMA)

    chunks, _ = stream(client, MISTRAL, openai_body("any"))
    calls = [c["choices"][0]["message"]["tool_calls"] for c in chunks if c["choices"][0]["message"]["tool_calls"]]
    assert len(calls) == 1 and calls[0][0]["function"]["arguments"] == call["function"]["arguments"]
    assert chunks[-1]["choices"][0]["stop_reason"] == "tool_calls"


def test_gpt_oss_tool_calls_and_their_round_trip(client):
    reply, _ = invoke(client, GPT_OSS, openai_body({"type": "function", "function": {"name": "get_weather"}}))
    (choice,) = reply["choices"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_")
    jsonschema.validate(json.loads(call["function"]["arguments"]), SCHEMA)

    messages = [{"role": "user", "content": ASK}, choice["message"],
                {"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 21 degrees Celsius."}]
    answer, _ = invoke(client, GPT_OSS, openai_body("auto", messages=messages, max_tokens=30))
    assert answer["choices"][0]["finish_reason"] in ("stop", "length")
    assert "tool_calls" not in answer["choices"][0]["message"]
    assert "21" in answer["choices"][0]["message"]["content"]


def test_openai_tool_choice_must_name_a_tool(client):
    body = openai_body({"type": "function", "function": {"name": "get_time"}})
    assert rejected(lambda: invoke(client, GPT_OSS, body)) == "tool_choice: the function get_time is not one of the tools provided."


COMMAND_R = "cohere.command-r-v1:0"
COHERE_TOOLS = [{"name": "get_weather", "description": "Get the weather for a city.",
                 "parameter_definitions": {"city": {"description": "The city.", "type": "str", "required": True},
                                           "days": {"description": "Days ahead.", "type": "int", "required": True}}}]
COHERE_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                 "required": ["city", "days"], "additionalProperties": False}


def test_command_r_calls_a_tool_and_reads_its_result(client):
    body = {"message": "What's the weather in Paris for the next 2 days?", "tools": COHERE_TOOLS, "max_tokens": 60,
            "temperature": 0}
    reply, _ = invoke(client, COMMAND_R, body)
    (call,) = reply["tool_calls"]  # HEURISTIC auto choice: the question is about the weather
    assert call["name"] == "get_weather" and reply["finish_reason"] == "COMPLETE"
    jsonschema.validate(call["parameters"], COHERE_SCHEMA)

    chunks, _ = stream(client, COMMAND_R, body)
    generated = [c for c in chunks if c["event_type"] == "tool-calls-generation"]
    assert [c["tool_calls"] for c in generated] == [[call]]
    assert chunks[-1]["event_type"] == "stream-end" and chunks[-1]["response"]["tool_calls"] == [call]

    answered = {**body, "message": "", "max_tokens": 30,
                "tool_results": [{"call": call, "outputs": [{"forecast": "Sunny, 21 degrees Celsius."}]}]}
    reply, _ = invoke(client, COMMAND_R, answered)
    assert "tool_calls" not in reply and "21" in reply["text"]
