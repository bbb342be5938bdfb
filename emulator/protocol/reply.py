"""What handlers answer with, independent of the transport that carries it, and how the HTTP edge sends it.

A handler returns a `JsonReply` (status, headers, a JSON body sent whole) or a `StreamReply` (status, headers,
a content type and an async iterator of byte chunks, each sent the moment it is produced). The event stream
(`streaming.event_stream`) and server-sent events are both `StreamReply`s. `send` is the one place these become
an aiohttp response; HTTP/1.1 and HTTP/2 both run through it (HTTP/2 plugs in under aiohttp's response object,
see `emulator/edge/http2.py`), so request ids, the testing hooks and the middlewares see both alike.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field

import orjson
from aiohttp import web


@dataclass
class JsonReply:
    body: dict
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    ensure_ascii: bool = False  # error bodies escape non-ASCII text, as they always have

    def encoded(self) -> bytes:
        if not self.ensure_ascii:
            try:  # compact, as AWS writes its replies; several times faster than `json`
                return orjson.dumps(self.body)
            except TypeError:  # a lone surrogate echoed from a request, an integer past 64 bits: `json` below
                pass
        # backslashreplace: a lone surrogate echoed from a request is written as its JSON escape, never a 500
        return json.dumps(self.body, ensure_ascii=self.ensure_ascii).encode("utf-8", "backslashreplace")


@dataclass
class StreamReply:
    """A body sent chunk by chunk as `chunks` yields them, with no Content-Length (clients read it as it comes).

    `chunks` owns its failures: whatever it must say about an error after the first chunk (an exception frame,
    an SSE error event) it yields itself. Closing it (the client went away) stops whatever produces it."""

    chunks: AsyncIterator[bytes]
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200


Reply = JsonReply | StreamReply


async def send(request: web.Request, reply: Reply | web.StreamResponse) -> web.StreamResponse:
    """Write `reply` as the response to `request` (an aiohttp response passes through as it is)."""
    if isinstance(reply, web.StreamResponse):
        return reply
    if isinstance(reply, JsonReply):
        # Exactly `application/json`: aiohttp's json_response adds a charset that boto3 would echo in contentType.
        return web.Response(
            status=reply.status, body=reply.encoded(), headers={"Content-Type": "application/json", **reply.headers}
        )
    response = web.StreamResponse(status=reply.status, headers={"Content-Type": reply.content_type, **reply.headers})
    response.enable_chunked_encoding()
    # aclosing: however this ends (the client went away, the handler is cancelled), the producer stops now.
    async with aclosing(reply.chunks) as chunks:
        async for chunk in chunks:
            if not response.prepared:
                await response.prepare(request)
            await response.write(chunk)
    if not response.prepared:
        await response.prepare(request)
    await response.write_eof()
    return response
