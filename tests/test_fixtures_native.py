"""Scripted responses through InvokeModel and InvokeModelWithResponseStream, in every text family's native shape.

The family table (bodies, where each reply keeps its text, stop reasons) is the one the InvokeModel tests use.
"""

from __future__ import annotations

import json

import pytest
from native_calls import invoke, metrics_only_last, stream, token_headers
from test_invoke_text import FAMILIES, STOPPING

SCRIPTED = "Scripted native answer, word by word."
USAGE = {"input_tokens": 8, "output_tokens": 4}


@pytest.mark.parametrize("name", FAMILIES)
def test_invoke_model_answers_in_the_familys_shape(client, bedrock_emulator, name):
    family = FAMILIES[name]
    bedrock_emulator.script(SCRIPTED, stop_reason="max_tokens", usage=USAGE, operation="InvokeModel")
    reply, headers = invoke(client, family.model, family.body(50, None))
    assert family.text(reply) == SCRIPTED
    assert family.reason(reply) == family.length  # the scripted reason in the family's own words
    assert token_headers(headers) == (8, 4)
    if family.counts is not None:
        assert family.counts(reply) == (8, 4)


@pytest.mark.parametrize("name", [name for name in FAMILIES if FAMILIES[name].streams])
def test_invoke_model_stream_chunks_carry_the_scripted_text(client, bedrock_emulator, name):
    family = FAMILIES[name]
    bedrock_emulator.script(SCRIPTED, usage=USAGE, operation="InvokeModelWithResponseStream")
    chunks, _ = stream(client, family.model, family.body(50, None))
    assert "".join(family.chunk_text(chunk) for chunk in chunks) == SCRIPTED
    metrics = metrics_only_last(chunks)
    assert (metrics["inputTokenCount"], metrics["outputTokenCount"]) == (8, 4)


@pytest.mark.parametrize("name", STOPPING)
def test_a_scripted_stop_sequence_uses_the_familys_reason(client, bedrock_emulator, name):
    family = FAMILIES[name]
    bedrock_emulator.script(SCRIPTED, stop_reason="stop_sequence", stop_sequence="END")
    reply, _ = invoke(client, family.model, family.body(50, ["END"]))
    assert family.reason(reply) == family.stop


WEATHER_TOOL = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
CLAUDE_WITH_TOOLS = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "tools": [WEATHER_TOOL],
                     "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}


def test_a_scripted_tool_call_reaches_anthropics_native_body_with_its_id_form(client, bedrock_emulator):
    bedrock_emulator.script("Checking.", tool_calls=[{"name": "get_weather", "input": {"city": "Paris"}}])
    reply, _ = invoke(client, "anthropic.claude-3-haiku-20240307-v1:0", CLAUDE_WITH_TOOLS)
    text, call = reply["content"]
    assert text == {"type": "text", "text": "Checking."}
    assert call["type"] == "tool_use" and call["id"].startswith("toolu_bdrk_")
    assert (call["name"], call["input"]) == ("get_weather", {"city": "Paris"})
    assert reply["stop_reason"] == "tool_use"


def test_a_scripted_tool_call_streams_as_input_json_deltas(client, bedrock_emulator):
    bedrock_emulator.script(tool_calls=[{"name": "get_weather", "input": {"city": "Paris"}}])
    chunks, _ = stream(client, "anthropic.claude-3-haiku-20240307-v1:0", CLAUDE_WITH_TOOLS)
    start = next(c for c in chunks if c["type"] == "content_block_start" and c["content_block"]["type"] == "tool_use")
    assert start["content_block"]["id"].startswith("toolu_bdrk_")
    partial = "".join(c["delta"]["partial_json"] for c in chunks
                      if c["type"] == "content_block_delta" and c["delta"]["type"] == "input_json_delta")
    assert json.loads(partial) == {"city": "Paris"}
    assert next(c for c in chunks if c["type"] == "message_delta")["delta"]["stop_reason"] == "tool_use"


# Families whose native bodies have no tools (their models do not take tools on InvokeModel).
NO_TOOL_BODIES = [name for name in ("anthropic-completions", "titan-text", "llama", "mistral", "cohere-command", "deepseek")
                  if name in FAMILIES]


@pytest.mark.parametrize("name", NO_TOOL_BODIES)
def test_a_scripted_tool_call_for_a_family_without_tools_leaves_the_stream_its_text(client, bedrock_emulator, name):
    # The body has no way to say a call: the stream carries the text and ends as the reply would, never in an error.
    family = FAMILIES[name]
    bedrock_emulator.script(SCRIPTED, tool_calls=[{"name": "get_weather", "input": {"city": "Paris"}}],
                            usage=USAGE, operation="InvokeModelWithResponseStream")
    chunks, _ = stream(client, family.model, family.body(50, None))
    assert "".join(family.chunk_text(chunk) for chunk in chunks) == SCRIPTED
    metrics = metrics_only_last(chunks)
    assert (metrics["inputTokenCount"], metrics["outputTokenCount"]) == (8, 4)
