"""Small helpers the API modules share: JSON replies, a stopwatch, generation failures as Bedrock reports them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from ..engine.types import Event, Failed
from ..protocol.errors import BedrockError
from ..protocol.reply import JsonReply


def json_response(payload: dict, headers: dict[str, str] | None = None, status: int = 200) -> JsonReply:
    return JsonReply(payload, status, dict(headers or {}))


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


def model_failure(error: BaseException) -> BedrockError:
    """A generation failure as Bedrock reports it before a response has started."""
    if isinstance(error, BedrockError):
        return error
    return BedrockError("ModelErrorException", f"The model returned the following errors: {error}")


async def streamed(events: AsyncIterator[Event], timeout_member: bool = True) -> AsyncIterator[Event]:
    """A generation's events for a streaming reply, its failure raised: before the first event as an ordinary
    error (`model_failure`), after it as the stream's exception (`stream_failure`, see `streaming.event_stream`)."""
    started = False
    async for event in events:
        if isinstance(event, Failed):
            raise stream_failure(event.error, timeout_member) if started else model_failure(event.error)
        started = True
        yield event
    ended = RuntimeError("generation ended without a result")
    raise stream_failure(ended, timeout_member) if started else model_failure(ended)


def stream_failure(error: BaseException, timeout_member: bool = True) -> BedrockError:
    """A generation failure after a stream has started: model errors become `modelStreamErrorException` frames,
    and so do timeouts where the stream's union has no `modelTimeoutException` member (ConverseStream)."""
    failure = model_failure(error)
    if failure.code != "ModelErrorException" and (timeout_member or failure.code != "ModelTimeoutException"):
        return failure
    return BedrockError("ModelStreamErrorException", failure.message, originalStatusCode=failure.status,
                        originalMessage=failure.message)
