"""Our `application/vnd.amazon.eventstream` encoder, checked byte for byte and through botocore's own decoder.

These are the only tests that call our code directly: the encoder has no HTTP face of its own, and the vectors
below are the published ones (wire-protocol.md §6.4, smithy's eventstream test vectors).
"""

from __future__ import annotations

import json

import pytest
from botocore.eventstream import ChecksumMismatch, EventStream, EventStreamBuffer
from botocore.exceptions import EventStreamError
from botocore.parsers import EventStreamJSONParser
from botocore.session import get_session

from emulator.protocol.eventstream import encode_message, event_frame, exception_frame

# wire-protocol.md §6.4: one messageStart event, as AWS frames it.
MESSAGE_START = bytes.fromhex(
    "000000760000005296d5fade0b3a6576656e742d7479706507000c6d65737361676553746172740d3a636f6e74656e742d747970"
    "650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b22726f6c65223a2261"
    "7373697374616e74227d6fa8c599"
)
# smithy-typescript eventstream-codec test vector `empty_message`.
EMPTY_MESSAGE = bytes.fromhex("000000100000000005c248eb7d98c8ff")


def decode(data: bytes) -> list:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def test_message_start_matches_the_worked_example_byte_for_byte():
    assert event_frame("messageStart", {"role": "assistant"}) == MESSAGE_START


def test_empty_message_matches_the_smithy_vector():
    assert encode_message([], b"") == EMPTY_MESSAGE


def test_botocore_decodes_our_event_with_its_crcs_and_headers_in_aws_order():
    payload = {"contentBlockIndex": 0, "delta": {"text": "café ☕ \"quoted\"\n"}}
    (message,) = decode(event_frame("contentBlockDelta", payload))
    assert list(message.headers.items()) == [
        (":event-type", "contentBlockDelta"),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ]
    assert json.loads(message.payload) == payload
    prelude = message.prelude
    assert prelude.total_length == len(event_frame("contentBlockDelta", payload))
    assert prelude.headers_length == prelude.total_length - 16 - len(message.payload)


def test_several_frames_in_one_buffer_decode_in_order():
    frames = [event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": t}}) for t in "abc"]
    texts = [json.loads(m.payload)["delta"]["text"] for m in decode(b"".join(frames))]
    assert texts == ["a", "b", "c"]


@pytest.mark.parametrize("where", ["prelude", "payload"])
def test_a_corrupted_frame_fails_botocore_checksums(where):
    frame = bytearray(event_frame("messageStart", {"role": "assistant"}))
    frame[5 if where == "prelude" else len(frame) - 6] ^= 0x01
    with pytest.raises(ChecksumMismatch):
        decode(bytes(frame))


class _RawStream:
    """What botocore's EventStream reads from: an urllib3-like object with `.stream()`."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self):
        yield self._data

    def close(self) -> None:
        pass


def _converse_stream(data: bytes) -> EventStream:
    model = get_session().get_service_model("bedrock-runtime")
    output = model.operation_model("ConverseStream").output_shape.members["stream"]
    return EventStream(_RawStream(data), output, EventStreamJSONParser(), "ConverseStream")


def test_boto3_parses_our_frames_into_converse_stream_events():
    data = event_frame("messageStart", {"role": "assistant"}) + event_frame("messageStop", {"stopReason": "end_turn"})
    assert list(_converse_stream(data)) == [
        {"messageStart": {"role": "assistant"}},
        {"messageStop": {"stopReason": "end_turn"}},
    ]


def test_boto3_raises_our_exception_frame_with_the_lower_camel_member_as_code():
    frame = exception_frame("throttlingException", {"message": "Too many tokens, please wait before trying again."})
    (message,) = decode(frame)
    assert message.headers == {
        ":exception-type": "throttlingException",
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    with pytest.raises(EventStreamError) as caught:
        list(_converse_stream(frame))
    assert caught.value.response["Error"] == {
        "Code": "throttlingException",
        "Message": "Too many tokens, please wait before trying again.",
    }
