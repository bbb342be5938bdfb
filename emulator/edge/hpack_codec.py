"""HPACK for the HTTP/2 edge, in fewer Python steps than hpack's own coder (whose classes these extend).

`Decoder`: hpack's, with the same headers, dynamic table and errors. Every request's header block is decoded here, and its largest fields arrive as Huffman-coded literals every time:
clients built on nghttp2 (Node's SDKs, curl, h2load) never index `:path`, `content-length` or `authorization`,
and a SigV4 `authorization` is new on each request anyway. hpack's Huffman decoder takes 4 bits per Python step;
this one takes a byte (rows of hpack's own nibble table composed in pairs, each row built when its state is
first reached), about 3x fewer steps. The block loop reads the block in place (hpack copies the rest of the block
for each literal) and logs nothing per header. The results are hpack's (a differential test holds them equal:
tests/unit/test_h2_inbound.py).

`Encoder`: the response header blocks, written without the dynamic table and without Huffman coding: each field a
static-table index or a literal that is never added to any table, so a field's encoding never depends on what
came before and is remembered (a few hundred distinct fields at most; the unique ones, a request id, are written
as never-indexed literals and not remembered). A block costs a dictionary look-up per field instead of hpack's
table search, insertion and eviction; it is some tens of bytes longer on a loopback link.
"""

from __future__ import annotations

import hpack
from hpack.exceptions import HPACKDecodingError, InvalidTableSizeError, OversizedHeaderListError
from hpack.hpack import decode_integer, encode_integer
from hpack.huffman_table import HUFFMAN_COMPLETE, HUFFMAN_EMIT_SYMBOL, HUFFMAN_FAIL, HUFFMAN_TABLE
from hpack.struct import HeaderTuple, NeverIndexedHeaderTuple
from hpack.table import HeaderTable

# hpack's Huffman automaton a byte at a time: `_rows[state][byte]` is (the next state, the bytes emitted). State
# `_AFTER_EOS` follows a decoded EOS symbol (an error); a row is built the first time its state is reached.
_AFTER_EOS = 256


def _build_row(state: int) -> list[tuple[int, bytes]]:
    row = []
    for byte in range(256):
        current, out = state, bytearray()
        for nibble in (byte >> 4, byte & 0x0F):
            current, flags, symbol = HUFFMAN_TABLE[current * 16 + nibble]
            if flags & HUFFMAN_FAIL:
                current = _AFTER_EOS
                break
            if flags & HUFFMAN_EMIT_SYMBOL:
                out.append(symbol)
        row.append((current, bytes(out)))
    _rows[state] = row
    return row


class _Unbuilt:
    __slots__ = ("state",)

    def __init__(self, state: int) -> None:
        self.state = state

    def __getitem__(self, byte: int) -> tuple[int, bytes]:
        return _build_row(self.state)[byte]


class _Failed:
    def __getitem__(self, byte: int) -> tuple[int, bytes]:
        raise HPACKDecodingError("Invalid Huffman string")


_rows: list = [_Unbuilt(state) for state in range(256)] + [_Failed()]
# Whether the input may end in a state (only padding, the start of EOS, since the last symbol): in hpack's table
# the COMPLETE flag is a property of the state a step lands in.
_accepting = [False] * 257
for _index, (_state, _flags, _) in enumerate(HUFFMAN_TABLE):
    if not _flags & HUFFMAN_FAIL:
        _accepting[_state] = bool(_flags & HUFFMAN_COMPLETE)


# Where a string's decoding stood after each whole `_STEP` bytes of it, by those bytes: a string that starts like
# one seen before resumes there. A SigV4 `authorization` is the same text up to its signature for every request of
# a client on a day (~100 of its ~150 coded bytes), `:path` the same for every call to a model. Only proper
# prefixes are kept (a whole string is always decoded to its end); cleared when full.
_STEP = 32
_prefixes: dict[bytes, tuple[int, bytes]] = {}
_PREFIXES_REMEMBERED = 512


def decode_huffman(data: bytes) -> bytes:
    """hpack.huffman_table.decode_huffman, a byte per step: the same output and the same errors."""
    if not data:
        return b""
    rows, prefixes = _rows, _prefixes
    state, out, start = 0, [], (len(data) - 1) // _STEP * _STEP
    while start:
        known = prefixes.get(data[:start])
        if known is not None:
            state, decoded = known
            out.append(decoded)
            break
        start -= _STEP
    end = start
    while end < len(data):
        end = min(end + _STEP, len(data))
        for byte in data[start:end]:
            state, piece = rows[state][byte]
            out.append(piece)
        if end < len(data) and state != _AFTER_EOS:
            if len(prefixes) >= _PREFIXES_REMEMBERED:
                prefixes.clear()
            out = [b"".join(out)]
            prefixes[data[:end]] = (state, out[0])
        start = end
    if state == _AFTER_EOS:
        raise HPACKDecodingError("Invalid Huffman string")
    if not _accepting[state]:
        raise HPACKDecodingError("Incomplete Huffman string")
    return b"".join(out)


_STATIC = HeaderTable.STATIC_TABLE
_STATIC_LENGTH = len(_STATIC)
_new = tuple.__new__  # HeaderTuple(name, value) without its Python-level __new__


class Decoder(hpack.Decoder):
    def decode(self, data: bytes, raw: bool = False) -> list[HeaderTuple]:  # type: ignore[override]
        if not raw:  # h2 asks for raw bytes; anything else is hpack's own path
            return super().decode(data, raw)
        data = bytes(data)
        view = memoryview(data)  # multi-byte integers go through hpack's own decode_integer, as it reports them
        table = self.header_table
        limit = self.max_header_list_size
        headers: list[HeaderTuple] = []
        inflated = 0
        i, end = 0, len(data)
        while i < end:
            first = data[i]
            if first & 0x80:  # indexed field
                index = first & 0x7F
                if index == 0x7F:
                    index, consumed = decode_integer(view[i:], 7)
                    i += consumed
                else:
                    i += 1
                if 0 < index <= _STATIC_LENGTH:
                    header = _new(HeaderTuple, _STATIC[index - 1])
                elif _STATIC_LENGTH < index <= _STATIC_LENGTH + len(table.dynamic_entries):
                    header = _new(HeaderTuple, table.dynamic_entries[index - _STATIC_LENGTH - 1])
                else:
                    header = _new(HeaderTuple, table.get_by_index(index))  # raises hpack's InvalidTableIndex
            elif first & 0x40 or not first & 0x20:  # a literal, added to the table or not
                if first & 0x40:
                    indexing, never, name_index, mask = True, False, first & 0x3F, 0x3F
                else:
                    indexing, never, name_index, mask = False, bool(first & 0x10), first & 0x0F, 0x0F
                if name_index:
                    if name_index == mask:
                        name_index, consumed = decode_integer(view[i:], 6 if indexing else 4)
                        i += consumed
                    else:
                        i += 1
                    name = table.get_by_index(name_index)[0]
                else:
                    i += 1
                    name, i = self._string(data, view, i)
                value, i = self._string(data, view, i)
                header = _new(NeverIndexedHeaderTuple if never else HeaderTuple, (name, value))
                if indexing:
                    table.add(name, value)
            else:  # dynamic table size update: only before the first field
                if headers:
                    raise HPACKDecodingError("Table size update not at the start of the block")
                new_size, consumed = decode_integer(view[i:], 5)
                if new_size > self.max_allowed_table_size:
                    raise InvalidTableSizeError("Encoder exceeded max allowable table size")
                self.header_table_size = new_size
                i += consumed
                continue
            headers.append(header)
            inflated += 32 + len(header[0]) + len(header[1])
            if inflated > limit:
                raise OversizedHeaderListError(f"A header list larger than {limit} has been received")
        self._assert_valid_table_size()
        return headers

    @staticmethod
    def _string(data: bytes, view: memoryview, i: int) -> tuple[bytes, int]:
        """A length-prefixed string literal at `i`, and where the next field starts."""
        if i >= len(data):
            decode_integer(view[i:], 7)  # raises hpack's error for a missing integer
        first = data[i]
        length = first & 0x7F
        if length == 0x7F:
            length, consumed = decode_integer(view[i:], 7)
            start = i + consumed
        else:
            start = i + 1
        text = data[start:start + length]
        if len(text) != length:
            raise HPACKDecodingError("Truncated header block")
        if first & 0x80:
            text = decode_huffman(text)
        return text, start + length


_STATIC_NAMES = HeaderTable.STATIC_TABLE_MAPPING  # name -> (its first index, {value: index})
_REMEMBERED = 512  # distinct fields whose encoding is kept (the table is cleared when full)


_heads: dict[tuple[bytes, int], bytes] = {}  # (name, 0x00 or 0x10) -> a literal's representation up to its value


def _literal(name: bytes, value: bytes, never_indexed: bool) -> bytes:
    """A literal field without indexing (RFC 7541 6.2.2) or never indexed (6.2.3), its name indexed when static."""
    flag = 0x10 if never_indexed else 0x00
    head = _heads.get((name, flag))
    if head is None:
        static = _STATIC_NAMES.get(name)
        if static is not None:
            encoded = encode_integer(static[0], 4)
            encoded[0] |= flag
        else:
            encoded = bytearray([flag]) + encode_integer(len(name), 7) + name
        head = bytes(encoded)
        if len(_heads) < _REMEMBERED:
            _heads[(name, flag)] = head
    length = len(value)
    return b"".join((head, bytes((length,)) if length < 0x7F else bytes(encode_integer(length, 7)), value))


class Encoder(hpack.Encoder):
    """hpack's encoder (its table-size bookkeeping included), writing each block with static indexes and literals
    only. The dynamic table stays empty, so a peer that lowers SETTINGS_HEADER_TABLE_SIZE still gets the size
    update hpack writes at the start of the next block, and nothing else changes."""

    def __init__(self) -> None:
        super().__init__()
        self._fields: dict[tuple[bytes, bytes], bytes] = {}

    def encode(self, headers, huffman: bool = False) -> bytes:  # type: ignore[override]
        block = []
        if self.header_table.resized:
            block.append(self._encode_table_size_change())
            self.header_table.resized = False
        fields = self._fields
        for header in headers:
            name, value = header[0], header[1]
            if not getattr(header, "indexable", True):  # a NeverIndexedHeaderTuple: unique or secret
                block.append(_literal(name, value, never_indexed=True))
                continue
            encoded = fields.get((name, value))
            if encoded is None:
                static = _STATIC_NAMES.get(name)
                index = static[1].get(value) if static is not None else None
                encoded = bytes(encode_integer(index, 7)) if index is not None else _literal(name, value, False)
                if index is not None:
                    encoded = bytes([encoded[0] | 0x80]) + encoded[1:]
                if len(fields) >= _REMEMBERED:
                    fields.clear()
                fields[(name, value)] = encoded
            block.append(encoded)
        return b"".join(block)
