"""The HTTP envelope of an event-stream response: 200, chunked, one flushed frame per event."""

from __future__ import annotations

from aiohttp import web

from .errors import BedrockError
from .eventstream import event_frame, exception_frame

CONTENT_TYPE = "application/vnd.amazon.eventstream"
# A request key: a callable (message type, event or exception member, payload) that sees every frame sent
# (the invocation log sets it).
STREAM_TAP = "eventstream_tap"
# A request key: the request's EventStreamWriter, so an error raised after the first byte still reaches the
# client as an in-stream exception (see middleware.errors_as_bedrock).
STREAM_WRITER = "eventstream_writer"


class EventStreamWriter:
    """Sends frames as they are produced. No Content-Length: botocore would otherwise buffer until the end."""

    def __init__(self, request: web.Request, headers: dict[str, str] | None = None) -> None:
        self._request = request
        self._response = web.StreamResponse(status=200, headers={"Content-Type": CONTENT_TYPE, **(headers or {})})
        self._response.enable_chunked_encoding()
        self.events_sent = 0
        self._tap = request.get(STREAM_TAP)
        request[STREAM_WRITER] = self

    @property
    def started(self) -> bool:
        return self._response.prepared

    async def _write(self, frame: bytes) -> None:
        if not self._response.prepared:
            await self._response.prepare(self._request)
        await self._response.write(frame)

    async def event(self, event_type: str, payload: dict) -> None:
        await self._write(event_frame(event_type, payload))
        self.events_sent += 1
        if self._tap is not None:
            self._tap("event", event_type, payload)

    async def exception(self, error: BedrockError) -> None:
        await self._write(exception_frame(error.stream_member, error.body()))
        if self._tap is not None:
            self._tap("exception", error.stream_member, error.body())

    async def finish(self) -> web.StreamResponse:
        if not self._response.prepared:
            await self._response.prepare(self._request)
        await self._response.write_eof()
        return self._response
