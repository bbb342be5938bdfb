"""`Shutdown.interruptible`: a generation ends with a ServiceUnavailableException event when the server stops,
whether it is mid-step or between steps, while a client's own cancellation still cancels (no event)."""

from __future__ import annotations

import asyncio

import pytest

from emulator.engine.types import Failed, TextDelta
from emulator.lifecycle import SHUTTING_DOWN, Shutdown


async def _slow_source(started: asyncio.Event, closed: list[str]):
    try:
        yield TextDelta("first")
        started.set()
        await asyncio.sleep(60)  # a generation that would take a minute
        yield TextDelta("never")
    finally:
        closed.append("closed")


async def _collect(shutdown: Shutdown, source) -> list:
    return [event async for event in shutdown.interruptible(source)]


async def test_a_step_in_progress_ends_with_the_shutdown_event():
    shutdown, started, closed = Shutdown(), asyncio.Event(), []
    task = asyncio.ensure_future(_collect(shutdown, _slow_source(started, closed)))
    await started.wait()
    shutdown.end_generations()
    events = await asyncio.wait_for(task, 5)
    assert isinstance(events[0], TextDelta) and events[0].text == "first"
    assert isinstance(events[-1], Failed) and len(events) == 2
    assert events[-1].error.code == "ServiceUnavailableException" and events[-1].error.message == SHUTTING_DOWN
    assert closed == ["closed"]  # the source was stopped
    assert not task.cancelled() and getattr(task, "cancelling", lambda: 0)() == 0  # the interruption was taken back


async def test_a_generation_started_after_the_end_gets_only_the_shutdown_event():
    shutdown, closed = Shutdown(), []
    shutdown.end_generations()
    events = await _collect(shutdown, _slow_source(asyncio.Event(), closed))
    assert len(events) == 1 and isinstance(events[0], Failed)


async def test_a_client_cancellation_still_cancels():
    shutdown, started, closed = Shutdown(), asyncio.Event(), []
    task = asyncio.ensure_future(_collect(shutdown, _slow_source(started, closed)))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed == ["closed"]
    assert not shutdown._stepping  # nothing left registered


async def test_nested_generations_end_once():
    shutdown, started, closed = Shutdown(), asyncio.Event(), []

    async def outer():
        async for event in shutdown.interruptible(_slow_source(started, closed)):
            yield event

    task = asyncio.ensure_future(_collect(shutdown, outer()))
    await started.wait()
    shutdown.end_generations()
    events = await asyncio.wait_for(task, 5)
    assert [type(e).__name__ for e in events] == ["TextDelta", "Failed"]
    assert not shutdown._stepping
