"""Overload and shutdown, applied at the service seam so every operation and transport gets them alike.

Overload: each local text model runs `MAX_BATCH` sequences at once; up to `max_queue` more may wait for a row.
A generation beyond that is refused at once with ThrottlingException (429, Bedrock's wording) instead of
queueing without bound: botocore gives up on a reply after its 60 s read timeout and retries, so an unbounded
queue turns overload into a pile of duplicate work. `/_emulator/health` reports each model's queue.

Shutdown: once the grace period is over, every generation still running ends with a ServiceUnavailableException
`Failed` event. The API layers already turn a `Failed` event into an HTTP error (before a stream's first byte) or
an in-stream exception frame (after), so this needs nothing from any transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass

from .engine.scheduler import MAX_BATCH
from .engine.types import Event, Failed
from .protocol.errors import BedrockError

# Measured on the reference 2-core machine (issue 10): 256 concurrent streams saw first bytes after up to 35 s,
# ~420 would pass botocore's 60 s read timeout. 32 running + 256 waiting keeps a queued request's start inside it.
DEFAULT_MAX_QUEUE = 256
THROTTLED = "Too many requests, please wait before trying again."
SHUTTING_DOWN = "The service is shutting down and could not finish this request. Try again later."


@dataclass
class ModelQueue:
    in_flight: int = 0  # generations admitted (tokenising, waiting for a row, or running)
    refused: int = 0  # generations answered with ThrottlingException since start


class Admission:
    """Per-model bound on generations in flight: MAX_BATCH running plus `max_queue` waiting."""

    def __init__(self, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self.max_queue = max_queue
        self.queues: dict[str, ModelQueue] = {}

    @property
    def capacity(self) -> int:
        return MAX_BATCH + self.max_queue

    @contextmanager
    def slot(self, model: str):
        queue = self.queues.setdefault(model, ModelQueue())
        if queue.in_flight >= self.capacity:
            queue.refused += 1
            raise BedrockError("ThrottlingException", THROTTLED)
        queue.in_flight += 1
        try:
            yield
        finally:
            queue.in_flight -= 1

    def view(self, running: dict[str, int]) -> dict:
        """`{model: {running, queued, maxQueue, refused}}` for health (running: the engine's own count)."""
        out = {}
        for model, queue in sorted(self.queues.items()):
            active = min(running.get(model, 0), queue.in_flight)
            out[model] = {"running": active, "queued": max(queue.in_flight - active, 0),
                          "maxQueue": self.max_queue, "refused": queue.refused}
        return out


class Shutdown:
    """The server's stop signal as the service sees it: `stopping` once no new request should start, `ending`
    once in-flight generations must stop now."""

    def __init__(self) -> None:
        self.stopping = False
        self.ending = False
        self.busy = 0  # requests being answered and async jobs running: what the grace period waits for
        # Tasks now awaiting a generation's next event (a count: generations may nest), and those we interrupted.
        self._stepping: dict[asyncio.Task, int] = {}
        self._interrupted: set[asyncio.Task] = set()

    @contextmanager
    def work(self):
        """Count a request or job as in flight while the block runs."""
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1

    def refuse_new(self) -> None:
        if self.stopping:
            raise BedrockError("ServiceUnavailableException", SHUTTING_DOWN)

    def end_generations(self) -> None:
        self.stopping = True
        self.ending = True
        for task in self._stepping:  # each is suspended inside a generation step: the cancel lands there
            if task not in self._interrupted:
                self._interrupted.add(task)
                task.cancel()

    async def interruptible(self, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        """`events`, ended by a ServiceUnavailableException `Failed` event if the server must stop first.

        Each step is awaited in the caller's own task (a task per event cost a fifth of a scripted request);
        `end_generations` cancels the tasks that are inside a step, and that cancellation becomes the event."""
        stepping, current_task = self._stepping, asyncio.current_task
        async with aclosing(events):
            while not self.ending:
                task = current_task()
                assert task is not None
                stepping[task] = stepping.get(task, 0) + 1
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError:
                    if not self._consume_interruption(task):  # the client went away (or someone else cancelled)
                        raise
                    break
                finally:
                    depth = stepping.pop(task) - 1
                    if depth:
                        stepping[task] = depth
                if self._interrupted and self._consume_interruption(task):  # the step ended as the cancel came
                    break
                yield event
                if isinstance(event, Failed):
                    return
            yield Failed(BedrockError("ServiceUnavailableException", SHUTTING_DOWN))

    def _consume_interruption(self, task: asyncio.Task) -> bool:
        """Whether `task` was cancelled by `end_generations` (that cancel is then taken back), and by nobody else."""
        if task not in self._interrupted:
            return False
        self._interrupted.discard(task)
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+: cancellation requests are counted
        if uncancel is None:
            return True
        return uncancel() == 0
