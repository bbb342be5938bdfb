"""The OpenAI JS SDK (npm `openai`) against /openai/v1: chat, a stream with usage, a tool round trip, `parse()`
with a zod schema, the Responses API with a function call, its streaming events and `parse()`, and the stateless
error. The SDK is installed once into `<cache>/js-openai` (skipped when npm cannot reach its registry)."""

from __future__ import annotations

import pytest
from jsnode import node_packages

SCRIPT = "openai.mjs"
PACKAGES = ["openai@7.55.0", "zod@3.25.76"]


@pytest.fixture(scope="module")
def results(server) -> dict[str, dict]:
    js = node_packages("js-openai", PACKAGES, what="the OpenAI JS SDK")
    return {line["check"]: line for line in js.json_lines(SCRIPT, timeout=600, EP=server.url)}


def test_js_chat_and_stream_with_usage(results):
    chat, stream = results["chat"], results["stream"]
    assert chat["object"] == "chat.completion" and chat["content"]
    assert stream["text"] == chat["content"] and stream["usage"] == chat["usage"]
    assert chat["usage"]["total_tokens"] == chat["usage"]["prompt_tokens"] + chat["usage"]["completion_tokens"]


def test_js_tool_round_trip(results):
    tools = results["tools"]
    assert (tools["finish"], tools["name"]) == ("tool_calls", "get_weather") and tools["id"].startswith("call_")
    assert set(tools["args"]) == {"city"} and isinstance(tools["args"]["city"], str)
    assert tools["answer"] and tools["answerFinish"] in ("stop", "length")


def test_js_parse_with_zod(results):
    parsed = results["parse"]["parsed"]
    assert set(parsed) == {"name", "population"} and isinstance(parsed["population"], int)
    parsed = results["responses_parse"]["parsed"]
    assert set(parsed) == {"name", "population"} and isinstance(parsed["population"], int)


def test_js_responses_function_call_and_stream(results):
    responses = results["responses"]
    assert (responses["type"], responses["name"]) == ("function_call", "get_weather") and responses["text"]
    stream = results["responses_stream"]
    assert stream["kinds"][:2] == ["response.created", "response.in_progress"]
    assert stream["kinds"][-1] in ("response.completed", "response.incomplete")
    assert stream["deltas"] == stream["text"] and stream["text"]


def test_js_stateless_error(results):
    assert results["stateless"] == {"check": "stateless", "thrown": "BadRequestError", "status": 400,
                                    "code": "previous_response_not_found", "param": "previous_response_id",
                                    "requestId": results["stateless"]["requestId"]}
    assert results["stateless"]["requestId"]
