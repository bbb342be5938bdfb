"""Encoder for `application/vnd.amazon.eventstream` messages.

botocore ships only a decoder (used by our tests to check these bytes); the layout is:
prelude (total length, headers length, CRC32 of both), headers, payload, CRC32 of everything before it.
Only string headers are needed for responses, so only they are encoded.
"""

from __future__ import annotations

import json
import struct
import zlib

_STRING = 7


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack("!B", len(n)) + n + struct.pack("!BH", _STRING, len(v)) + v


def encode_message(headers: list[tuple[str, str]], payload: bytes) -> bytes:
    block = b"".join(_header(name, value) for name, value in headers)
    prelude = struct.pack("!II", 16 + len(block) + len(payload), len(block))
    message = prelude + struct.pack("!I", zlib.crc32(prelude)) + block + payload
    return message + struct.pack("!I", zlib.crc32(message))


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def event_frame(event_type: str, payload: dict) -> bytes:
    """A normal event; header order is the one AWS sends."""
    return encode_message(
        [(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")],
        _json(payload),
    )


def exception_frame(member: str, payload: dict) -> bytes:
    """A modeled in-stream exception; `member` is the lowerCamel union member name, e.g. `throttlingException`."""
    return encode_message(
        [(":exception-type", member), (":content-type", "application/json"), (":message-type", "exception")],
        _json(payload),
    )
