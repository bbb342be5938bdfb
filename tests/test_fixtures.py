"""Scripted responses answer Converse and ConverseStream in Bedrock's shapes, matched by the rule's conditions.

Rules go in through the admin API (`bedrock_emulator` from our pytest plugin, reset around each test); calls go
through boto3 with retries off (`client`), so each assertion sees exactly one response.
"""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError, EventStreamError
from conftest import HAIKU, user

from emulator.admin_client import AdminError

NOVA = "amazon.nova-micro-v1:0"


def text_of(reply: dict) -> str:
    return "".join(block.get("text", "") for block in reply["output"]["message"]["content"])


def test_converse_returns_the_scripted_text_stop_reason_and_usage(client, bedrock_emulator):
    bedrock_emulator.script("The capital of France is Paris.", contains="capital", stop_reason="max_tokens",
                            usage={"input_tokens": 11, "output_tokens": 7})
    reply = client.converse(modelId=HAIKU, messages=[user("What is the capital of France?")])
    assert reply["output"]["message"] == {"role": "assistant", "content": [{"text": "The capital of France is Paris."}]}
    assert reply["stopReason"] == "max_tokens"
    assert reply["usage"] == {"inputTokens": 11, "outputTokens": 7, "totalTokens": 18}


def test_unscripted_usage_is_counted_like_a_generation(client, bedrock_emulator):
    """Without scripted usage, input tokens are the model's own count of the prompt, as a real generation reports."""
    messages = [user("Count my tokens, please.")]
    generated = client.converse(modelId=HAIKU, messages=messages, inferenceConfig={"maxTokens": 1})
    bedrock_emulator.script("Two words", contains="Count my tokens")
    scripted = client.converse(modelId=HAIKU, messages=messages)
    assert scripted["usage"]["inputTokens"] == generated["usage"]["inputTokens"]
    assert scripted["usage"]["outputTokens"] >= 2  # "Two words": at least one token per word


def test_converse_stream_frames_a_scripted_answer_like_a_generated_one(client, bedrock_emulator):
    bedrock_emulator.script("Hello there, streaming world!", operation="ConverseStream",
                            usage={"input_tokens": 5, "output_tokens": 4})
    events = list(client.converse_stream(modelId=HAIKU, messages=[user("hi")])["stream"])
    assert events[0] == {"messageStart": {"role": "assistant"}}
    deltas = events[1:-3]
    assert [d["contentBlockDelta"]["delta"]["text"] for d in deltas] == ["Hello", " there,", " streaming", " world!"]
    assert all(d["contentBlockDelta"]["contentBlockIndex"] == 0 for d in deltas)
    assert events[-3] == {"contentBlockStop": {"contentBlockIndex": 0}}
    assert events[-2] == {"messageStop": {"stopReason": "end_turn"}}
    assert events[-1]["metadata"]["usage"] == {"inputTokens": 5, "outputTokens": 4, "totalTokens": 9}


def test_scripted_stream_keeps_its_pace(client, bedrock_emulator):
    bedrock_emulator.script("one two three four", pace_ms=80)
    arrivals = []
    for event in client.converse_stream(modelId=HAIKU, messages=[user("count")])["stream"]:
        if "contentBlockDelta" in event:
            arrivals.append(time.monotonic())
    assert len(arrivals) == 4
    # Three gaps of at least 80 ms each (a lower bound: a slow machine only makes it longer).
    assert arrivals[-1] - arrivals[0] >= 3 * 0.08 * 0.95


@pytest.mark.parametrize(
    ("model", "text", "expected"),
    [
        (HAIKU, "tell me about the weather", "by substring"),
        (HAIKU, "order number 4711 please", "by regex"),
        (NOVA, "anything at all", "by model"),
        (f"us.{HAIKU}", "anything at all", "haiku via a profile"),
    ],
)
def test_rules_match_on_model_substring_and_regex(client, bedrock_emulator, model, text, expected):
    bedrock_emulator.script("by substring", contains="weather")
    bedrock_emulator.script("by regex", regex=r"order number \d+")
    bedrock_emulator.script("by model", model="amazon.nova-*")
    bedrock_emulator.script("haiku via a profile", model="anthropic.claude-3-haiku*")
    assert text_of(client.converse(modelId=model, messages=[user(text)])) == expected


def test_rules_match_on_turn_index(client, bedrock_emulator):
    bedrock_emulator.script("first turn", turn=1)
    bedrock_emulator.script("second turn", turn=2)
    history = [user("one")]
    first = client.converse(modelId=HAIKU, messages=history)
    assert text_of(first) == "first turn"
    history += [first["output"]["message"], user("two")]
    assert text_of(client.converse(modelId=HAIKU, messages=history)) == "second turn"


def test_match_uses_the_last_user_message_only(client, bedrock_emulator):
    bedrock_emulator.script("matched", contains="needle")
    bedrock_emulator.script("fallback")
    history = [user("needle here"), {"role": "assistant", "content": [{"text": "ok"}]}, user("no match now")]
    assert text_of(client.converse(modelId=HAIKU, messages=history)) == "fallback"


def test_operation_scope_and_first_match_wins(client, bedrock_emulator):
    bedrock_emulator.script("stream only", operation="ConverseStream")
    bedrock_emulator.script("first general")
    bedrock_emulator.script("second general")
    assert text_of(client.converse(modelId=HAIKU, messages=[user("x")])) == "first general"
    events = client.converse_stream(modelId=HAIKU, messages=[user("x")])["stream"]
    streamed = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert streamed == "stream only"


def test_times_retires_a_rule_so_the_next_one_answers(client, bedrock_emulator):
    bedrock_emulator.script("once", times=1)
    bedrock_emulator.script("afterwards")
    answers = [text_of(client.converse(modelId=HAIKU, messages=[user("x")])) for _ in range(3)]
    assert answers == ["once", "afterwards", "afterwards"]
    assert [r["remaining"] for r in bedrock_emulator.rules()] == [0, None]


def test_unmatched_requests_fall_through_to_the_model(client, bedrock_emulator):
    bedrock_emulator.script("never used", contains="no such text")
    reply = client.converse(modelId=HAIKU, messages=[user("Say something.")], inferenceConfig={"maxTokens": 2, "temperature": 0})
    assert reply["stopReason"] == "max_tokens"
    assert reply["usage"]["outputTokens"] == 2
    assert bedrock_emulator.invocations()[-1]["scriptedRule"] is None


def test_require_fixture_match_turns_unmatched_requests_into_an_error(client, bedrock_emulator):
    bedrock_emulator.update_settings(require_fixture_match=True)
    with pytest.raises(ClientError) as caught:
        client.converse(modelId=HAIKU, messages=[user("Nothing scripted for this")])
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "ValidationException"
    assert "No scripted response rule matched" in error["Error"]["Message"]
    assert "'Nothing scripted for this'" in error["Error"]["Message"]


@pytest.mark.parametrize(
    ("code", "status"), [("ThrottlingException", 429), ("ModelTimeoutException", 408), ("AccessDeniedException", 403)]
)
def test_a_scripted_error_is_the_modeled_exception(client, bedrock_emulator, code, status):
    bedrock_emulator.script(error={"code": code, "message": "scripted failure"})
    with pytest.raises(ClientError) as caught:
        client.converse(modelId=HAIKU, messages=[user("x")])
    response = caught.value.response
    assert (response["Error"]["Code"], response["Error"]["Message"]) == (code, "scripted failure")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == code


def test_a_scripted_error_on_a_stream_is_an_http_error_before_the_stream(client, bedrock_emulator):
    bedrock_emulator.script(error={"code": "ModelErrorException", "extra": {"originalStatusCode": 500}})
    with pytest.raises(ClientError) as caught:
        client.converse_stream(modelId=HAIKU, messages=[user("x")])
    assert caught.value.response["Error"]["Code"] == "ModelErrorException"
    assert caught.value.response["originalStatusCode"] == 500


@pytest.mark.parametrize(
    ("rule", "complaint"),
    [
        ({"respond": {}}, "a response needs `text`, `tool_calls` or `error`"),
        ({"match": {"regex": "("}, "respond": {"text": "x"}}, "match.regex: Value error, invalid regular expression"),
        ({"match": {"operation": "Embed"}, "respond": {"text": "x"}}, "match.operation.0: Input should be 'Converse'"),
        ({"respond": {"text": "x", "stop_reason": "done"}}, "respond.stop_reason: Input should be 'end_turn'"),
        ({"respond": {"error": {"code": "NoSuchException"}}}, "unknown exception 'NoSuchException'"),
        ({"respond": {"error": {"code": "ThrottlingException", "extra": {"resourceName": "x"}}}},
         "ThrottlingException has no member(s) resourceName"),
        ({"respond": {"text": "x"}, "colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_invalid_rules_are_rejected_with_the_reason(bedrock_emulator, rule, complaint):
    with pytest.raises(AdminError) as caught:
        bedrock_emulator.add_rules([rule])
    assert caught.value.status == 400
    assert complaint in caught.value.message
    assert bedrock_emulator.rules() == []


def test_rules_can_be_listed_removed_and_cleared(bedrock_emulator):
    kept = bedrock_emulator.script("kept", name="keep me")
    dropped = bedrock_emulator.script("dropped")
    bedrock_emulator.remove_rule(dropped["id"])
    assert [(r["id"], r["name"], r["source"]) for r in bedrock_emulator.rules()] == [(kept["id"], "keep me", "api")]
    with pytest.raises(AdminError) as caught:
        bedrock_emulator.remove_rule(dropped["id"])
    assert caught.value.status == 404
    bedrock_emulator.clear_rules()
    assert bedrock_emulator.rules() == []


WEATHER_TOOLS = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}}]}


def test_a_scripted_tool_call_is_a_tool_use_block(client, bedrock_emulator):
    bedrock_emulator.script("Checking.", tool_calls=[{"name": "get_weather", "input": {"city": "Paris"},
                                                       "id": "tooluse_scripted01"}])
    reply = client.converse(modelId=HAIKU, messages=[user("weather?")], toolConfig=WEATHER_TOOLS)
    assert reply["output"]["message"]["content"] == [
        {"text": "Checking."},
        {"toolUse": {"toolUseId": "tooluse_scripted01", "name": "get_weather", "input": {"city": "Paris"}}},
    ]
    assert reply["stopReason"] == "tool_use"


def test_a_scripted_tool_call_streams_like_a_generated_one(client, bedrock_emulator):
    bedrock_emulator.script("Checking.", tool_calls=[{"name": "get_weather", "input": {"city": "Paris, France"}}])
    events = list(client.converse_stream(modelId=HAIKU, messages=[user("weather?")], toolConfig=WEATHER_TOOLS)["stream"])
    assert events[:3] == [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "Checking."}, "contentBlockIndex": 0}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
    ]
    start = events[3]["contentBlockStart"]
    assert start["contentBlockIndex"] == 1 and start["start"]["toolUse"]["name"] == "get_weather"
    assert start["start"]["toolUse"]["toolUseId"].startswith("tooluse_")
    fragments = [e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events[4:-3]]
    assert len(fragments) > 1 and json.loads("".join(fragments)) == {"city": "Paris, France"}
    assert events[-3:-1] == [{"contentBlockStop": {"contentBlockIndex": 1}}, {"messageStop": {"stopReason": "tool_use"}}]


def test_a_mid_stream_fault_can_cut_a_tool_calls_input(client, bedrock_emulator):
    bedrock_emulator.script(tool_calls=[{"name": "get_weather", "input": {"city": "Paris"}}])
    bedrock_emulator.fail("modelStreamErrorException", after_events=1)
    seen = []
    with pytest.raises(EventStreamError) as caught:
        for event in client.converse_stream(modelId=HAIKU, messages=[user("w")], toolConfig=WEATHER_TOOLS)["stream"]:
            seen.append(next(iter(event)))
    assert caught.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert seen == ["messageStart", "contentBlockStart", "contentBlockDelta"]
