"""Tool configuration and tool turns checked as Bedrock checks them, and the plan a valid request gives."""

from __future__ import annotations

import pytest

from emulator import families
from emulator.protocol.errors import BedrockError
from emulator.tools.checks import tool_plan
from emulator.tools.markup import render_call, render_result
from emulator.tools.model import Tool

WEATHER = {"toolSpec": {"name": "get_weather", "description": "Weather for a city",
                        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}
TIME = {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"properties": {}}}}}


def user(*blocks) -> dict:
    return {"role": "user", "content": list(blocks) or [{"text": "Weather in Paris?"}]}


def assistant(*blocks) -> dict:
    return {"role": "assistant", "content": list(blocks)}


USE = {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Paris"}}}
RESULT = {"toolResult": {"toolUseId": "t1", "content": [{"text": "18C"}]}}


def choices(family: str | None) -> tuple[str, ...] | None:
    """The tool choices Converse lets a family's models take (None: not checked)."""
    return families.get(family).tool_choices if family is not None else None


def refused(params: dict, family: str | None = None) -> str:
    with pytest.raises(BedrockError) as caught:
        tool_plan(params, choices(family))
    assert caught.value.code == "ValidationException"
    return caught.value.message


def test_no_tool_config_and_no_tool_blocks_is_a_plain_text_turn():
    assert tool_plan({"messages": [user()]}, choices("anthropic")) is None


def test_a_valid_config_gives_the_plan():
    plan = tool_plan({"messages": [user()], "toolConfig": {"tools": [WEATHER, {"cachePoint": {"type": "default"}}, TIME],
                                                          "toolChoice": {"tool": {"name": "get_time"}}}}, choices("anthropic"))
    assert plan.tools == (
        Tool("get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}},
             "toolConfig.tools.0.toolSpec.inputSchema.json"),
        Tool("get_time", "", {"type": "object", "properties": {}},  # the object type is filled in
             "toolConfig.tools.2.toolSpec.inputSchema.json"),  # each tool keeps where its schema sits
    )
    assert (plan.choice, plan.forced, plan.after_results) == ("tool", "get_time", False)


def test_a_turn_answering_a_call_is_after_results_and_remembers_the_answered_call():
    plan = tool_plan({"messages": [user(), assistant(USE), user(RESULT)], "toolConfig": {"tools": [WEATHER]}})
    assert plan.after_results is True
    assert plan.answered == frozenset({("get_weather", '{"city":"Paris"}')})


@pytest.mark.parametrize(
    "params, family, message",
    [
        ({"messages": [user(), assistant(USE), user(RESULT)]}, None,
         "The toolConfig field must be defined when using toolUse and toolResult content blocks."),
        ({"messages": [user()], "toolConfig": {"tools": [WEATHER]}}, "titan-text", "This model doesn't support tool use."),
        ({"messages": [user()], "toolConfig": {"tools": [WEATHER], "toolChoice": {"any": {}}}}, "llama",
         "This model doesn't support the toolConfig.toolChoice.any field. Remove toolConfig.toolChoice.any and try again."),
        ({"messages": [user()], "toolConfig": {"tools": [{"cachePoint": {"type": "default"}}]}}, None,
         "The toolConfig.tools list must include at least one toolSpec. Add a tool and try again."),
        ({"messages": [user()], "toolConfig": {"tools": [WEATHER, WEATHER]}}, None,
         "The model returned the following errors: tools: Tool names must be unique."),
        ({"messages": [user()], "toolConfig": {"tools": [WEATHER], "toolChoice": {"tool": {"name": "nope"}}}}, None,
         "The tool nope named in toolConfig.toolChoice.tool.name isn't in toolConfig.tools. "
         "Name one of the tools you provided and try again."),
        ({"messages": [user()], "toolConfig": {"tools": [{"systemTool": {"name": "nova_grounding"}}]}}, None,
         "This model doesn't support the system tool nova_grounding at toolConfig.tools.0. Remove it and try again."),
        ({"messages": [user()], "toolConfig": {"tools": [
            {"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "array"}}}}]}}, None,
         "The model returned the following errors: tools.0.custom.input_schema.type: Input should be 'object'"),
        ({"messages": [user()], "toolConfig": {"tools": [
            {"toolSpec": {"name": "f", "inputSchema": {"json": {"type": 5}}}}]}}, None,
         "The model returned the following errors: tools.0.custom.input_schema: JSON schema is invalid. "
         "It must match JSON Schema draft 2020-12 (https://json-schema.org/draft/2020-12)."),
        ({"messages": [user()], "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": "{}"}}}]}}, None,
         "The format of the value at toolConfig.tools.0.toolSpec.inputSchema.json is invalid. "
         "Provide a json object for the field and try again."),
    ],
)
def test_tool_config_refusals(params, family, message):
    assert refused(params, family) == message


@pytest.mark.parametrize(
    "messages, message",
    [
        ([user(USE)], "messages.0.content.0: toolUse blocks can only appear in assistant messages."),
        ([user(), assistant(RESULT)], "messages.1.content.0: toolResult blocks can only appear in user messages."),
        ([user(), assistant(USE), user({"text": "never mind"})],
         "messages.2: `tool_use` ids were found without `tool_result` blocks immediately after: t1. "
         "Each `tool_use` block must have a corresponding `tool_result` block in the next message."),
        ([user(), assistant({"text": "ok"}), user(RESULT)],
         "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: t1. "
         "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."),
        ([user(), assistant({"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": "Paris"}}), user(RESULT)],
         "The model returned the following errors: messages.1.content.0.tool_use.input: Input should be a valid dictionary"),
    ],
)
def test_tool_turn_refusals(messages, message):
    assert refused({"messages": messages, "toolConfig": {"tools": [WEATHER]}}) == message


def test_tool_removal_in_a_system_message_takes_the_tool_away():
    removal = {"role": "system", "content": [{"toolRemoval": {"tool": {"name": "get_weather"}}}]}
    plan = tool_plan({"messages": [user(), removal], "toolConfig": {"tools": [WEATHER, TIME]}})
    assert [t.name for t in plan.tools] == ["get_time"]
    assert [t.schema_path for t in plan.tools] == ["toolConfig.tools.1.toolSpec.inputSchema.json"]
    everything = tool_plan({"messages": [user(), removal], "toolConfig": {"tools": [WEATHER]}})
    assert (everything.tools, everything.choice) == ((), "none")
    unknown = {"role": "system", "content": [{"toolAddition": {"tool": {"name": "zzz"}}}]}
    assert refused({"messages": [user(), unknown], "toolConfig": {"tools": [WEATHER]}}) == (
        "The tool zzz named in messages.1.content.0.toolAddition.tool isn't in toolConfig.tools. "
        "Name one of the tools you provided and try again.")


def test_output_config_text_format_without_tools_is_a_schema_only_plan():
    schema = '{"type": "object", "properties": {"a": {"type": "integer"}}}'
    params = {"messages": [user()], "outputConfig": {"textFormat": {"structure": {"jsonSchema": {"schema": schema}}}}}
    plan = tool_plan(params)
    assert (plan.tools, plan.choice, plan.text_schema) == ((), "none", {"type": "object", "properties": {"a": {"type": "integer"}}})
    params["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"] = "{not json"
    assert refused(params) == ("The value at outputConfig.textFormat.structure.jsonSchema.schema is not a valid JSON schema. "
                               "Provide a JSON schema object as a string and try again.")


def test_calls_and_results_render_in_the_form_the_model_is_taught():
    assert render_call("f", {"q": "é"}) == '<tool_call>\n{"name":"f","arguments":{"q":"é"}}\n</tool_call>'
    assert render_result("18C") == "The tool returned: 18C"
    assert render_result("boom", error=True) == "The tool failed: boom"


# --- native tool configurations ------------------------------------------------------------------------------


def anthropic_plan(**body):
    return families.get("anthropic").tool_plan({"messages": [{"role": "user", "content": "hi"}], **body})


def test_anthropic_tools_become_a_plan_with_bedrock_style_ids():
    plan = anthropic_plan(tools=[{"name": "f", "input_schema": {"type": "object"}}], tool_choice={"type": "any"})
    assert ([(t.name, t.schema_path) for t in plan.tools], plan.choice) == ([("f", "tools.0.input_schema")], "any")
    assert plan.new_id().startswith("toolu_bdrk_01")


@pytest.mark.parametrize(
    "body, message",
    [
        ({"tools": [{"name": "f"}]}, "tools.0.custom.input_schema: Field required"),
        ({"tools": [{"name": "f", "input_schema": {}}], "tool_choice": {"type": "tool", "name": "g"}},
         "tool_choice.name: the tool g is not one of the tools provided."),
        ({"tools": [{"type": "computer_20241022", "name": "computer"}]},
         "tools.0: the emulator runs custom tools only; the computer_20241022 tool is not available."),
    ],
)
def test_anthropic_tool_refusals(body, message):
    with pytest.raises(BedrockError) as caught:
        anthropic_plan(**body)
    assert caught.value.message == message


def test_anthropic_tool_blocks_without_tools_are_refused():
    body = {"messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]}
    with pytest.raises(BedrockError) as caught:
        families.get("anthropic").tool_plan(body)
    assert caught.value.message == "Requests which include `tool_use` or `tool_result` blocks must define tools."


def test_cohere_r_parameter_definitions_become_a_json_schema():
    body = {"message": "hi", "tools": [{"name": "lookup", "description": "d", "parameter_definitions": {
        "q": {"type": "str", "description": "query", "required": True}, "n": {"type": "int"}, "x": {"type": "mystery"}}}]}
    plan = families.get("cohere-command-r").tool_plan(body)
    assert plan.tools[0].schema == {"type": "object", "properties": {
        "q": {"description": "query", "type": "string"}, "n": {"description": "", "type": "integer"}, "x": {"description": ""}},
        "required": ["q"]}


def test_openai_tool_choice_names():
    body = {"messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}
    openai = families.get("openai")
    assert openai.tool_plan({**body, "tool_choice": "required"}).choice == "any"
    forced = openai.tool_plan({**body, "tool_choice": {"type": "function", "function": {"name": "f"}}})
    assert (forced.choice, forced.forced) == ("tool", "f")
    with pytest.raises(BedrockError) as caught:
        openai.tool_plan({**body, "tool_choice": "sometimes"})
    assert caught.value.message == "tool_choice: 'sometimes' is not one of auto, none, required, any or a named function."
