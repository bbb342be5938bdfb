"""Tools for people testing their own code: scripted responses, fault injection, rate limits, an invocation log.

They attach at two seams, so every operation and family gets them alike:
- around the operation (`around_operation`, called by `app.dispatch`): the invocation log entry, faults that
  answer before the operation runs, first-byte latency, rate limits;
- around generation (`around_generation`, installed as `Service.around_generation`): a matching scripted rule replaces the
  model's events, then faults pace the events or cut the stream. The API layers turn these events into wire
  output, so a scripted or failed stream is framed exactly like a generated one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ..engine.types import Event, Finished
from ..families.call import Call
from ..protocol.errors import BedrockError, validation
from ..protocol.reply import send
from ..protocol.streaming import STREAM_TAP
from ..service import SERVICE, Service
from .faults import FaultBook, Plan, shaped
from .invocation_log import DEFAULT_BYTES, DEFAULT_SIZE, Invocation, InvocationLog
from .ratelimits import RateLimiter, RateLimitError, load_limits
from .rules import RuleBook, RuleError, scripted_events

_CURRENT: ContextVar["_Active | None"] = ContextVar("emulator_invocation", default=None)


@dataclass
class TestKitConfig:
    __test__ = False  # not a pytest test class, despite the name

    fixtures_dir: Path | None = None
    require_fixture_match: bool = False
    invocation_log_path: Path | None = None
    invocation_log_size: int = DEFAULT_SIZE
    invocation_log_bytes: int = DEFAULT_BYTES
    rate_limits_path: Path | None = None


class TestKit:
    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, config: TestKitConfig | None = None) -> None:
        config = config or TestKitConfig()
        self.config = config
        self.rules = RuleBook(config.fixtures_dir)
        self.faults = FaultBook()
        self.limits = RateLimiter(load_limits(config.rate_limits_path) if config.rate_limits_path else None)
        self.log = InvocationLog(config.invocation_log_size, config.invocation_log_path,
                                 max_bytes=config.invocation_log_bytes)
        self.require_fixture_match = config.require_fixture_match

    def reset(self) -> None:
        """Back to the state the server started in: file rules (unused), no faults, start-up limits, empty log."""
        self.rules.reset()
        self.faults.clear()
        self.limits.reset()
        self.log.clear()
        self.require_fixture_match = self.config.require_fixture_match


TESTKIT = web.AppKey("testkit", TestKit)


@dataclass
class _Active:
    kit: TestKit
    invocation: Invocation
    plan: Plan


async def around_operation(request: web.Request, operation: str, labels: dict, handler) -> web.StreamResponse:
    """Run one Bedrock operation with faults, rate limits and the invocation log applied."""
    kit = request.app[TESTKIT]
    model_id = labels.get("modelId")
    invocation = await Invocation.begin(request, operation, model_id)
    plan = kit.faults.plan(operation, model_id)
    invocation.faults = plan.fired
    token = _CURRENT.set(_Active(kit, invocation, plan))
    request[STREAM_TAP] = invocation.stream_frame
    admission = None
    try:
        if plan.first_byte_delay:
            await asyncio.sleep(plan.first_byte_delay)
        if plan.error is not None:  # a fresh exception: the plan's own never carries a traceback (no cycles)
            raise BedrockError(plan.error.code, plan.error.message, **plan.error.extra)
        admission = kit.limits.admit(operation, model_id)
        # The reply is sent here, inside the operation's scope, so the log and the limits see a whole stream.
        response = await send(request, await handler(request, labels))
        invocation.answered(response)
        return response
    except BedrockError as error:
        invocation.failed(error)
        raise
    except (asyncio.CancelledError, ConnectionError):  # the client went away; the log says so
        invocation.failed(BedrockError("InternalServerException", "The client closed the connection."))
        raise
    except Exception:  # the middleware answers this one (and logs the traceback)
        invocation.failed(BedrockError("InternalServerException"))
        raise
    finally:
        _CURRENT.reset(token)
        invocation.done()
        if admission is not None:
            admission.settle(invocation.total_tokens)
        await kit.log.append(invocation)


async def around_generation(service: Service, call: Call, model_events: Callable[[], AsyncIterator[Event]]
                            ) -> AsyncIterator[Event]:
    """The events answering `call`: a matching rule's, else the model's; faults applied; tokens logged."""
    active = _CURRENT.get()
    if active is None:  # generation outside a request (benchmarks, direct use): the model as is
        async with aclosing(model_events()) as events:
            async for event in events:
                yield event
        return
    kit, invocation = active.kit, active.invocation
    # The body is parsed again only when some rule matches on it (large bodies cost nothing otherwise).
    # User regexes run on a worker thread (with their time budget), so a slow pattern never holds the loop.
    body = invocation.request_body if kit.rules.wants_body else None
    rule = await asyncio.to_thread(kit.rules.match, call, body) if kit.rules.needs_thread else kit.rules.match(call, body)
    if rule is not None:
        invocation.rule = rule.label
        events = scripted_events(rule, call, service)
    elif kit.require_fixture_match:
        raise validation(
            f"No scripted response rule matched this request (operation {call.operation}, model {call.model_id}, "
            f"turn {max(call.turn_index, 1)}, last user text {call.last_user_text[:200]!r}), and the emulator "
            "requires one (--require-fixture-match)."
        )
    else:
        events = model_events()
    if active.plan.shapes_stream:
        events = shaped(events, active.plan)
    async with aclosing(events):  # closing this generator closes the source now, which stops its generation
        async for event in events:
            if isinstance(event, Finished):
                invocation.tokens(event.input_tokens, event.output_tokens)
            yield event


def current() -> _Active | None:
    """The test kit, invocation and fault plan of the operation running now (None outside one): how answers
    that bypass generation (recorded replies, forwarded calls) report tokens and apply stream faults."""
    return _CURRENT.get()


async def _first_byte(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the moment the status line goes out."""
    active = _CURRENT.get()
    if active is not None:
        active.invocation.first_byte()


def install(app: web.Application, config: TestKitConfig) -> TestKit:
    try:
        kit = app[TESTKIT] = TestKit(config)
    except (RuleError, RateLimitError) as exc:  # a user's file: say what is wrong, no traceback (as the catalog does)
        raise SystemExit(f"invalid testing configuration:\n{exc}") from None
    app.on_response_prepare.append(_first_byte)
    app[SERVICE].around_generation = around_generation
    return kit


__all__ = ["TESTKIT", "TestKit", "TestKitConfig", "around_generation", "around_operation", "current", "install"]
