"""Claude's native tools on InvokeModel, driven by the Anthropic SDK (`AnthropicBedrock`): `tools`, `tool_choice`
(auto, any, tool, none), `tool_use` / `tool_result` blocks and the streamed `input_json_delta`."""

from __future__ import annotations

import json

import anthropic
import jsonschema
import pytest

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
GREEDY = {"extra_body": {"temperature": 0}}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1,
                                                                                  "maximum": 7}},
          "required": ["city", "days"]}
TOOLS = [{"name": "get_forecast", "description": "Get the weather forecast for a city.", "input_schema": SCHEMA},
         {"name": "get_time", "description": "Tell the time in a timezone.",
          "input_schema": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}}]
ASK = [{"role": "user", "content": "What's the weather forecast for Paris for the next 3 days?"}]



def test_tool_choice_tool_returns_a_tool_use_block(claude):
    message = claude.messages.create(model=MODEL, max_tokens=60, messages=ASK, tools=TOOLS,
                                     tool_choice={"type": "tool", "name": "get_forecast"}, **GREEDY)
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use" and block.name == "get_forecast"
    assert block.id.startswith("toolu_bdrk_")
    jsonschema.validate(block.input, SCHEMA)
    assert set(block.input) == {"city", "days"}


def test_tool_choice_any_streams_input_json_deltas(claude):
    kwargs = dict(model=MODEL, max_tokens=60, messages=ASK, tools=TOOLS, tool_choice={"type": "any"}, **GREEDY)
    with claude.messages.stream(**kwargs) as stream:
        events = list(stream)
        final = stream.get_final_message()
    partial = [e.delta.partial_json for e in events if e.type == "content_block_delta"]
    assert len(partial) > 1 and all(e.delta.type == "input_json_delta" for e in events if e.type == "content_block_delta")
    (block,) = final.content
    assert final.stop_reason == "tool_use" and block.type == "tool_use"
    assert json.loads("".join(partial)) == block.input  # the SDK assembles the same input from the fragments
    created = claude.messages.create(**kwargs)
    assert created.content[0].input == block.input and created.content[0].name == block.name


def test_auto_and_none(claude):
    called = claude.messages.create(model=MODEL, max_tokens=60, messages=ASK, tools=TOOLS, **GREEDY)
    assert called.stop_reason == "tool_use" and called.content[-1].name == "get_forecast"
    plain = claude.messages.create(model=MODEL, max_tokens=8, messages=ASK, tools=TOOLS, tool_choice={"type": "none"},
                                   **GREEDY)
    assert [b.type for b in plain.content] == ["text"] and plain.stop_reason in ("end_turn", "max_tokens")


def test_a_tool_result_round_trip_ends_in_text(claude):
    first = claude.messages.create(model=MODEL, max_tokens=60, messages=ASK, tools=TOOLS,
                                   tool_choice={"type": "tool", "name": "get_forecast"}, **GREEDY)
    (call,) = first.content
    messages = [*ASK, {"role": "assistant", "content": [call.model_dump()]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                              "content": "Sunny all week, 21 degrees Celsius."}]}]
    answer = claude.messages.create(model=MODEL, max_tokens=30, messages=messages, tools=TOOLS, **GREEDY)
    assert [b.type for b in answer.content] == ["text"]
    assert "21" in answer.content[0].text


def test_tool_blocks_need_tools(claude):
    messages = [*ASK, {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_forecast",
                                                         "input": {"city": "Paris", "days": 3}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny."}]}]
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model=MODEL, max_tokens=5, messages=messages)
    assert caught.value.status_code == 400
    assert caught.value.body["message"] == "Requests which include `tool_use` or `tool_result` blocks must define tools."


def test_a_result_must_answer_the_previous_call(claude):
    messages = [*ASK, {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_missing",
                                                     "content": "Sunny."}]}]
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model=MODEL, max_tokens=5, messages=messages, tools=TOOLS)
    assert caught.value.body["message"] == (
        "messages.1.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_missing. "
        "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.")
