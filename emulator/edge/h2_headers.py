"""The checks h2 makes on a received request header block (RFC 9113 8.2, 8.3), in one pass.

h2 runs `normalize_inbound_headers` (cookie fields joined) then `validate_headers`: eight chained generators, and
a Python loop over every byte of every name and value (a SigV4 `authorization` is 200+ bytes) — 10-15% of a small
request's cost on the HTTP/2 path. `checked` makes the same checks in the same order, so the same block raises
the same `ProtocolError` (same message) or yields the same header list; a differential test holds the two equal
(tests/unit/test_h2_inbound.py). The connection (`http2._Connection`) turns h2's own pass off and calls this.
"""

from __future__ import annotations

import re

from h2.exceptions import ProtocolError
from h2.utilities import CONNECTION_HEADERS, HeaderValidationFlags, _check_pseudo_header_field_acceptability
from hpack.struct import NeverIndexedHeaderTuple

_ALLOWED_PSEUDO = frozenset([b":method", b":scheme", b":authority", b":path", b":status", b":protocol"])
_NAME_REFUSED = re.compile(rb"[\x00-\x20A-Z\x7f-\xff]")  # RFC 9113 8.2.1: never in a field name
_VALUE_REFUSED = re.compile(rb"[\x00\n\r]")  # nor these in a value
# Fields (name, value) that passed the checks made on a field alone: a client repeats most of its fields on every
# request. Cleared when full; a unique value (a signature) is checked, kept a while and forgotten with the rest.
_FIELDS_SEEN_VALID: set[tuple[bytes, bytes]] = set()
_FIELDS_REMEMBERED = 1024
_REQUEST = HeaderValidationFlags(is_client=False, is_trailer=False, is_response_header=False, is_push_promise=False)
_TRAILER = HeaderValidationFlags(is_client=False, is_trailer=True, is_response_header=False, is_push_promise=False)


def checked(headers: list, trailer: bool) -> list:
    """A server's received request (or trailer) block, as h2's inbound normalization and validation return it."""
    cookies = [h[1] for h in headers if h[0] == b"cookie"]
    if cookies:  # _combine_cookie_fields: joined, and moved last
        headers = [h for h in headers if h[0] != b"cookie"]
        headers.append(NeverIndexedHeaderTuple(b"cookie", b"; ".join(cookies)))
    seen_valid = _FIELDS_SEEN_VALID
    pseudo: set[bytes] = set()
    regular = False
    method = authority = host = None
    for header in headers:
        name, value = header[0], header[1]
        if header not in seen_valid:
            _check_field(name, value)
            if len(seen_valid) >= _FIELDS_REMEMBERED:
                seen_valid.clear()
            seen_valid.add((name, value))
        # _reject_pseudo_header_fields
        if name[0] == 0x3A:
            if name in pseudo:
                raise ProtocolError(f"Received duplicate pseudo-header field {name!r}")
            pseudo.add(name)
            if regular:
                raise ProtocolError(f"Received pseudo-header field out of sequence: {name!r}")
            if name not in _ALLOWED_PSEUDO:
                raise ProtocolError(f"Received custom pseudo-header field {name!r}")
            if name == b":method":
                method = value
        else:
            regular = True
        if not trailer:
            # _validate_host_authority_header, _check_path_header
            if name == b":authority":
                authority = value
            elif name == b"host":
                if host is not None:
                    raise ProtocolError("Request header block has multiple Host headers.")
                host = value
            if name == b":path" and not value:
                raise ProtocolError("An empty :path header is forbidden")
    _check_pseudo_header_field_acceptability(pseudo, method, _TRAILER if trailer else _REQUEST)
    if not trailer:
        if authority is None and host is None:
            raise ProtocolError("Request header block does not have an :authority or Host header.")
        if authority is not None and host is not None and authority != host:
            raise ProtocolError("Request header block has mismatched :authority and "
                                f"Host headers: {authority!r} / {host!r}")
    return headers


def _check_field(name: bytes, value: bytes) -> None:
    """The checks on one field alone, in the pipeline's order: _reject_illegal_characters,
    _reject_empty_header_names, _reject_te, _reject_connection_header."""
    refused = _NAME_REFUSED.search(name)
    if refused is not None:
        c = name[refused.start()]
        if 0x41 <= c <= 0x5A:
            raise ProtocolError(f"Received uppercase header name {name!r}.")
        raise ProtocolError(f"Illegal character '{chr(c)}' in header name: {name!r}")
    if name.find(b":", 1) != -1:
        raise ProtocolError(f"Illegal character ':' in header name: {name!r}")
    if value:
        refused = _VALUE_REFUSED.search(value)
        if refused is not None:
            raise ProtocolError(f"Illegal character '{chr(value[refused.start()])}' in header value: {value!r}")
        if value[0] in (0x20, 0x09) or value[-1] in (0x20, 0x09):
            raise ProtocolError(f"Received header value surrounded by whitespace {value!r}")
    if not name:
        raise ProtocolError("Received header name with zero length.")
    if name == b"te" and value.lower() != b"trailers":
        raise ProtocolError(f"Invalid value for TE header: {value!r}")
    if name in CONNECTION_HEADERS:
        raise ProtocolError(f"Connection-specific header field present: {name!r}.")
