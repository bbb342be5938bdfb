"""The OpenAI-compatible APIs Bedrock Runtime serves under `/openai/v1`: Chat Completions, Responses, models.

Each generating path is an operation of its own (`OpenAIChatCompletions`, `OpenAIResponses`) run through the same
`around_operation` seam as Bedrock's operations, so scripted rules, faults, rate limits and the invocation log
apply; errors leave in OpenAI's JSON shape (errors.py), with the `x-amzn-RequestId` header every reply gets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from ...protocol import bounds
from ...protocol.auth import AUTH_KEYS, IDENTITY, check_request
from ...protocol.errors import BedrockError
from ...protocol.http1 import read_body
from ...protocol.inputs import OFF_LOOP_BYTES
from ...protocol.operations import OPERATIONS
from ...testing import around_operation
from . import chat, models, responses
from .errors import OpenAIError, error_body, error_response, invalid
from .sse import SSE_WRITER

log = logging.getLogger("emulator.openai")

PREFIX = "/openai/v1"
Handler = Callable[[web.Request, dict], Awaitable[web.StreamResponse]]


async def _json_body(request: web.Request) -> dict:
    raw = await read_body(request)  # Content-Length limit and read timeout, as on Bedrock's paths
    try:
        # The same guarded parser as Bedrock's paths (lone surrogates, nesting, huge numbers); big bodies off the loop.
        body = bounds.loads(raw) if len(raw) < OFF_LOOP_BYTES else await asyncio.to_thread(bounds.loads, raw)
    except ValueError:  # bounds.UnsafeJson included
        body = None
    if not isinstance(body, dict):
        raise invalid("We could not parse the JSON body of your request. The API expects a JSON payload, but what "
                      "was sent was not valid JSON.", None, None)
    return body


async def _in_stream(request: web.Request, error: BedrockError) -> web.StreamResponse | None:
    """After the first event an error can only be written into the stream (its own event), which then ends."""
    sse = request.get(SSE_WRITER)
    if sse is None or not sse.started:
        return None
    payload, event = sse.error_event(error) if sse.error_event else ({"error": error_body(error)}, None)
    await sse.send(payload, event)
    return await sse.finish()


def _endpoint(handler: Handler, operation: str | None = None) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    if operation is not None and operation not in OPERATIONS:  # its line says how it streams and fails
        raise ValueError(f"{operation} has no line in protocol/operations.py")

    async def serve(request: web.Request) -> web.StreamResponse:
        try:
            # The same credentials as Bedrock's own paths (SigV4 or a Bedrock API key as a bearer token), verified
            # when --auth-keys is set; the middleware that checks those paths leaves these to us (OpenAI's shape).
            keys = request.app.get(AUTH_KEYS)
            if keys is not None:
                request[IDENTITY] = await check_request(request, keys)
            if operation is None:
                return await handler(request, {})
            body = await _json_body(request)
            model = body.get("model") if isinstance(body.get("model"), str) else None
            labels = {"modelId": model} if model else {}
            return await around_operation(request, operation, labels, lambda req, _labels: handler(req, body))
        except (ConnectionError, asyncio.CancelledError):
            raise
        except BedrockError as error:
            return await _in_stream(request, error) or error_response(error)
        except RequestPayloadError as exc:  # e.g. a gzip Content-Encoding the body does not decode with
            detail = getattr(exc.__cause__, "message", None) or str(exc)
            response = error_response(invalid(f"We could not read the body of your request: {detail}.", None, None))
            response.force_close()  # the rest of the body cannot be read: the connection ends with this reply
            return response
        except web.HTTPRequestEntityTooLarge:
            return error_response(invalid("The request body exceeds the maximum size of 25000000 bytes.", None,
                                          "request_too_large"))
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            failure = BedrockError("InternalServerException")
            return await _in_stream(request, failure) or error_response(failure)

    return serve


async def _unknown(request: web.Request, body: dict) -> web.StreamResponse:
    raise OpenAIError(f"Invalid URL ({request.method} {request.path})", None, None, status=404)


def register(app: web.Application) -> None:
    """Add the routes (before the catch-all Bedrock dispatcher)."""
    app.router.add_post(f"{PREFIX}/chat/completions", _endpoint(chat.create, chat.OPERATION))
    app.router.add_post(f"{PREFIX}/responses", _endpoint(responses.create, responses.OPERATION))
    app.router.add_get(f"{PREFIX}/models", _endpoint(models.list_models))
    app.router.add_get(PREFIX + "/models/{model:.+}", _endpoint(models.retrieve_model))
    app.router.add_route("*", "/openai/{tail:.*}", _endpoint(_unknown))
