"""Runs generation on a dedicated thread so the event loop never waits on the model.

Continuous batching: every running sequence advances by one token in a single batched forward pass per step. A
request that arrives while others generate has its prompt read (prefill) at the next token boundary and joins the
batch; a sequence that finishes, hits a stop sequence or whose client went away leaves at once and its KV cache row
is refilled by the batch's last row. Each sequence keeps its own sampling parameters, random generator, stop
sequences, token budget and constraint, so what it produces does not depend on what else is running (greedy
output may differ in the last bits of a tie between batched and single runs; see bench/RESULTS.md). Each step
hands its events back to the request's event loop thread-safely.

transformers' own continuous-batching manager (`generate_batch` / `init_continuous_batching`) is not used: it has
no per-sequence hook for a `TokenConstraint`, one random seed for the whole batch instead of one per request, and
it runs transformers' generic forward, whose per-step Python cost is what decoder.py exists to avoid.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable

import torch

from . import sampling
from .detok import IncrementalDetokenizer
from .loopguard import NaturalEnding
from .stops import StopMatcher
from .text_model import TextModel
from .types import (CONTEXT_EXCEEDED, END_TURN, MAX_TOKENS, STOP_SEQUENCE, Event, Failed, Finished, GenerationRequest,
                    TextDelta)

log = logging.getLogger("emulator.engine")

MAX_BATCH = 32  # sequences decoded together; later arrivals wait for a row


class _Sequence:
    def __init__(self, request: GenerationRequest, sink: Callable[[Event], None], model: TextModel) -> None:
        self.request = request
        self.sink = sink
        self.cancelled = False
        self.length = 0  # tokens in this sequence's KV cache row
        self.next_token = -1  # chosen but not yet fed to the model
        self.generated = 0
        self.budget = min(request.params.max_new_tokens, model.context_length - len(request.prompt_ids))
        self.detok = IncrementalDetokenizer(model.tokenizer)
        self.stops = StopMatcher(request.params.stop_sequences)
        # Free text only: constrained output (a tool's JSON input) ends by its grammar, never mid-way.
        self.ending = NaturalEnding() if request.params.natural_end and request.constraint is None else None
        self.generator = sampling.make_generator(request.params, model.device)
        self.text: list[str] = []
        self.silent = request.params.require_text  # no non-blank text yet, and end-of-text may not come first

    @property
    def plain_greedy(self) -> bool:
        """Its token is the batch-wide argmax (no per-sequence work before the choice)."""
        return self.request.params.greedy and self.request.constraint is None and not self.silent

    def emit(self, text: str) -> None:
        if text:
            self.text.append(text)
            self.sink(TextDelta(text))

    def finish(self, reason: str, stop: str | None = None) -> None:
        if reason != STOP_SEQUENCE:
            self.emit(self.stops.flush())
        self.sink(
            Finished(reason, stop, len(self.request.prompt_ids), self.generated, "".join(self.text))
        )


class Scheduler:
    def __init__(self, model: TextModel) -> None:
        self._model = model
        self._incoming: queue.SimpleQueue[_Sequence] = queue.SimpleQueue()
        # Read-only views for tests and diagnostics (written only by the generation thread).
        self.active_sequences = 0
        self.steps_taken = 0  # tokens produced, summed over sequences
        self._thread = threading.Thread(target=self._run, name=f"generate-{model.name}", daemon=True)
        self._thread.start()

    def submit(self, request: GenerationRequest, sink: Callable[[Event], None]) -> _Sequence:
        seq = _Sequence(request, sink, self._model)
        self._incoming.put(seq)
        return seq

    def _run(self) -> None:
        active: list[_Sequence] = []  # active[i] owns KV cache row i
        waiting: list[_Sequence] = []
        with torch.inference_mode():
            while True:
                if not active and not waiting:
                    self._model.runner.release()  # idle: give back the KV cache a burst grew
                    waiting.append(self._incoming.get())
                while not self._incoming.empty():
                    waiting.append(self._incoming.get_nowait())
                self._leave(active, [row for row, seq in enumerate(active) if seq.cancelled])
                admitted = []
                while waiting and len(active) + len(admitted) < MAX_BATCH:
                    seq = waiting.pop(0)
                    if seq.cancelled:
                        continue
                    if seq.budget <= 0:
                        seq.finish(CONTEXT_EXCEEDED)
                        continue
                    admitted.append(seq)
                if admitted:
                    self._prefill(active, admitted)
                if active:
                    with self._model.runner.stepping():
                        self._decode(active)
                self.active_sequences = len(active)

    def _guard(self, seq: _Sequence, step: Callable, *args) -> bool:
        """Run one step for `seq`; True while it goes on. A failure is reported to its request, never fatal here."""
        try:
            return step(*args)
        except Exception as exc:
            log.exception("generation failed")
            seq.sink(Failed(exc))
            return False

    def _prefill(self, active: list[_Sequence], admitted: list[_Sequence]) -> None:
        """Read the admitted prompts (together where the runner can) into the rows after `active`, take each one's
        first token, and add those that go on to `active`, rows kept compact."""
        first = len(active)
        try:
            logits = self._model.runner.prefill_many(first, [list(seq.request.prompt_ids) for seq in admitted])
        except Exception as exc:
            log.exception("reading prompts failed")
            for seq in admitted:
                seq.sink(Failed(exc))
            return
        for i, seq in enumerate(admitted):
            seq.length = len(seq.request.prompt_ids)
            if self._guard(seq, self._advance, seq, logits[i], None):
                if first + i != len(active):  # an earlier one ended at once: its row is reused
                    self._model.runner.move_row(first + i, len(active), seq.length)
                active.append(seq)

    def _decode(self, active: list[_Sequence]) -> None:
        tokens = [seq.next_token for seq in active]
        try:
            logits = self._model.runner.decode(tokens, [seq.length for seq in active])
        except Exception as exc:
            log.exception("batched generation failed")
            for seq in active:
                seq.sink(Failed(exc))
            self._leave(active, list(range(len(active))))
            return
        for seq in active:
            seq.length += 1
        greedy = logits.argmax(dim=-1).tolist() if any(s.plain_greedy for s in active) else []
        done = []
        for row, seq in enumerate(active):
            token = greedy[row] if seq.plain_greedy else None
            if not self._guard(seq, self._advance, seq, logits[row], token):
                done.append(row)
        self._leave(active, done)

    def _advance(self, seq: _Sequence, logits: torch.Tensor, token: int | None) -> bool:
        return self._accept(seq, self._choose(seq, logits) if token is None else token)

    def _choose(self, seq: _Sequence, logits: torch.Tensor) -> int:
        constraint = seq.request.constraint
        if constraint is not None:
            logits = constraint.mask_logits(logits)
        if seq.silent:
            logits = logits.clone()
            logits[list(self._model.eos_ids)] = float("-inf")
        token = sampling.choose(logits, seq.request.params, seq.generator)
        if constraint is not None:
            constraint.advance(token)
        return token

    def _accept(self, seq: _Sequence, token: int) -> bool:
        """Take the chosen token: stream its text, and say whether the sequence goes on."""
        self.steps_taken += 1
        if token in self._model.eos_ids:
            seq.finish(END_TURN)
            return False
        seq.generated += 1
        seq.next_token = token
        piece = seq.detok.push(token)
        if seq.silent and piece.strip():
            seq.silent = False
        # HEURISTIC natural ending of an unbounded answer (loopguard.py): the answer ends after `piece[:end]`.
        end = seq.ending.feed(piece) if seq.ending is not None and not seq.silent else None
        safe, stop = seq.stops.feed(piece if end is None else piece[:end])
        seq.emit(safe)
        if stop is not None:
            seq.finish(STOP_SEQUENCE, stop)
            return False
        constraint = seq.request.constraint
        if constraint is not None and constraint.is_complete():
            seq.finish(END_TURN)
            return False
        if end is not None:
            seq.finish(END_TURN)
            return False
        params = seq.request.params
        if seq.generated >= params.max_new_tokens:
            seq.finish(END_TURN if params.fallback_budget and constraint is None else MAX_TOKENS)
            return False
        if seq.generated >= seq.budget:
            seq.finish(CONTEXT_EXCEEDED)
            return False
        return True

    def _leave(self, active: list[_Sequence], rows: list[int]) -> None:
        """Drop these rows from the batch, keeping rows compact: the last row moves into each freed one."""
        for row in sorted(rows, reverse=True):  # highest first, so the last row is never one still to drop
            last = len(active) - 1
            if row != last:
                self._model.runner.move_row(last, row, active[last].length)
                active[row] = active[last]
            active.pop()


class TextEngine:
    """The async face of a text model: stream events or wait for the finished result."""

    def __init__(self, model: TextModel) -> None:
        self.model = model
        self._scheduler = Scheduler(model)

    @property
    def active_sequences(self) -> int:
        """Sequences the generation thread is advancing (a cancelled one leaves at its next turn)."""
        return self._scheduler.active_sequences

    @property
    def steps_taken(self) -> int:
        """Tokens produced since start, summed over all sequences (a batched step of n sequences counts n)."""
        return self._scheduler.steps_taken

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Event]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()
        seq = self._scheduler.submit(request, lambda ev: loop.call_soon_threadsafe(events.put_nowait, ev))
        try:
            while True:
                event = await events.get()
                yield event
                if not isinstance(event, TextDelta):
                    return
        finally:
            seq.cancelled = True  # a client that went away stops its generation at the next token
