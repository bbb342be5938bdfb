"""Fault injection: modeled exceptions, mid-stream failures and latency, on demand.

A fault (one JSON object, `POST /_emulator/faults`):

    {"error": "ThrottlingException",         # a modeled exception (or its stream member name, throttlingException)
     "message": "...",                       # default: the message Bedrock uses for that exception
     "extra": {"originalStatusCode": 500},   # modeled members beyond `message` (ModelErrorException, ...)
     "operation": "Converse",                # or a list; default: every operation that can return `error`
     "model": "anthropic.*",                 # glob over the model id (as sent or its base id); default: any
     "count": 2,                             # the next N matching calls, then the fault retires
     "rate": 0.5, "seed": 7,                 # or a fraction of matching calls (random; `seed` makes it repeatable)
     "after_events": 3,                      # fail mid-stream after K content deltas (text pieces, tool input)
     "first_byte_latency_ms": 500,           # added before anything is sent
     "token_latency_ms": 50}                 # added between content deltas

Without `count` or `rate`, a fault applies to every matching call until cleared. An error fault fires only on
operations whose service model lists that exception, so a client always sees what AWS could send it: status,
`x-amzn-ErrorType`, `{"message"}`, hence the same retry decision. A mid-stream fault (`after_events`) applies to
the streaming operations only (ConverseStream, InvokeModelWithResponseStream, the OpenAI-compatible ones), and its exception must be a member of that stream's union
(ConverseStream: internalServerException, modelStreamErrorException, validationException, throttlingException,
serviceUnavailableException; InvokeModelWithResponseStream adds modelTimeoutException). It is sent as the
in-stream exception frame after K content deltas (text pieces or tool-input fragments), or at the end if the
output is shorter.
The OpenAI-compatible operations (OpenAIChatCompletions, OpenAIResponses) take the exceptions
InvokeModelWithResponseStream can (scope.py); their errors go out in OpenAI's JSON shape, and a mid-stream one
as the stream's error event.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..engine.types import Event, Failed, Finished, TextDelta, ToolInputDelta
from ..protocol.errors import BedrockError
from ..protocol.operations import STREAMING
from .caps import MAX_FAULTS, MAX_TEXT, cap_error
from .scope import (all_operations, as_list, describe, error_code, extra_members, model_matches, operation_errors,
                    stream_exceptions)

ErrorCode = Annotated[str, BeforeValidator(error_code)]


class FaultError(ValueError):
    """A fault that does not fit the schema; the message says why."""


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: ErrorCode | None = None
    message: str | None = Field(default=None, max_length=MAX_TEXT)
    extra: dict[str, Any] = Field(default_factory=dict)
    operation: list[str] | None = None
    model: str | None = Field(default=None, max_length=1000)
    count: int | None = Field(default=None, ge=1)
    rate: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    after_events: int | None = Field(default=None, ge=1)
    first_byte_latency_ms: float = Field(default=0, ge=0, le=600_000)
    token_latency_ms: float = Field(default=0, ge=0, le=60_000)

    _as_list = field_validator("operation", mode="before")(as_list)

    @field_validator("operation")
    @classmethod
    def _known_operations(cls, value: list[str] | None) -> list[str] | None:
        unknown = [op for op in value or [] if op not in all_operations()]
        if unknown:
            raise ValueError(f"unknown operation(s) {', '.join(unknown)}; use one of: {', '.join(all_operations())}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Fault":
        if self.error is None:
            if self.message is not None or self.extra or self.after_events is not None:
                raise ValueError("`message`, `extra` and `after_events` need an `error`")
            if not self.first_byte_latency_ms and not self.token_latency_ms:
                raise ValueError("a fault needs an `error` or a latency (first_byte_latency_ms, token_latency_ms)")
            return self
        unknown = set(self.extra) - extra_members(self.error)
        if unknown:
            allowed = ", ".join(sorted(extra_members(self.error))) or "none"
            raise ValueError(f"{self.error} has no member(s) {', '.join(sorted(unknown))} (allowed: {allowed})")
        if self.after_events is not None:
            for op in self.operation or STREAMING:
                if op not in STREAMING:
                    raise ValueError(f"`after_events` is a mid-stream failure; {op} does not stream")
                if self.error not in stream_exceptions(op):
                    members = ", ".join(sorted(e[0].lower() + e[1:] for e in stream_exceptions(op)))
                    raise ValueError(f"{op}'s event stream has no {self.error} member (it has: {members})")
        else:
            for op in self.operation or []:
                if self.error not in operation_errors(op):
                    raise ValueError(f"{op} never returns {self.error} (it can return: {', '.join(sorted(operation_errors(op)))})")
        return self

    def applies(self, operation: str, model_id: str | None) -> bool:
        if self.operation is not None and operation not in self.operation:
            return False
        if not model_matches(self.model, model_id):
            return False
        if self.error is None:
            return True
        if self.after_events is not None:
            return operation in STREAMING and self.error in stream_exceptions(operation)
        return self.error in operation_errors(operation)

    def exception(self) -> BedrockError:
        return BedrockError(self.error, self.message, **self.extra)


def parse_fault(data: object) -> Fault:
    try:
        return Fault.model_validate(data)
    except ValidationError as exc:
        raise FaultError(describe(exc)) from None


@dataclass
class ActiveFault:
    id: str
    fault: Fault
    fired: int = 0
    rng: random.Random = field(default_factory=random.Random)

    @property
    def exhausted(self) -> bool:
        return self.fault.count is not None and self.fired >= self.fault.count

    def view(self) -> dict:
        remaining = None if self.fault.count is None else self.fault.count - self.fired
        return {"id": self.id, "fired": self.fired, "remaining": remaining,
                **self.fault.model_dump(mode="json", exclude_defaults=True)}


@dataclass
class Plan:
    """What the faults chose for one call."""

    first_byte_delay: float = 0.0  # seconds
    token_delay: float = 0.0
    error: BedrockError | None = None  # sent instead of the operation's answer
    stream_error: BedrockError | None = None  # sent inside the stream after `after_events` output events
    after_events: int = 0
    fired: list[str] = field(default_factory=list)

    @property
    def shapes_stream(self) -> bool:
        return bool(self.token_delay or self.stream_error)


class FaultBook:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._active: list[ActiveFault] = []

    def add(self, fault: Fault) -> ActiveFault:
        if len(self._active) >= MAX_FAULTS:
            raise cap_error("active faults", MAX_FAULTS, len(self._active))
        active = ActiveFault(f"fault-{next(self._ids)}", fault, rng=random.Random(fault.seed))
        self._active.append(active)
        return active

    def plan(self, operation: str, model_id: str | None) -> Plan:
        """Decide which faults fire for this call (in the order they were added) and retire used-up ones."""
        plan = Plan()
        for active in self._active:
            fault = active.fault
            if not fault.applies(operation, model_id):
                continue
            if fault.error is not None and (plan.error or plan.stream_error):
                continue  # one exception per call; later error faults keep their turn
            if fault.rate is not None and active.rng.random() >= fault.rate:
                continue
            active.fired += 1
            plan.fired.append(active.id)
            plan.first_byte_delay += fault.first_byte_latency_ms / 1000
            plan.token_delay += fault.token_latency_ms / 1000
            if fault.error is not None and fault.after_events is not None:
                plan.stream_error, plan.after_events = fault.exception(), fault.after_events
            elif fault.error is not None:
                plan.error = fault.exception()
        self._active = [a for a in self._active if not a.exhausted]
        return plan

    def remove(self, fault_id: str) -> bool:
        before = len(self._active)
        self._active = [a for a in self._active if a.id != fault_id]
        return len(self._active) < before

    def clear(self) -> None:
        self._active.clear()

    def views(self) -> list[dict]:
        return [a.view() for a in self._active]


async def shaped(events: AsyncIterator[Event], plan: Plan) -> AsyncIterator[Event]:
    """Generation events with the plan's pacing and mid-stream failure applied."""
    sent = 0
    async with aclosing(events):  # stopping early closes the source, which cancels its generation
        async for event in events:
            if isinstance(event, (Failed, Finished)):
                if plan.stream_error is not None and not isinstance(event, Failed):
                    event = Failed(plan.stream_error)  # the output was shorter than `after_events`
                yield event
                return
            if isinstance(event, (TextDelta, ToolInputDelta)):  # the events a client sees as content deltas
                if plan.stream_error is not None and sent >= plan.after_events:
                    yield Failed(plan.stream_error)
                    return
                if sent and plan.token_delay:
                    await asyncio.sleep(plan.token_delay)
                sent += 1
            yield event
