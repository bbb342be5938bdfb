"""ConverseStream: real event-stream framing over chunked HTTP, decoded by botocore, produced token by token.

The raw tests read the socket themselves (no SDK) to see what boto3 hides: every frame's headers, the HTTP
envelope, and when each frame arrives.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.parse
import uuid

import pytest
from botocore.eventstream import EventStreamBuffer
from conftest import HAIKU, user

from emulator.engine.text_model import render_chat

CAPITAL = "What is the capital of France?"
STORY = "Tell me a story."
COUNTING = "Count from 1 to 1000, one number per line."
PATH = "/model/" + urllib.parse.quote(HAIKU, safe="") + "/converse-stream"


def greedy(max_tokens: int) -> dict:
    return {"temperature": 0, "maxTokens": max_tokens}


def stream_events(client, prompt: str, **kwargs) -> list[tuple[float, dict]]:
    """(seconds since the call, event) for each event boto3 yields, as it yields it."""
    started = time.monotonic()
    reply = client.converse_stream(modelId=HAIKU, messages=[user(prompt)], **kwargs)
    return [(time.monotonic() - started, event) for event in reply["stream"]]


def deltas(events: list[tuple[float, dict]]) -> list[str]:
    return [e["contentBlockDelta"]["delta"]["text"] for _, e in events if "contentBlockDelta" in e]


def only(events: list[tuple[float, dict]], kind: str) -> dict:
    (found,) = [e[kind] for _, e in events if kind in e]
    return found


def raw_stream(url: str, body: dict) -> tuple[http.client.HTTPResponse, list]:
    """POST a ConverseStream request and decode every frame of the raw body with botocore's decoder."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    conn.request("POST", PATH, body=json.dumps(body), headers={"Content-Type": "application/json"})
    reply = conn.getresponse()
    buffer = EventStreamBuffer()
    buffer.add_data(reply.read())  # http.client undoes the chunked transfer encoding
    conn.close()
    return reply, list(buffer)


def test_raw_frames_headers_order_and_http_envelope(server):
    reply, frames = raw_stream(server.url, {"messages": [user(STORY)], "inferenceConfig": greedy(5)})
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/vnd.amazon.eventstream"
    assert reply.headers["Transfer-Encoding"] == "chunked"
    assert reply.headers["Content-Length"] is None  # with one, botocore would buffer until the end
    assert str(uuid.UUID(reply.headers["x-amzn-RequestId"])) == reply.headers["x-amzn-RequestId"]

    for frame in frames:  # all three headers, in the order AWS sends them (the JS SDK needs :message-type)
        assert list(frame.headers) == [":event-type", ":content-type", ":message-type"]
        assert frame.headers[":content-type"] == "application/json"
        assert frame.headers[":message-type"] == "event"
    order = " ".join(frame.headers[":event-type"] for frame in frames)
    # Bedrock's grammar for one text block: no contentBlockStart, deltas, stop, messageStop, then metadata.
    assert re.fullmatch(r"messageStart( contentBlockDelta)+ contentBlockStop messageStop metadata", order), order

    payloads = [json.loads(frame.payload) for frame in frames]
    assert payloads[0] == {"role": "assistant"}
    for delta in payloads[1:-3]:
        assert delta["contentBlockIndex"] == 0 and set(delta["delta"]) == {"text"} and delta["delta"]["text"]
    assert payloads[-3] == {"contentBlockIndex": 0}
    assert payloads[-2] == {"stopReason": "max_tokens"}
    metadata = payloads[-1]
    assert metadata["usage"]["outputTokens"] == 5
    assert metadata["usage"]["totalTokens"] == metadata["usage"]["inputTokens"] + 5
    assert isinstance(metadata["metrics"]["latencyMs"], int)


@pytest.mark.parametrize("prompt", [CAPITAL, STORY, "Translate 'good morning' into Japanese."])
def test_streamed_text_equals_converse_text_at_temperature_zero(client, prompt):
    events = stream_events(client, prompt, inferenceConfig=greedy(10))
    plain = client.converse(modelId=HAIKU, messages=[user(prompt)], inferenceConfig=greedy(10))
    assert "".join(deltas(events)) == plain["output"]["message"]["content"][0]["text"]
    assert only(events, "messageStop")["stopReason"] == plain["stopReason"]
    assert only(events, "metadata")["usage"] == plain["usage"]
    assert all("\ufffd" not in piece for piece in deltas(events))  # no half UTF-8 character ever goes out


def test_deltas_arrive_as_the_model_produces_them(client):
    events = stream_events(client, COUNTING, inferenceConfig=greedy(40))
    arrivals = [at for at, e in events if "contentBlockDelta" in e]
    assert only(events, "metadata")["usage"]["outputTokens"] == 40
    assert len(arrivals) >= 20  # one delta per decoded piece, not one buffered blob
    finished = events[-1][0]
    # Buffered output would arrive all at once at the end; a live stream's first delta comes after about one
    # token of work out of forty, and the deltas keep arriving across the generation.
    assert arrivals[0] < 0.5 * finished
    assert arrivals[len(arrivals) // 2] - arrivals[0] > 0.2 * (finished - arrivals[0])


def test_max_tokens_in_stream_and_usage_in_metadata(client, tokenizer):
    events = stream_events(client, STORY, inferenceConfig=greedy(3))
    assert only(events, "messageStop") == {"stopReason": "max_tokens"}
    usage = only(events, "metadata")["usage"]
    prompt = tokenizer(render_chat(tokenizer, [{"role": "user", "content": STORY}]), add_special_tokens=False)
    assert usage == {"inputTokens": len(prompt["input_ids"]), "outputTokens": 3, "totalTokens": len(prompt["input_ids"]) + 3}
    assert list(events[0][1]) == ["messageStart"] and "contentBlockStart" not in {k for _, e in events for k in e}


def _straddling_stop(pieces: list[str]) -> tuple[str, int]:
    """A stop string made of the end of one streamed piece and the start of the next (so of two tokens), and
    where it first starts in the text."""
    text = "".join(pieces)
    offset = 0
    for left, right in zip(pieces, pieces[1:]):
        offset += len(left)
        if offset > 4 and len(left.strip()) >= 2 and len(right.strip()) >= 2:
            stop = left[-2:] + right[:2]
            if text.find(stop) == offset - 2:
                return stop, offset - 2
    raise AssertionError(f"no two neighbouring pieces to straddle in {pieces!r}")


def test_stop_sequence_spanning_tokens_never_leaks(client):
    free = deltas(stream_events(client, STORY, inferenceConfig=greedy(16)))
    stop, at = _straddling_stop(free)
    expected = "".join(free)[:at]

    events = stream_events(
        client, STORY, inferenceConfig={**greedy(16), "stopSequences": [stop]},
        additionalModelResponseFieldPaths=["/stop_sequence"],
    )
    streamed = deltas(events)
    assert "".join(streamed) == expected  # nothing of the stop sequence, nothing after it
    assert len(streamed) >= 2  # the text before it still streamed piece by piece
    assert only(events, "messageStop") == {"stopReason": "stop_sequence", "additionalModelResponseFields": {"stop_sequence": stop}}

    plain = client.converse(
        modelId=HAIKU, messages=[user(STORY)], inferenceConfig={**greedy(16), "stopSequences": [stop]},
        additionalModelResponseFieldPaths=["/stop_sequence"],
    )
    assert plain["output"]["message"]["content"][0]["text"] == expected
    assert plain["stopReason"] == "stop_sequence"
    assert plain["additionalModelResponseFields"] == {"stop_sequence": stop}


def test_empty_generation_streams_no_text_block(client):
    first_word = deltas(stream_events(client, CAPITAL, inferenceConfig=greedy(2)))[0].split()[0]
    events = stream_events(client, CAPITAL, inferenceConfig={**greedy(12), "stopSequences": [first_word]})
    assert [next(iter(e)) for _, e in events] == ["messageStart", "messageStop", "metadata"]
    assert only(events, "messageStop") == {"stopReason": "stop_sequence"}


def test_stream_errors_before_the_first_byte_are_http_errors(client):
    with pytest.raises(client.exceptions.ValidationException) as caught:
        client.converse_stream(modelId="nobody.no-such-model-v1:0", messages=[user("Hi")])
    assert caught.value.response["Error"]["Message"] == "The provided model identifier is invalid."
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
