"""Runs generation on a dedicated thread so the event loop never waits on the model.

Sequences are interleaved token by token: a request that arrives while another is generating joins at the next
token boundary and leaves as soon as it finishes, so a long generation never starves a short one. Each step
hands its events back to the request's event loop thread-safely.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable

import torch

from . import sampling
from .detok import IncrementalDetokenizer
from .stops import StopMatcher
from .text_model import TextModel
from .types import END_TURN, MAX_TOKENS, STOP_SEQUENCE, Event, Failed, Finished, GenerationRequest, TextDelta

log = logging.getLogger("emulator.engine")

CONTEXT_EXCEEDED = "model_context_window_exceeded"


class _Sequence:
    def __init__(self, request: GenerationRequest, sink: Callable[[Event], None], model: TextModel) -> None:
        self.request = request
        self.sink = sink
        self.cancelled = False
        self.cache = None
        self.next_input: torch.Tensor | None = None
        self.generated = 0
        self.budget = min(request.params.max_new_tokens, model.context_length - len(request.prompt_ids))
        self.detok = IncrementalDetokenizer(model.tokenizer)
        self.stops = StopMatcher(request.params.stop_sequences)
        self.generator = sampling.make_generator(request.params, model.device)
        self.text: list[str] = []
        self.started = time.monotonic()
        self.first_token_ms: int | None = None

    def emit(self, text: str) -> None:
        if text:
            self.text.append(text)
            self.sink(TextDelta(text))

    def finish(self, reason: str, stop: str | None = None) -> None:
        if reason != STOP_SEQUENCE:
            self.emit(self.stops.flush())
        self.sink(
            Finished(reason, stop, len(self.request.prompt_ids), self.generated, "".join(self.text), self.first_token_ms)
        )


class Scheduler:
    def __init__(self, model: TextModel) -> None:
        self._model = model
        self._incoming: queue.SimpleQueue[_Sequence] = queue.SimpleQueue()
        # Read-only views for tests and diagnostics (written only by the generation thread).
        self.active_sequences = 0
        self.steps_taken = 0
        self._thread = threading.Thread(target=self._run, name=f"generate-{model.name}", daemon=True)
        self._thread.start()

    def submit(self, request: GenerationRequest, sink: Callable[[Event], None]) -> _Sequence:
        seq = _Sequence(request, sink, self._model)
        self._incoming.put(seq)
        return seq

    def _run(self) -> None:
        active: list[_Sequence] = []
        with torch.inference_mode():
            while True:
                if not active:
                    active.append(self._incoming.get())
                while not self._incoming.empty():
                    active.append(self._incoming.get_nowait())
                for seq in list(active):
                    if seq.cancelled:
                        active.remove(seq)
                        continue
                    try:
                        done = self._step(seq)
                        self.steps_taken += 1
                    except Exception as exc:  # reported to the request, never fatal to the thread
                        log.exception("generation failed")
                        seq.sink(Failed(exc))
                        done = True
                    if done:
                        active.remove(seq)
                self.active_sequences = len(active)

    def _step(self, seq: _Sequence) -> bool:
        """Advance one token; return True when the sequence is finished."""
        model = self._model
        if seq.budget <= 0:
            seq.finish(CONTEXT_EXCEEDED)
            return True
        if seq.next_input is None:
            ids = torch.tensor([seq.request.prompt_ids], device=model.device)
        else:
            ids = seq.next_input
        out = model.model(input_ids=ids, past_key_values=seq.cache, use_cache=True)
        seq.cache = out.past_key_values
        logits = out.logits[0, -1]
        constraint = seq.request.constraint
        if constraint is not None:
            logits = constraint.mask_logits(logits)
        token = sampling.choose(logits, seq.request.params, seq.generator)
        if constraint is not None:
            constraint.advance(token)
        if seq.first_token_ms is None:
            seq.first_token_ms = int((time.monotonic() - seq.started) * 1000)
        if token in model.eos_ids:
            seq.finish(END_TURN)
            return True
        seq.generated += 1
        seq.next_input = torch.tensor([[token]], device=model.device)
        safe, stop = seq.stops.feed(seq.detok.push(token))
        seq.emit(safe)
        if stop is not None:
            seq.finish(STOP_SEQUENCE, stop)
            return True
        if constraint is not None and constraint.is_complete():
            seq.finish(END_TURN)
            return True
        if seq.generated >= seq.request.params.max_new_tokens:
            seq.finish(MAX_TOKENS)
            return True
        if seq.generated >= seq.budget:
            seq.finish(CONTEXT_EXCEEDED)
            return True
        return False


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
        """Model steps (one token each) taken since start, across all sequences."""
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

    async def complete(self, request: GenerationRequest) -> Finished:
        async for event in self.stream(request):
            if isinstance(event, Failed):
                raise event.error
            if isinstance(event, Finished):
                return event
        raise RuntimeError("generation ended without a result")
