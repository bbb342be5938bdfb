"""The cassette format without a server: frames decode into readable events and encode back to the same bytes,
matching ignores volatile keys, and differences read as paths."""

from __future__ import annotations

import base64
import json

import pytest

from emulator.protocol.eventstream import encode_message, event_frame, exception_frame
from emulator.recording.cassette import RecordedEvent, RecordedResponse, StreamDecoder, kept_headers, redact
from emulator.recording.matching import VOLATILE, Sent, differences, normalized


def _chunk(obj: object, **dumps) -> dict:
    return {"bytes": base64.b64encode(json.dumps(obj, **dumps).encode()).decode()}


FRAMES = [
    event_frame("messageStart", {"role": "assistant"}),
    event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "héllo \u2028"}, "p": "abcdefgh"}),
    event_frame("chunk", _chunk({"type": "content_block_delta", "delta": {"text": "x"}}, separators=(",", ":"))),
    event_frame("chunk", _chunk({"type": "message_stop"})),  # spaced JSON inside the chunk
    event_frame("chunk", {"bytes": base64.b64encode(b"not json").decode()}),
    exception_frame("throttlingException", {"message": "Too many requests, please wait before trying again."}),
    encode_message([(":message-type", "error"), (":error-code", "Oops"), (":error-message", "m")], b""),
    encode_message([(":event-type", "x"), (":content-type", "text/plain"), (":message-type", "event")], b"\x00raw"),
]


def test_every_frame_decodes_and_encodes_back_to_its_exact_bytes():
    decoder = StreamDecoder()
    whole = b"".join(FRAMES)
    for i in range(0, len(whole), 7):  # fed in odd pieces, as a network delivers them
        decoder.feed(whole[i:i + 7], offset_ms=i)
    assert [event.frame() for event in decoder.events] == FRAMES


def test_decoded_events_are_readable():
    decoder = StreamDecoder()
    decoder.feed(b"".join(FRAMES[:6]), 12.34)
    first, delta, compact, spaced, opaque, error = decoder.events
    assert first.model_dump(exclude_none=True) == {"offset_ms": 12.3, "event": "messageStart",
                                                   "payload": {"role": "assistant"}}
    assert delta.payload["delta"] == {"text": "héllo \u2028"}
    assert (compact.chunk, compact.style) == ({"type": "content_block_delta", "delta": {"text": "x"}}, None)
    assert (spaced.chunk, spaced.style) == ({"type": "message_stop"}, "spaced")
    assert opaque.chunk is None and opaque.payload == {"bytes": base64.b64encode(b"not json").decode()}
    assert error.exception == "throttlingException"


def test_a_json_body_keeps_its_layout():
    spaced = RecordedResponse(body={"a": [1, "é"]}, body_style="spaced")
    assert spaced.body_bytes() == b'{"a": [1, "\xc3\xa9"]}'
    assert RecordedResponse(body={"a": 1}).body_bytes() == b'{"a":1}'
    assert RecordedResponse(body_text="plain").body_bytes() == b"plain"


def test_an_event_has_exactly_one_kind():
    with pytest.raises(ValueError, match="exactly one of `event`, `exception` or `headers`"):
        RecordedEvent(event="a", exception="b")


def test_only_headers_a_client_reads_are_kept():
    headers = [("Authorization", "AWS4-HMAC-SHA256 Credential=..."), ("X-Amz-Date", "20261201T000000Z"),
               ("X-Amz-Security-Token", "t"), ("Content-Type", "application/json"), ("Accept", "*/*"),
               ("X-Amzn-Bedrock-Trace", "ENABLED"), ("x-amzn-ErrorType", "ValidationException"), ("Host", "h")]
    assert kept_headers(headers) == {"Content-Type": "application/json", "Accept": "*/*",
                                     "X-Amzn-Bedrock-Trace": "ENABLED", "x-amzn-ErrorType": "ValidationException"}


def test_volatile_keys_are_ignored_anywhere_and_differences_read_as_paths():
    turn = {"messages": [{"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_a", "name": "f"}}]}]}
    other = {"messages": [{"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_b", "name": "g"}}]}]}
    assert normalized(turn, VOLATILE) != normalized(other, VOLATILE)
    assert Sent(other).normalized(frozenset(VOLATILE)) == normalized(
        {"messages": [{"role": "assistant", "content": [{"toolUse": {"toolUseId": "x", "name": "g"}}]}]}, VOLATILE)
    assert differences(turn, other, VOLATILE) == ["messages[0].content[0].toolUse.name: recorded 'f', sent 'g'"]
    assert differences({"a": 1, "b": [1, 2]}, {"b": [1], "c": 2}) == [
        "a: recorded 1, not sent", "b: recorded 2 items, sent 1", "c: sent 2, not recorded"]
    assert differences({"x": list(range(5))}, {"x": list(range(10, 15))}, limit=2) == [
        "x[0]: recorded 0, sent 10", "x[1]: recorded 1, sent 11", "and 3 more difference(s)"]


def test_redaction_reaches_every_depth():
    assert redact({"system": "s", "messages": [{"system": {"deep": 1}, "text": "t"}]}, ["system"]) == {
        "system": "<redacted>", "messages": [{"system": "<redacted>", "text": "t"}]}
