"""The decode step compiled by torch.compile (inductor's CPU C++ backend), made ready in the background.

Why: a decode step of the eager decoder is ~900 small tensor ops around 121 int4 matmuls; at one token per step
their Python and dispatch cost is close to half the step (torch profiler, bench/RESULTS.md). Compiling the whole
step fuses the norms, rotary embedding, casts, KV-cache writes and residual adds into a few C++ loops around the
matmul and attention kernels.

How it is kept out of the way:
- Two graphs: one stream (no mask) and a batch of 2..DENSE_FROM_ROWS-1 rows (batch size and cache length dynamic,
  so continuous batching never recompiles); larger batches stay eager (bfloat16 oneDNN weights).
- They are compiled on a background thread at start-up on a scratch KV cache; until both are ready (and forever if
  compiling fails: no C++ compiler, an unsupported torch) the eager path serves, and a failure is logged once.
- inductor's artefacts (FX graph and AOT caches) live under the emulator's cache dir (`inductor/`, unless
  TORCHINDUCTOR_CACHE_DIR is set), so a later start only re-traces (seconds, in the background) instead of compiling.
- The graphs are warmed up on shapes that no live step specialises on (batch size >= 2 for the batch graph, cache
  rows >= 2, lengths >= 2), so a live step does not recompile. (dynamo's "eager_on_recompile" stance would make
  that certain, but a stance is process-wide: it would also stop a second model's background compile.)

Off unless BEDROCK_EMULATOR_COMPILE=1. Measured on the shared 2-core machine (bench/RESULTS.md, issue 19): ~10%
less CPU per token, but a cold compile costs ~150 s of CPU and even a warm start re-traces for ~37 s of CPU
(dynamo traces both 30-layer graphs again in every process; only inductor's output is cached), which on two
cores slows the first requests of every start more than the step saves.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import torch

log = logging.getLogger("emulator.models")

ENV = "BEDROCK_EMULATOR_COMPILE"


def wanted(device: torch.device) -> bool:
    """BEDROCK_EMULATOR_COMPILE=1 on a CPU (the int4 weights' kernels are CPU ones)."""
    return device.type == "cpu" and os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


class CompiledSteps:
    """`get(rows)`: the compiled step for a batch of `rows`, or None while (or when) only eager is available."""

    def __init__(self, step: Callable, warm_up: Callable[[Callable, bool], None], max_rows: int,
                 cache_dir: os.PathLike | None = None) -> None:
        self._step = step
        self._warm_up = warm_up
        self._max_rows = max_rows
        self._cache_dir = cache_dir
        self._compiled: Callable | None = None
        self.ready = threading.Event()  # set when compiling has finished, either way
        self.error: BaseException | None = None
        self.seconds: float | None = None
        self._thread = threading.Thread(target=self._compile, name="compile-decode", daemon=True)
        self._thread.start()

    def get(self, rows: int) -> Callable | None:
        return self._compiled if rows < self._max_rows else None

    def _compile(self) -> None:
        started = time.monotonic()
        try:
            if self._cache_dir is not None:
                os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(self._cache_dir))
            import torch._dynamo  # noqa: F401  (imported here: seconds, and only on this thread)

            # One function, two graphs (dynamo keys them on the `batched` flag).
            compiled = torch.compile(self._step, dynamic=True, fullgraph=True)
            with torch.inference_mode():
                self._warm_up(compiled, False)
                self._warm_up(compiled, True)
            self._compiled = compiled
            self.seconds = time.monotonic() - started
            log.info("compiled decode step ready in %.1fs", self.seconds)
        except Exception as exc:  # no C++ compiler, an unsupported op or torch build: eager serves
            self.error = exc
            log.warning("compiling the decode step failed; decoding eagerly (%s: %s)", type(exc).__name__,
                        str(exc).splitlines()[0] if str(exc) else "")
        finally:
            self.ready.set()
