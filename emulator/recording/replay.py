"""Answering a call from a cassette: the recorded status, headers and body, or the recorded event stream
re-encoded frame by frame (`protocol.eventstream`), paced as recorded (`speed` 1), scaled, or at once (0).

Faults still apply (they are decided around the operation): latency and errors before the answer as for any
call, and a stream's token latency and mid-stream exception between the recorded content deltas.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from ..protocol.eventstream import exception_frame
from ..protocol.streaming import STREAM_TAP
from ..testing import current
from .cassette import Cassette, RecordedEvent, RecordedResponse

_CONTENT_DELTAS = ("contentBlockDelta", "chunk")  # what faults count as content, as for generated streams


async def answer(request: web.Request, cassette: Cassette, speed: float = 0.0) -> web.StreamResponse:
    recorded = cassette.response
    report_tokens(recorded)
    if recorded.events is None:
        if speed:
            await asyncio.sleep(recorded.elapsed_ms / 1000 / speed)
        return web.Response(status=recorded.status, body=recorded.body_bytes(), headers=recorded.headers)
    return await _stream(request, recorded, speed)


async def _stream(request: web.Request, recorded: RecordedResponse, speed: float) -> web.StreamResponse:
    response = web.StreamResponse(status=recorded.status, headers=recorded.headers)
    response.enable_chunked_encoding()
    active = current()
    plan = active.plan if active is not None else None
    tap = request.get(STREAM_TAP)
    events = recorded.events or []
    last_delta = max((i for i, e in enumerate(events) if e.event in _CONTENT_DELTAS), default=-1)
    started, sent = time.monotonic(), 0

    async def send(frame: bytes) -> None:
        if not response.prepared:
            await response.prepare(request)
        await response.write(frame)

    async def fail() -> web.StreamResponse:
        error = plan.stream_error
        await send(exception_frame(error.stream_member, error.body()))
        if tap is not None:
            tap("exception", error.stream_member, error.body())
        await response.write_eof()
        return response

    for i, event in enumerate(events):
        if speed:
            delay = started + event.offset_ms / 1000 / speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        if event.event in _CONTENT_DELTAS and plan is not None:
            if plan.stream_error is not None and sent >= plan.after_events:
                return await fail()
            if sent and plan.token_delay:
                await asyncio.sleep(plan.token_delay)
            sent += 1
        await send(event.frame())
        if tap is not None:
            tap("exception" if event.exception else "event", event.exception or event.event or "", event.wire_payload())
        if i == last_delta and plan is not None and plan.stream_error is not None:
            return await fail()  # the recording was shorter than `after_events`: fail after its last delta
    if not response.prepared:
        await response.prepare(request)
    await response.write_eof()
    return response


def _usage(value: Any) -> tuple[int, int] | None:
    """Token counts from a Converse `usage` or an `amazon-bedrock-invocationMetrics` object."""
    if not isinstance(value, dict):
        return None
    for inp, out in (("inputTokens", "outputTokens"), ("inputTokenCount", "outputTokenCount")):
        if isinstance(value.get(inp), int) and isinstance(value.get(out), int):
            return value[inp], value[out]
    return None


def recorded_tokens(recorded: RecordedResponse) -> tuple[int, int] | None:
    """What the recorded call was billed: from its usage, its stream's metadata or metrics, or its headers."""
    headers = {k.lower(): v for k, v in recorded.headers.items()}
    counts = headers.get("x-amzn-bedrock-input-token-count"), headers.get("x-amzn-bedrock-output-token-count")
    if all(c is not None and c.isdigit() for c in counts):
        return int(counts[0]), int(counts[1])
    if isinstance(recorded.body, dict):
        return _usage(recorded.body.get("usage"))
    for event in reversed(recorded.events or []):
        found = _event_usage(event)
        if found is not None:
            return found
    return None


def _event_usage(event: RecordedEvent) -> tuple[int, int] | None:
    if event.event == "metadata" and isinstance(event.payload, dict):
        return _usage(event.payload.get("usage"))
    if event.event == "chunk" and isinstance(event.chunk, dict):
        return _usage(event.chunk.get("amazon-bedrock-invocationMetrics"))
    return None


def report_tokens(recorded: RecordedResponse) -> None:
    """Tell the invocation log (and so the rate limiter) what the call used."""
    active = current()
    tokens = recorded_tokens(recorded)
    if active is not None and tokens is not None:
        active.invocation.tokens(*tokens)
