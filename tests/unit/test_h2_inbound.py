"""The HTTP/2 edge's own header coding and checks (emulator/edge/hpack_codec.py, h2_headers.py) against the
libraries they stand in for: the same inputs, valid or broken, give the same headers, the same HPACK table and the
same errors as hpack's decoder and h2's inbound normalization + validation; what the encoder writes, hpack reads
back."""

from __future__ import annotations

import random

import hpack
import pytest
from h2.exceptions import ProtocolError
from h2.utilities import HeaderValidationFlags, normalize_inbound_headers, validate_headers
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.huffman_table import decode_huffman as hpack_decode_huffman

from emulator.edge.h2_headers import checked
from emulator.edge.hpack_codec import Decoder, Encoder, decode_huffman

HUFFMAN = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
AUTHORIZATION = (b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1/bedrock/aws4_request, "
                 b"SignedHeaders=accept;content-type;host;x-amz-date, Signature=" + b"0dfe2f559df9ba71" * 4)


def outcome(call, *args):
    """What a call gives: its result, or its exception's type and message (integer-decoding messages hold a repr
    of a buffer, so only their start is compared)."""
    try:
        return ("ok", call(*args))
    except Exception as exc:  # noqa: BLE001 - the exception is the outcome compared
        message = str(exc)
        if message.startswith("Unable to decode HPACK integer") or message.startswith("Variable integer"):
            message = message[:30]
        return (type(exc), message)


def typed(headers):
    return [(type(h), bytes(h[0]), bytes(h[1])) for h in headers]


def indexing(headers):
    return [(getattr(h, "indexable", True), bytes(h[0]), bytes(h[1])) for h in headers]


# --- Huffman ---------------------------------------------------------------------------------------------------


def test_huffman_decoding_matches_hpack_on_encoded_and_on_arbitrary_bytes():
    rng = random.Random(1)
    samples = [b"", AUTHORIZATION, b"/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", b"207"]
    samples += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))) for _ in range(500)]
    for text in samples:
        assert decode_huffman(HUFFMAN.encode(text)) == hpack_decode_huffman(HUFFMAN.encode(text)) == text
    broken = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))) for _ in range(5000)]
    broken += [b"\xff\xff\xff\xff", b"\xfe", b"\x00", b"\xff" * 5]  # EOS, bad and long padding
    results = [outcome(decode_huffman, data) == outcome(hpack_decode_huffman, data) for data in broken]
    assert all(results)
    assert sum(outcome(decode_huffman, data)[0] != "ok" for data in broken) > 1000  # many were refused


def test_huffman_strings_that_share_a_known_start_decode_and_fail_as_hpack_does():
    """Strings resume after a remembered start (`_prefixes`): signatures that differ, strings cut or broken after a
    shared start, and enough of them to clear the memory, all against hpack."""
    rng = random.Random(6)
    head = AUTHORIZATION[:-64]
    for i in range(1500):
        text = head + bytes(rng.choice(b"0123456789abcdef") for _ in range(64))
        coded = HUFFMAN.encode(text)
        variants = [coded, coded[:rng.randrange(1, len(coded))]]
        i = rng.randrange(len(coded))
        variants.append(coded[:i] + bytes([rng.randrange(256)]) + coded[i + 1:])
        variants.append(coded + b"\xff" * rng.randrange(1, 6))
        for data in variants:
            assert outcome(decode_huffman, data) == outcome(hpack_decode_huffman, data)
        assert decode_huffman(coded) == text


# --- HPACK decoding --------------------------------------------------------------------------------------------

NAMES = [b":method", b":path", b":authority", b":scheme", b"content-type", b"accept", b"authorization",
         b"content-length", b"x-amz-date", b"user-agent", b"cookie", b"x-custom", b"x" * 200]
VALUES = [b"POST", b"/model/x/converse", b"application/json", b"", b"1", AUTHORIZATION, b"a" * 300, b"\xff\x00"]


def random_headers(rng: random.Random) -> list:
    headers = []
    for _ in range(rng.randrange(1, 14)):
        header = (rng.choice(NAMES), rng.choice(VALUES) if rng.random() < 0.8 else rng.randbytes(rng.randrange(9)))
        headers.append(hpack.NeverIndexedHeaderTuple(*header) if rng.random() < 0.2 else header)
    return headers


def table_state(decoder):
    table = decoder.header_table
    return list(table.dynamic_entries), table._current_size, table.maxsize, decoder.max_allowed_table_size


def test_decoding_valid_blocks_matches_hpack_and_keeps_the_same_table():
    rng = random.Random(2)
    encoder, ours, theirs = hpack.Encoder(), Decoder(), hpack.Decoder()
    for step in range(1500):
        if step % 97 == 0:  # the peer changes the table size (as after a SETTINGS ack)
            size = rng.choice([0, 100, 512, 4096])
            encoder.header_table_size = size
        block = encoder.encode(random_headers(rng), huffman=rng.random() < 0.7)
        got, expected = outcome(ours.decode, block, True), outcome(theirs.decode, block, True)
        assert got[0] == expected[0] == "ok"
        assert typed(got[1]) == typed(expected[1])
        assert table_state(ours) == table_state(theirs)


def test_decoding_broken_blocks_fails_as_hpack_does():
    rng = random.Random(3)
    encoder = hpack.Encoder()
    blocks = [encoder.encode(random_headers(rng), huffman=rng.random() < 0.7) for _ in range(300)]
    handcrafted = [b"\x80", b"\xff\xff\xff\xff\xff\xff\xff\x7f", b"\x40", b"\x40\x81", b"\x40\x01", b"\x00\x01a",
                   b"\x3f\xe1\x1f", b"\x3f\xe2\x1f", b"\x3f\xff\xff\xff", b"\x82\x20", b"\x10\x85\xff\xff\xff\xff\xff\x00",
                   b"\x0f\x2f\x01a", b"\x7f\x81\x01\x00", b"\xbe", b"\x00\x7f"]
    kinds = set()
    for limit in (64 * 1024, 200):
        ours, theirs = Decoder(limit), hpack.Decoder(limit)
        for block in blocks:  # in sequence (shared table state), each one broken in some way
            kind = rng.randrange(4)
            if kind == 0:
                block = block[:rng.randrange(len(block) + 1)]
            elif kind == 1 and block:
                i = rng.randrange(len(block))
                block = block[:i] + bytes([rng.randrange(256)]) + block[i + 1:]
            elif kind == 2:
                block = rng.randbytes(rng.randrange(1, 30))
            got, expected = outcome(ours.decode, block, True), outcome(theirs.decode, block, True)
            kinds.add(got[0])
            if got[0] == "ok":
                assert typed(got[1]) == typed(expected[1])
            else:
                assert got == expected
            assert table_state(ours) == table_state(theirs)
        for block in handcrafted:
            got, expected = outcome(Decoder(limit).decode, block, True), outcome(hpack.Decoder(limit).decode, block, True)
            kinds.add(got[0])
            assert got == expected if got[0] != "ok" else typed(got[1]) == typed(expected[1])
    assert {"ok", hpack.HPACKDecodingError, hpack.InvalidTableIndex, hpack.OversizedHeaderListError,
            hpack.InvalidTableSizeError} <= kinds


def test_a_block_over_the_header_list_limit_is_refused_as_hpack_refuses_it():
    block = hpack.Encoder().encode([(b"x-big", b"v" * 300)] * 4)
    assert outcome(Decoder(1000).decode, block, True) == outcome(hpack.Decoder(1000).decode, block, True)
    assert outcome(Decoder(1000).decode, block, True)[0] is hpack.OversizedHeaderListError


# --- HPACK encoding --------------------------------------------------------------------------------------------


def test_encoded_blocks_decode_to_the_same_fields_through_size_changes():
    rng = random.Random(4)
    ours, reader = Encoder(), hpack.Decoder()
    statuses = [(b":status", s) for s in (b"200", b"204", b"400", b"404", b"500", b"429")]
    for step in range(800):
        if step % 50 == 0:
            size = rng.choice([0, 256, 4096])
            ours.header_table_size = size
            reader.max_allowed_table_size = size
        headers = [rng.choice(statuses), *random_headers(rng)]
        block = ours.encode(headers)
        assert indexing(reader.decode(block, raw=True)) == indexing(headers)
        assert not reader.header_table.dynamic_entries  # nothing is ever indexed
    assert ours.encode([(b":status", b"200")]) == b"\x88"


# --- header checks ---------------------------------------------------------------------------------------------

CHECK_NAMES = [b":method", b":path", b":scheme", b":authority", b":status", b":protocol", b":custom", b"host",
               b"cookie", b"te", b"connection", b"keep-alive", b"content-type", b"Upper", b"bad name", b"a:b", b"",
               b"\x7fdel", b"x-amz-date", b"authorization", b"\xc3\xa9"]
CHECK_VALUES = [b"POST", b"CONNECT", b"GET", b"/", b"", b"http", b"localhost", b"other", b"trailers", b"gzip",
                b" lead", b"trail\t", b"a\x00b", b"a\nb", b"a\rb", b"x=1", b"y=2", AUTHORIZATION, b"\xff"]
VALID_REQUEST = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"localhost")]


def h2_checked(headers, trailer):
    flags = HeaderValidationFlags(is_client=False, is_trailer=trailer, is_response_header=False,
                                  is_push_promise=False)
    return list(validate_headers(normalize_inbound_headers(headers, flags), flags))


@pytest.mark.parametrize("trailer", [False, True])
def test_header_checks_match_h2s_pipeline(trailer):
    rng = random.Random(5 + trailer)
    cases = [list(VALID_REQUEST), [*VALID_REQUEST, (b"cookie", b"a=1"), (b"te", b"trailers"), (b"cookie", b"b=2")],
             [(b"cookie", b"a=1"), *VALID_REQUEST], [*VALID_REQUEST, (b"host", b"localhost")]]
    for _ in range(6000):
        headers = list(VALID_REQUEST) if rng.random() < 0.5 and not trailer else []
        for _ in range(rng.randrange(0, 6)):
            header = (rng.choice(CHECK_NAMES), rng.choice(CHECK_VALUES))
            headers.insert(rng.randrange(len(headers) + 1), header)
        if rng.random() < 0.3:
            rng.shuffle(headers)
        cases.append([hpack.NeverIndexedHeaderTuple(*h) if rng.random() < 0.1 else hpack.HeaderTuple(*h)
                      for h in headers])
    accepted, messages = 0, set()
    for headers in cases:
        got, expected = outcome(checked, list(headers), trailer), outcome(h2_checked, list(headers), trailer)
        if got[0] == "ok":
            accepted += 1
            assert typed(got[1]) == typed(expected[1]), headers
        else:
            assert got == expected, headers
            assert got[0] is ProtocolError
            messages.add(got[1].split(" ")[1])
    assert accepted > 100 and len(messages) >= (4 if trailer else 10)


# --- the copy of h2's _receive_frame ---------------------------------------------------------------------------


def test_h2s_receive_frame_is_still_the_one_copied_without_its_trace_line():
    """emulator/edge/http2.py's `_Connection._receive_frame` is h2's minus one trace line: when h2 changes its
    own, this fails so that the copy is looked at again."""
    import hashlib
    import inspect

    import h2.connection

    source = inspect.getsource(h2.connection.H2Connection._receive_frame)
    assert hashlib.sha1(source.encode()).hexdigest() == "883b844c8490d07a89189147ae003372ef2d8532", source
