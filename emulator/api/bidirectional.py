"""InvokeModelWithBidirectionalStream: a Nova Sonic session on one HTTP/2 stream.

The request body is an event stream the client keeps writing for the whole session: `chunk` events whose `bytes`
member (base64 in the JSON payload) carries one Nova Sonic input event each, every message wrapped in a signed
envelope (`:date`, `:chunk-signature`; an empty envelope ends the stream) as SigV4 event-stream signing sends it.
The response is an event stream of `chunk` events carrying the output events, written as the session produces
them while the request is still arriving, and ended by a modeled exception frame when the session fails.
The SDKs only call this operation over HTTP/2; an HTTP/1.1 request gets a ValidationException saying so.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing

from aiohttp import web
from botocore.eventstream import EventStreamBuffer, ParserError

from .. import families
from ..protocol.errors import BedrockError, validation
from ..protocol.eventstream import event_frame, exception_frame
from ..protocol.reply import StreamReply
from ..protocol.streaming import CONTENT_TYPE, STREAM_TAP
from ..service import SERVICE, Service
from ..testing import current
from .registry import operation
from .sonic.session import Limits, Session

log = logging.getLogger("emulator.sonic")

SONIC_LIMITS = web.AppKey("sonic_limits", Limits)  # tests shorten them; Nova Sonic's by default
SONIC_FAMILY = "nova-sonic"
NEEDS_HTTP2 = ("InvokeModelWithBidirectionalStream requires HTTP/2: the AWS SDKs call it over HTTP/2 only "
               "(h2c prior knowledge on http://, ALPN h2 on https://). Retry the request over HTTP/2.")


def _http2(request: web.Request) -> bool:
    # An HTTP/2 stream (emulator/edge/http2.py) is its request's protocol object and carries the stream's id.
    return getattr(request.protocol, "stream_id", None) is not None


@operation("InvokeModelWithBidirectionalStream")
async def invoke_model_with_bidirectional_stream(request: web.Request, params: dict) -> StreamReply:
    if not _http2(request):
        raise validation(NEEDS_HTTP2)
    service: Service = request.app[SERVICE]
    model_id = params["modelId"]
    entry = service.catalog.lookup(model_id)
    if entry.family != SONIC_FAMILY:
        raise validation("The provided model doesn't support InvokeModelWithBidirectionalStream. "
                         "Try again with amazon.nova-sonic-v1:0.")
    service.catalog.require_local(entry)  # the text model that answers Nova Sonic's turns
    session = Session(service, model_id, entry, families.text_family("nova"), request.app.get(SONIC_LIMITS, Limits()))
    return StreamReply(_frames(session, request), CONTENT_TYPE)


async def _frames(session: Session, request: web.Request) -> AsyncIterator[bytes]:
    """The response body: headers at once (the client awaits them before its first event), then one frame per
    output event, and an exception frame if the session fails."""
    tap = request.get(STREAM_TAP)
    yield b""
    try:
        async with aclosing(session.run(input_events(request.content))) as events:
            async for event in events:
                payload = _chunk_payload(event)
                yield event_frame("chunk", payload)
                if tap is not None:
                    tap("event", "chunk", _logged(event) or payload)
    except BedrockError as error:
        yield exception_frame(error.stream_member, error.body())
        if tap is not None:
            tap("exception", error.stream_member, error.body())
    finally:
        active = current()
        if active is not None:  # the log shows the input events (audio as its size), as Bedrock logs a request
            active.invocation.raw_request = json.dumps(session.input_log, ensure_ascii=False).encode()


def _chunk_payload(event: dict) -> dict:
    return {"bytes": base64.b64encode(json.dumps(event, ensure_ascii=False).encode()).decode()}


def _logged(event: dict) -> dict | None:
    """An audioOutput event as the invocation log keeps it: its size, not its audio (None: logged as sent)."""
    audio = event["event"].get("audioOutput")
    if audio is None:
        return None
    size = len(audio["content"]) * 3 // 4 - audio["content"][-2:].count("=")
    return _chunk_payload({"event": {"audioOutput": {**audio, "content": f"<{size} bytes of LPCM>"}}})


async def input_events(body) -> AsyncIterator[bytes]:
    """The JSON of each input event, decoded from the request's event stream as it arrives."""
    outer = EventStreamBuffer()
    async for data in body.iter_any():
        outer.add_data(data)
        try:
            for message in outer:
                raw = _chunk(message)
                if raw is None:  # the signed empty message that ends the input stream
                    return
                yield raw
        except (ParserError, ValueError) as exc:
            raise _malformed(str(exc) or type(exc).__name__) from None


def _chunk(message) -> bytes | None:
    headers, payload = message.headers, message.payload
    if ":chunk-signature" in headers:  # SigV4 event signing: the event is the envelope's payload
        if not payload:
            return None
        inner = EventStreamBuffer()
        inner.add_data(payload)
        messages = list(inner)
        if len(messages) != 1:
            raise _malformed("a signed envelope must carry exactly one event message")
        headers, payload = messages[0].headers, messages[0].payload
    if headers.get(":message-type") != "event" or headers.get(":event-type") != "chunk":
        raise _malformed(f"expected a chunk event, got {headers.get(':message-type')}/{headers.get(':event-type')}")
    try:
        encoded = json.loads(payload)["bytes"]
        return base64.b64decode(encoded, validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise _malformed('a chunk event\'s payload must be {"bytes": "<base64>"}') from None


def _malformed(detail: str) -> BedrockError:
    return validation(f"The request event stream is malformed: {detail}.")
