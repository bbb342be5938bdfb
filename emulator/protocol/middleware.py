"""Request ids on every response, and the guarantee that no traceback ever reaches a client."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from .errors import BedrockError
from .http1 import from_http_exception
from .ids import request_id
from .reply import send

log = logging.getLogger("emulator.http")

REQUEST_ID = "x-amzn-RequestId"


@web.middleware
async def errors_as_bedrock(request: web.Request, handler) -> web.StreamResponse:
    request["request_id"] = request_id()
    try:
        # Handlers answer with a transport-neutral reply (protocol/reply.py); this is where it is sent.
        return await send(request, await handler(request))
    except BedrockError as error:
        return await send(request, error.reply())
    except web.HTTPRequestEntityTooLarge:
        error = BedrockError("ValidationException", "The request body exceeds the maximum size of 25000000 bytes.")
        return await send(request, error.reply())
    except RequestPayloadError as exc:  # e.g. a gzip Content-Encoding the body does not decode with
        detail = getattr(exc.__cause__, "message", None) or str(exc)
        response = await send(request, BedrockError("ValidationException", f"Malformed request body: {detail}.").reply())
        response.force_close()  # the rest of the body cannot be read: say the connection ends with this reply
        return response
    except web.HTTPException as exc:  # the router's 404/405 (e.g. a newline in a path), 413: modeled errors too
        if exc.status < 400:
            raise
        return await send(request, from_http_exception(exc).reply())
    except ConnectionError as exc:  # the client went away mid-stream; nothing can be sent
        log.info("client disconnected: %s", exc)
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return await send(request, BedrockError("InternalServerException").reply())


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: covers JSON, error and event-stream responses alike."""
    response.headers[REQUEST_ID] = request.get("request_id") or request_id()
