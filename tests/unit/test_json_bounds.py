"""Request JSON that Python or torch cannot take safely is refused with a reason, never a crash; JSON Pointers
select members of a native reply (`additionalModelResponseFieldPaths`)."""

from __future__ import annotations

import pytest

from emulator.api.converse_input import check_pointers, response_fields
from emulator.protocol.bounds import MAX_DEPTH, UnsafeJson, dumps_bytes, loads, quoted
from emulator.protocol.errors import BedrockError


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b'{"a": NaN}', "NaN is not a JSON value"),
        (b'{"a": -Infinity}', "-Infinity is not a JSON value"),
        (b'{"a": 1e400}', "the number 1e400 is out of range"),
        (b'{"a": ' + b"9" * 4301 + b"}", "a number has too many digits"),
        (b'{"a": "\xff"}', "the body is not valid UTF-8"),
        (b'{"a": "\\ud800"}', "a string holds an unpaired UTF-16 surrogate"),
        (b'{"\\udfff": 1}', "a string holds an unpaired UTF-16 surrogate"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested too deeply"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"a": 1', "Expecting ',' delimiter at position 7"),
    ],
)
def test_unsafe_json_is_refused_with_its_reason(raw, reason):
    with pytest.raises(UnsafeJson) as caught:
        loads(raw)
    assert str(caught.value) == reason


def test_json_at_the_limits_is_accepted():
    assert loads(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    assert loads('{"a": "\\ud83d\\udc4b", "n": ' + "9" * 4300 + ", \"f\": 1.5e308}")["a"] == "👋"
    assert loads('"[[[[ not nesting"') == "[[[[ not nesting"


def test_a_lone_surrogate_is_written_back_as_its_escape():
    assert dumps_bytes({"a": "\ud800x"}) == b'{"a": "\\ud800x"}'


def test_quoted_cuts_long_values():
    assert quoted("abc", 5) == "abc"
    assert quoted("abcdefgh", 5) == "abcde..."
    assert quoted(12345678, 3) == "123..."


NATIVE = {"stop_sequence": None, "usage": {"input_tokens": 3}, "content": [{"type": "text"}], "a/b": {"~x": 1}, "~1": 2}


@pytest.mark.parametrize(
    "pointers, selected",
    [
        (["/stop_sequence"], {"stop_sequence": None}),
        (["/usage/input_tokens", "/missing", "/content/0/type"], {"usage": {"input_tokens": 3}, "content": {"0": {"type": "text"}}}),
        (["/content/1", "/content/-1", "/content/٠"], {}),  # no such index; an Arabic-Indic zero is not 0
        (["/a~1b/~0x"], {"a/b": {"~x": 1}}),
        (["/~01"], {"~1": 2}),  # ~1 is decoded before ~0, as RFC 6901 says
    ],
)
def test_response_field_paths_select_from_the_native_reply(pointers, selected):
    assert response_fields(NATIVE, pointers) == selected


def test_no_response_field_paths_select_nothing():
    assert response_fields(NATIVE, None) is None
    assert response_fields(NATIVE, []) is None


def test_a_pointer_without_a_leading_slash_is_refused():
    check_pointers(None)
    check_pointers(["/ok", "/"])
    with pytest.raises(BedrockError) as caught:
        check_pointers(["/ok", "stop_sequence"])
    assert caught.value.message == ("The value at additionalModelResponseFieldPaths.1 is not a valid JSON Pointer. "
                                    "Use a path such as /stop_sequence and try again.")
