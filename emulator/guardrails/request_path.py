"""Guardrails in the request path: a wrapper over one generation's event stream.

`Guard.events` checks the input before the model runs (a block answers with the guardrail's blocked-input
messaging and never starts the model), then checks the output:
- whole replies and `sync` streams hold every event back until the finished text is checked, then release it
  as generated, masked (`{EMAIL}`) or replaced by the blocked-output messaging;
- `async` streams pass events on at once and check the text so far as it grows; on a block the rest is cut and
  the blocked messaging ends the reply. As AWS documents, async mode does not mask: anonymized entities are
  reported in the trace only.
The API layers frame the events as for any generation and add `Guard.converse_fields()` (Converse: `trace`) or
`Guard.native_fields()` / `Guard.chunk_fields()` (InvokeModel: `amazon-bedrock-guardrailAction` and
`amazon-bedrock-trace`), so this works the same over every transport. Tool calls are not checked (as on AWS).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from ..engine.types import END_TURN, Event, Failed, Finished, TextDelta
from .grounding import Embedder, GroundingContext
from .grounding import check as grounding_check
from .policies import Evaluation, Guardrail, assessment, evaluate, resolve_identifier

GUARDRAIL_INTERVENED = "guardrail_intervened"
_ASYNC_STEP = 64  # async mode re-checks the text so far each time this many new characters arrived


@dataclass
class GuardSettings:
    identifier: str
    version: str
    trace: str = "disabled"  # enabled | enabled_full | disabled (InvokeModel's ENABLED... lower-cased)
    mode: str = "sync"  # sync | async (streams only)
    native: bool = False  # InvokeModel: the family's own stop reason, intervention in body fields
    tag_suffix: str | None = None  # InvokeModel input tagging


@dataclass
class _Check:
    evaluation: Evaluation
    characters: int
    latency_ms: int
    texts: list[str]
    masked_texts: list[str]  # each text with its anonymized entities replaced by `{TYPE}`

    @property
    def blocked(self) -> bool:
        return self.evaluation.blocked

    @property
    def masked(self) -> bool:
        return any(f.entry.get("action") == "ANONYMIZED" for f in self.evaluation.findings)


def _intervened(check: _Check | None) -> bool:
    return check is not None and (check.blocked or check.masked)


async def _evaluate(guardrail: Guardrail, texts: list[str]) -> _Check:
    started = time.monotonic()
    # Off the event loop: detection time grows with the text.
    def run() -> tuple[list[Evaluation], list[str]]:
        evaluations = [evaluate(guardrail, text) for text in texts]
        return evaluations, [e.anonymized(text) for e, text in zip(evaluations, texts)]

    evaluations, masked = await asyncio.to_thread(run)
    merged = Evaluation([finding for e in evaluations for finding in e.findings])
    return _Check(merged, sum(len(t) for t in texts), int((time.monotonic() - started) * 1000), texts, masked)


@dataclass
class Guard:
    guardrail: Guardrail
    settings: GuardSettings
    input_texts: list[str]
    grounding: GroundingContext = field(default_factory=lambda: GroundingContext([], []))
    embed: Embedder | None = None
    input_check: _Check | None = None
    output_check: _Check | None = None
    model_output: list[str] = field(default_factory=list)  # what the model said, when the guardrail changed it

    @property
    def guardrail_id(self) -> str:
        return resolve_identifier(self.settings.identifier)

    @property
    def intervened(self) -> bool:
        return _intervened(self.input_check) or _intervened(self.output_check)

    # -- the event stream -------------------------------------------------------------------------------------

    async def events(self, source: AsyncIterator[Event]) -> AsyncIterator[Event]:
        async with aclosing(source):
            self.input_check = await _evaluate(self.guardrail, self.input_texts)
            if self.input_check.blocked:  # the model never runs
                async for event in self._replacement(self.guardrail.blocked_input_messaging, 0, 0):
                    yield event
                return
            if self.settings.mode == "async":
                async for event in self._passing(source):
                    yield event
            else:
                async for event in self._holding(source):
                    yield event

    async def _replacement(self, text: str, input_tokens: int, output_tokens: int) -> AsyncIterator[Event]:
        yield TextDelta(text)
        reason = END_TURN if self.settings.native else GUARDRAIL_INTERVENED
        yield Finished(reason, None, input_tokens, output_tokens, text)

    async def _check_output(self, runs: list[str]) -> _Check:
        check = await _evaluate(self.guardrail, runs)
        if self.embed is not None:
            check.evaluation.findings += await grounding_check(self.guardrail, self.embed, self.grounding, "".join(runs))
        return check

    async def _holding(self, source: AsyncIterator[Event]) -> AsyncIterator[Event]:
        held: list[Event] = []
        async for event in source:
            if isinstance(event, Failed):
                yield event
                return
            if not isinstance(event, Finished):
                held.append(event)
                continue
            runs = _text_runs(held)
            self.output_check = check = await self._check_output(runs)
            if check.blocked:
                self.model_output = ["".join(runs)]
                async for replaced in self._replacement(self.guardrail.blocked_outputs_messaging,
                                                        event.input_tokens, event.output_tokens):
                    yield replaced
                return
            if check.masked:
                self.model_output = ["".join(runs)]
                masked = check.masked_texts
                for item in _with_runs(held, masked):
                    yield item
                reason = event.stop_reason if self.settings.native else GUARDRAIL_INTERVENED
                yield replace(event, stop_reason=reason, text="".join(masked))
                return
            for item in held:
                yield item
            yield event
            return

    async def _passing(self, source: AsyncIterator[Event]) -> AsyncIterator[Event]:
        text, checked_at = "", 0
        async for event in source:
            if isinstance(event, TextDelta):
                text += event.text
                yield event
                if len(text) - checked_at < _ASYNC_STEP:
                    continue
                checked_at = len(text)
                check = await _evaluate(self.guardrail, [text])
                if check.blocked:
                    self.output_check, self.model_output = check, [text]
                    # The rest is cut: closing the source stops the generation now.
                    async for replaced in self._replacement(self.guardrail.blocked_outputs_messaging, 0, 0):
                        if isinstance(replaced, Finished):
                            replaced = replace(replaced, text=text + replaced.text)
                        yield replaced
                    return
            elif isinstance(event, Finished):
                self.output_check = check = await self._check_output([text] if text else [])
                if check.blocked:
                    self.model_output = [text]
                    yield TextDelta(self.guardrail.blocked_outputs_messaging)
                    reason = END_TURN if self.settings.native else GUARDRAIL_INTERVENED
                    yield replace(event, stop_reason=reason)
                    return
                yield event  # anonymized entities were sent unmasked (AWS: no masking in async mode)
                return
            else:
                yield event

    # -- what the replies carry ------------------------------------------------------------------------------

    def _assessment(self, check: _Check) -> dict:
        out = assessment(self.guardrail, check.evaluation, check.characters, check.latency_ms)
        if self.guardrail.grounding and self.grounding.usable and check is self.output_check:
            out["invocationMetrics"]["usage"]["contextualGroundingPolicyUnits"] = max(1, -(-check.characters // 1000))
        if self.settings.trace == "enabled_full":
            _add_undetected(self.guardrail, out, check.evaluation)
        return out

    def _action_reason(self) -> str:
        checks = [c for c in (self.input_check, self.output_check) if c is not None]
        if any(c.blocked for c in checks):
            return "Guardrail blocked."
        if any(c.masked for c in checks):
            return "Guardrail masked."
        return "No action."

    def converse_fields(self) -> dict:
        """Converse's `trace` member (and ConverseStream's metadata `trace`), when the caller asked for one."""
        if self.settings.trace not in ("enabled", "enabled_full"):
            return {}
        trace: dict = {}
        if self.model_output:
            trace["modelOutput"] = self.model_output
        if self.input_check is not None:
            trace["inputAssessment"] = {self.guardrail_id: self._assessment(self.input_check)}
        if self.output_check is not None:
            trace["outputAssessments"] = {self.guardrail_id: [self._assessment(self.output_check)]}
        trace["actionReason"] = self._action_reason()
        return {"trace": {"guardrail": trace}}

    def native_fields(self) -> dict:
        """InvokeModel's body members: the action always, the trace when `X-Amzn-Bedrock-Trace` enables it."""
        fields: dict = {"amazon-bedrock-guardrailAction": "INTERVENED" if self.intervened else "NONE"}
        if self.settings.trace in ("enabled", "enabled_full"):
            trace: dict = {}
            if self.model_output:
                trace["modelOutput"] = self.model_output
            if self.input_check is not None:
                trace["input"] = {self.guardrail_id: self._assessment(self.input_check)}
            if self.output_check is not None:
                trace["outputs"] = [{self.guardrail_id: self._assessment(self.output_check)}]
            trace["actionReason"] = self._action_reason()
            fields["amazon-bedrock-trace"] = {"guardrail": trace}
        return fields

    def chunk_fields(self, last: bool) -> dict:
        """InvokeModelWithResponseStream: every chunk says the action so far; the last one carries the trace."""
        if last:
            return self.native_fields()
        return {"amazon-bedrock-guardrailAction": "INTERVENED" if self.intervened else "NONE"}


def _text_runs(events: list[Event]) -> list[str]:
    """The held text, one string per stretch of consecutive text deltas (tool calls split stretches)."""
    runs: list[str] = []
    open_run = False
    for event in events:
        if isinstance(event, TextDelta):
            if open_run:
                runs[-1] += event.text
            else:
                runs.append(event.text)
                open_run = True
        else:
            open_run = False
    return runs


def _with_runs(events: list[Event], runs: list[str]) -> list[Event]:
    """`events` with each stretch of text deltas replaced by one delta carrying that stretch's new text."""
    out: list[Event] = []
    pending = iter(runs)
    open_run = False
    for event in events:
        if isinstance(event, TextDelta):
            if not open_run:
                text = next(pending)
                if text:
                    out.append(TextDelta(text))
                open_run = True
        else:
            out.append(event)
            open_run = False
    return out


def _add_undetected(guardrail: Guardrail, out: dict, evaluation: Evaluation) -> None:
    """`enabled_full`: configured topics and filters that did not fire are listed too, `detected: false`."""
    fired = {(f.policy, f.entry.get("name") or f.entry.get("type")) for f in evaluation.findings}
    for topic in guardrail.topics:
        if ("topicPolicy", topic.name) not in fired:
            out.setdefault("topicPolicy", {}).setdefault("topics", []).append(
                {"name": topic.name, "type": "DENY", "action": "NONE", "detected": False})
    for kind in guardrail.content:
        if ("contentPolicy", kind) not in fired:
            out.setdefault("contentPolicy", {}).setdefault("filters", []).append(
                {"type": kind, "confidence": "NONE", "filterStrength": "HIGH", "action": "NONE", "detected": False})


__all__ = ["GUARDRAIL_INTERVENED", "Guard", "GuardSettings"]
