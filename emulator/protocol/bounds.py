"""Limits on what a request may hold, and JSON parsing that refuses what Python or torch cannot take safely.

Python's `json` accepts NaN, Infinity and 1e400 (as inf), raises a bare ValueError past 4,300 integer digits and
RecursionError near 1,000 levels of nesting, and returns lone surrogates (`"\\ud800"`) that no UTF-8 encoder will
write back. Each of those would surface later as a 500 (or in torch); `loads` turns them all into one
`UnsafeJson` error whose message the caller wraps in its operation's ValidationException wording.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

# Bedrock's request payload limit: InvokeModel's `body` blob is `len 0..25000000` in the service model.
MAX_BODY_BYTES = 25_000_000
# JSON nesting the emulator accepts (an emulator limit: deep enough for any real tool schema, far from recursion).
MAX_DEPTH = 128
# Digits in one JSON integer (Python's int() refuses more than 4,300 by default).
MAX_INT_DIGITS = 4300
# Characters of a user's value an error message quotes (service-model messages: enough for any over-long id).
MAX_QUOTED = 256
MAX_CORAL_QUOTED = 4096

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# orjson reads integers past 64 bits as floats where `json` keeps them exact: such bodies take the `json` path.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


class UnsafeJson(ValueError):
    """A body that is not JSON the emulator can take; `str()` says why, quoting no more than a bounded prefix."""


def quoted(value: object, limit: int = MAX_QUOTED) -> str:
    """`value` as text, cut to `limit` characters with an ellipsis so error messages stay small."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise UnsafeJson("a number has too many digits")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise UnsafeJson(f"the number {quoted(text, 40)} is out of range")
    return value


def _constant(name: str) -> None:
    raise UnsafeJson(f"{name} is not a JSON value")


def _walk(value: Any) -> None:
    """Depth and lone-surrogate checks without recursion (one pass; only run when the text could fail them)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth > MAX_DEPTH:
                raise UnsafeJson("nested too deeply")
            for key, item in node.items():
                _text(key)
                stack.append((item, depth + 1))
        elif isinstance(node, list):
            if depth > MAX_DEPTH:
                raise UnsafeJson("nested too deeply")
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str):
            _text(node)


def _text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeJson("a string holds an unpaired UTF-16 surrogate") from None


def loads(raw: bytes | str) -> Any:
    """Parse JSON, refusing invalid UTF-8, NaN/Infinity, out-of-range numbers, deep nesting and lone surrogates."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    # orjson first (several times faster): it refuses everything `json` parses but this module refuses (invalid
    # UTF-8, NaN, infinities, lone surrogates) and reads the rest alike, save integers past 64 bits. Whatever it
    # refuses goes through `json`, so every accepted body and every error message is the same as before.
    if len(data) - len(data.translate(None, b"0123456789")) < 19 or not _LONG_DIGITS.search(data):  # cheap test first
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
        else:
            if data.count(b"{") + data.count(b"[") > MAX_DEPTH:
                _walk(value)
            return value
    return _loads_json(raw)


def _loads_json(raw: bytes | str) -> Any:
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UnsafeJson("the body is not valid UTF-8") from None
    else:
        text = raw
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise UnsafeJson(f"{exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise UnsafeJson("nested too deeply") from None
    deep = text.count("{") + text.count("[") > MAX_DEPTH
    if deep or _SURROGATE_ESCAPE.search(text):
        _walk(value)
    return value


def dumps_bytes(value: Any) -> bytes:
    """JSON as UTF-8 that never fails on a lone surrogate: it is written back as its `\\udXXX` escape."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "backslashreplace")


def dumps_bytes_yielding(value: Any) -> bytes:
    """`dumps_bytes` for large replies built on a worker thread: the pure-Python encoder gives the GIL back to
    the event loop every few milliseconds, where the C encoder would hold it for the whole (megabytes) reply."""
    chunks = json.JSONEncoder(ensure_ascii=False).iterencode(value, _one_shot=False)
    return "".join(chunks).encode("utf-8", "backslashreplace")
