"""One reader of an operation's input: each member from where the service model puts it, validated.

A member's `location` says where it travels: a URI label (`uri`), a header, the query string, or (none) the JSON
body. An operation with a `payload` member (InvokeModel's native body, the bidirectional stream's events) leaves
that member to its handler, which reads the body itself; the reader validates the rest (the envelope). Both the
Bedrock Runtime operations and the control plane's are read this way; a reader is built once per operation, so a
request costs only the lookups its operation's members need.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import parse_qsl

from aiohttp import web
from botocore.model import OperationModel, Shape

from .shapes import check_json_body, coral_error, errors_for

OFF_LOOP_BYTES = 64 * 1024  # bodies at least this large are parsed and validated on a worker thread
# Integers as a query string or header carries them; anything else is left a string for the validator to refuse
# ("Member must be an integer"), listed with the request's other errors.
_INTEGER = re.compile(r"-?[0-9]{1,9}")


def _scalar(shape: Shape, raw: str) -> object:
    if shape.type_name in ("integer", "long"):
        return int(raw) if _INTEGER.fullmatch(raw) else raw
    if shape.type_name == "boolean":
        return raw.lower() == "true"
    return raw  # strings, and timestamps (the handler parses those it filters on)


class InputReader:
    def __init__(self, operation: OperationModel) -> None:
        self.shape = shape = operation.input_shape
        self.payload = shape.serialization.get("payload")  # the handler's to read, never parsed here
        self.uri: list[tuple[str, str]] = []
        self.headers: list[tuple[str, str, Shape]] = []
        self.query: list[tuple[str, str, Shape]] = []
        body = []
        for name, member in shape.members.items():
            location = member.serialization.get("location")
            wire = member.serialization.get("name", name)
            if location == "uri":
                self.uri.append((name, wire))
            elif location == "header":
                self.headers.append((name, wire, member))
            elif location == "querystring":
                self.query.append((name, wire, member))
            elif location is not None:
                raise ValueError(f"{operation.name}.{name}: members in {location!r} are not read")
            elif name != self.payload:
                body.append(name)
        self.body_members = frozenset(body)
        self._required = [(name, shape.members[name]) for name in shape.required_members if name != self.payload]
        self._envelope = [(name, member) for name, member in shape.members.items() if name != self.payload]

    async def read(self, request: web.Request, labels: dict[str, str]) -> dict:
        raw = await request.read() if self.body_members else b""
        query = request.raw_path.partition("?")[2] if self.query else ""
        if len(raw) < OFF_LOOP_BYTES:
            return self.members(labels, query, request.headers, raw)
        # Parsing and validation take time that grows with the body: off the loop.
        return await asyncio.to_thread(self.members, labels, query, request.headers, raw)

    def members(self, labels: dict[str, str], query: str, headers, raw: bytes) -> dict:
        """The input as the handler reads it (a dict of member values); a ValidationException when invalid."""
        params: dict = {}
        if self.body_members:
            params = check_json_body(raw)
            if not params.keys() <= self.body_members:  # unknown keys (and located members) are not the body's
                params = {key: value for key, value in params.items() if key in self.body_members}
        for name, wire in self.uri:
            if wire in labels:
                params[name] = labels[wire]
        for name, wire, member in self.headers:
            value = headers.get(wire)
            if value is not None:
                params[name] = _scalar(member, value)
        if self.query:
            pairs = parse_qsl(query, keep_blank_values=True)
            for name, wire, member in self.query:
                values = [value for key, value in pairs if key == wire]
                if values and member.type_name == "list":
                    params[name] = [_scalar(member.member, value) for value in values]
                elif values:
                    params[name] = _scalar(member, values[0])
        errors = errors_for(self.shape, params) if self.payload is None else self._envelope_errors(params)
        if errors:
            raise coral_error(errors)
        return params

    def _envelope_errors(self, params: dict) -> list[str]:
        """The input shape's checks without its payload member, in the same order (missing required ones first)."""
        errors: list[str] = []
        for name, member in self._required:
            if params.get(name) is None:
                errors.extend(errors_for(member, None, name))
        for name, member in self._envelope:
            value = params.get(name)
            if value is not None:
                errors.extend(errors_for(member, value, name))
        return errors
