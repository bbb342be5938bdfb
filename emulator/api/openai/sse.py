"""Server-sent events (`text/event-stream`), as OpenAI's streams use them: `event:` (Responses) and `data:` lines,
a blank line after each event, flushed one by one.

Kept apart from the handlers so the body can move onto a transport-neutral streamed reply unchanged: the writer
only needs "start with these headers", "write these bytes", "end".
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web

from ...protocol.streaming import STREAM_TAP

# A request key: the request's SSEWriter, so an error raised after the first event still reaches the client
# inside the stream (see api/openai/__init__.py).
SSE_WRITER = "openai_sse_writer"


def sse_event(data: dict | str, event: str | None = None) -> bytes:
    """One event's bytes. `data` is JSON (compact, one line) or a literal such as `[DONE]`."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


class SSEWriter:
    def __init__(self, request: web.Request) -> None:
        self._request = request
        self._response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream; charset=utf-8",
                                                                 "Cache-Control": "no-cache"})
        self._response.enable_chunked_encoding()
        self._tap = request.get(STREAM_TAP)  # the invocation log sees each event as sent
        # How the handler writes an error after the stream started: error -> (data, event name).
        self.error_event: Callable[[object], tuple[dict, str | None]] | None = None
        request[SSE_WRITER] = self

    @property
    def started(self) -> bool:
        return self._response.prepared

    async def _write(self, frame: bytes) -> None:
        if not self._response.prepared:
            await self._response.prepare(self._request)
        await self._response.write(frame)

    async def send(self, data: dict, event: str | None = None) -> None:
        await self._write(sse_event(data, event))
        if self._tap is not None:
            self._tap("event", event or "data", data)

    async def done(self) -> None:
        """Chat Completions' end marker."""
        await self._write(sse_event("[DONE]"))

    async def finish(self) -> web.StreamResponse:
        if not self._response.prepared:
            await self._response.prepare(self._request)
        await self._response.write_eof()
        return self._response
