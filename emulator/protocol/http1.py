"""HTTP/1.1 edges aiohttp answers on its own, made Bedrock-shaped and bounded.

- aiohttp's parser answers bad header bytes, an unsupported `Content-Encoding` (br without brotli) or a malformed
  request line itself, with a plain-text 400 and no `x-amzn-ErrorType`; `BedrockRequestHandler.handle_error`
  writes those as AWS-shaped errors instead.
- A client that opens a connection and trickles a request's headers (slowloris) is closed after
  `HEADER_TIMEOUT_S`; a body that does not arrive within `BODY_TIMEOUT_S` is refused (`read_body`).
- Router-level HTTP exceptions (404/405 for paths no route can hold, 413) become modeled errors
  (`from_http_exception`), so every 4xx a client sees carries `x-amzn-ErrorType`.

Installed by `server.start_site` (one line); a transport other than aiohttp's HTTP/1 keeps its own handling.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from .bounds import MAX_BODY_BYTES
from .errors import BedrockError

log = logging.getLogger("emulator.http")

HEADER_TIMEOUT_S = 10.0  # from the first byte of a request to the end of its headers
BODY_TIMEOUT_S = 60.0  # from the handler's first read to the last body byte


def from_http_exception(exc: web.HTTPException) -> BedrockError:
    """The modeled error for an HTTP exception aiohttp's router or body reader raised."""
    if exc.status == 413:
        return body_too_large()
    if exc.status in (404, 405):
        return BedrockError("UnknownOperationException", "No operation matches the request's method and path.")
    return BedrockError("ValidationException", f"Malformed request: {exc.reason}.")


def body_too_large() -> BedrockError:
    return BedrockError("ValidationException", f"The request body exceeds the maximum size of {MAX_BODY_BYTES} bytes.")


async def read_body(request: web.BaseRequest, timeout: float | None = None) -> bytes:
    """The whole body: refused from Content-Length before reading when too large, and within a time limit."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise body_too_large()
    if request.content.is_eof():  # all of it has arrived (the usual small body): no wait, so no timer task
        return await request.read()
    try:  # wait_for, not asyncio.timeout: Python 3.10 is supported
        return await asyncio.wait_for(request.read(), BODY_TIMEOUT_S if timeout is None else timeout)
    except asyncio.TimeoutError:
        if request.transport is not None:
            request.transport.close()  # the rest of a stalled body is never read
        raise BedrockError("ValidationException", "The request body was not received in time.") from None


class BedrockRequestHandler(RequestHandler):
    """aiohttp's HTTP/1 protocol with Bedrock-shaped parser errors and a header read timeout."""

    _header_timer: asyncio.TimerHandle | None = None

    def _between_requests(self) -> bool:
        """No whole request parsed and none being handled: a request's headers are (still) arriving."""
        return not self._messages and not self._request_in_progress

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # From the connection's start (a sniffing front end may hand over its first bytes before `start` runs).
        self._header_timer = self._loop.call_later(HEADER_TIMEOUT_S, self._headers_overdue)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._between_requests():
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
        elif data and self._header_timer is None:  # the first bytes of the next request on a kept-alive connection
            self._header_timer = self._loop.call_later(HEADER_TIMEOUT_S, self._headers_overdue)

    def _headers_overdue(self) -> None:
        self._header_timer = None
        if self._between_requests() and self.transport is not None:
            log.info("closing a connection whose request headers took over %ss", HEADER_TIMEOUT_S)
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def log_exception(self, *args, **kwargs) -> None:
        """A body that fails to decode after its 400 went out (aiohttp drains it) is the client's problem:
        one line, not a traceback per bad request."""
        exc = kwargs.get("exc_info")
        if isinstance(exc, (RequestPayloadError, HttpProcessingError)):
            log.info("dropped the rest of a malformed request body: %s", str(exc).replace("\n", " "))
            return
        super().log_exception(*args, **kwargs)

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # mid-response: aiohttp's own handling (the connection breaks)
            return super().handle_error(request, status, exc, message)
        if status >= 500:
            self.log_exception("error handling request from %s", request.remote, exc_info=exc)
            error = BedrockError("InternalServerException")
        else:
            log.info("refused a malformed request from %s: %s", request.remote, message or exc)
            detail = (getattr(exc, "message", None) or message or "bad request").splitlines()[0]
            code = "UnknownOperationException" if status in (404, 405) else "ValidationException"
            error = BedrockError(code, f"Malformed request: {detail[:200]}")
        response = error.response()
        response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        response.force_close()
        return response


class BedrockServer(web.Server):
    def __call__(self) -> RequestHandler:
        return BedrockRequestHandler(self, loop=self._loop, **self._kwargs)


def install(runner: web.AppRunner) -> None:
    """Use BedrockRequestHandler for the runner's connections (call after `runner.setup()`)."""
    server = runner.server
    if server is not None and type(server) is web.Server:
        server.__class__ = BedrockServer
