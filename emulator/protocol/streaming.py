"""Bedrock's event-stream reply: one frame per event, sent as it is produced; a failure after the first frame
ends the stream with an exception frame."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

from .errors import BedrockError
from .eventstream import event_frame, exception_frame
from .reply import StreamReply

log = logging.getLogger("emulator.http")

CONTENT_TYPE = "application/vnd.amazon.eventstream"
# A request key: a callable (message type, event or exception member, payload) that sees every frame sent
# (the invocation log sets it).
STREAM_TAP = "eventstream_tap"

Tap = Callable[[str, str, dict], None]


async def event_stream(
    events: AsyncIterator[tuple[str, dict]], headers: dict[str, str] | None = None, tap: Tap | None = None
) -> StreamReply:
    """The reply streaming `events` ((event type, payload) pairs). Its first event is awaited here, so anything
    that fails before it is still an ordinary HTTP error; a `BedrockError` raised after it becomes that error's
    exception frame, any other exception an `internalServerException` frame (and a logged traceback)."""
    try:
        first = await anext(events)
    except BaseException:
        await events.aclose()
        raise
    return StreamReply(_frames(first, events, tap), CONTENT_TYPE, dict(headers or {}))


async def _frames(first: tuple[str, dict], events: AsyncIterator[tuple[str, dict]], tap: Tap | None) -> AsyncIterator[bytes]:
    async with aclosing(events):
        event: tuple[str, dict] | None = first
        while event is not None:
            name, payload = event
            yield event_frame(name, payload)
            if tap is not None:
                tap("event", name, payload)
            try:
                event = await anext(events)
            except StopAsyncIteration:
                event = None
            except BedrockError as error:
                failure = error
                break
            except Exception:
                log.exception("unhandled error in an event stream")
                failure = BedrockError("InternalServerException")
                break
        else:
            return
    yield exception_frame(failure.stream_member, failure.body())
    if tap is not None:
        tap("exception", failure.stream_member, failure.body())
