"""The native decode step (engine/native.py, engine/kernels/decode_step.c) computes transformers' float32 numerics over
the checkpoint's own Q4_1 weights, gives a row the same logits whatever batch or thread count it runs in, and steps
aside for torch's step when it cannot be built or is turned off.

A tiny random Llama (2 layers) whose weights lie on the Q4_1 grid (and whose vocabulary lies on the 8-bit grid), so
the float32 decoder over the same state dict is the exact reference; the real model runs the same code through every
server test."""

from __future__ import annotations

import functools
import platform
import shutil
import time

import pytest
import torch

from emulator.engine import decoder, native

from tiny_llama import CONFIG
from tiny_llama import state as random_state

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")


def _on_grids(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    def q4(w: torch.Tensor) -> torch.Tensor:
        q, step, low = decoder._q4(w)
        return (q.float() * step[..., None] + low[..., None]).view_as(w)

    def q8(w: torch.Tensor) -> torch.Tensor:
        q, d = decoder._int8_blocks(w)
        return (q.float().view(w.shape[0], -1, decoder.GROUP) * d[..., None]).view_as(w)

    return {k: q8(v) if "embed" in k else q4(v) if "proj" in k else v for k, v in state.items()}


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return _on_grids(random_state())


def _native(state, tmp_path) -> decoder.Decoder:
    dec = decoder.Decoder(CONFIG, decoder.pack(state, CONFIG, "int4"), "int4", torch.device("cpu"),
                          native_cache=tmp_path)
    assert dec.native is not None
    return dec


def _cpu_flags() -> list[str]:
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            return line.split(":", 1)[1].split()
    return []


def _greedy(dec: decoder.Decoder, first: list[int], steps: int) -> list[torch.Tensor]:
    """Rows 0..B-1 start at position 0 with tokens `first` and decode greedily, every token through `decode`."""
    out, tokens = [], list(first)
    with torch.inference_mode():
        for position in range(steps):
            with dec.stepping():
                logits = dec.decode(tokens, [position] * len(tokens))
            out.append(logits)
            tokens = logits.argmax(dim=-1).tolist()
    return out


X86 = platform.machine() in ("x86_64", "AMD64")


@pytest.mark.parametrize("march", [
    "native",  # what the server builds: AVX-512 or AVX2 where this CPU has them
    pytest.param("x86-64-v3", marks=pytest.mark.skipif(not X86, reason="x86-64 only")),  # the AVX2 + FMA path
    pytest.param("x86-64", marks=pytest.mark.skipif(not X86, reason="x86-64 only")),  # the portable C loops
])
def test_the_native_step_computes_float32_numerics_over_the_same_weights(state, tmp_path, monkeypatch, march):
    if march == "x86-64-v3" and not {"avx2", "fma"} <= set(_cpu_flags()):
        pytest.skip("this CPU has no AVX2/FMA")
    monkeypatch.setattr(native, "library", functools.partial(native.library, march=march))
    fast = _native(state, tmp_path)
    exact = decoder.Decoder(CONFIG, decoder.pack(state, CONFIG, "float32"), "float32", torch.device("cpu"))
    # 300 steps: past the KV cache's first capacity (256), so the step follows the cache into its new tensors
    for got, want in zip(_greedy(fast, [3, 77, 200], 300), _greedy(exact, [3, 77, 200], 300)):
        assert got.argmax(dim=-1).tolist() == want.argmax(dim=-1).tolist()
        best = want.argmax(dim=-1, keepdim=True)
        # the greedy token's logit is rescored exactly: float32 up to summation order
        torch.testing.assert_close(got.gather(1, best), want.gather(1, best), rtol=0, atol=1e-4)
        # every other logit comes from the Q4_1 LM head (GGUF's own head weights): close, not exact
        torch.testing.assert_close(got, want, rtol=0, atol=0.5)


def test_a_row_gets_the_same_logits_alone_in_a_batch_and_on_any_thread_count(state, tmp_path):
    dec = _native(state, tmp_path)
    alone = _greedy(dec, [3], 20)
    batched = _greedy(dec, [3, 9, 41, 250, 7], 20)  # the same decoder: its cache grows new rows
    for a, b in zip(alone, batched):
        assert torch.equal(a[0], b[0])
    runs = []
    for threads in (1, 2, 3):
        dec.cache.reset()
        dec.cache.ensure(3, 8, dec.context_length)
        runs.append(dec.native.hidden([5, 6, 7], [0, 0, 0], dec.cache.k, dec.cache.v, threads))
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])


def test_the_torch_step_serves_when_the_native_one_cannot_be_built_or_is_off(state, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(native, "_compiler", lambda: shutil.which("false"))
    broken = decoder.Decoder(CONFIG, decoder.pack(state, CONFIG, "int4"), "int4", torch.device("cpu"),
                             native_cache=tmp_path / "broken")
    assert broken.native is None
    assert "building the native decode step failed" in caplog.text
    monkeypatch.undo()
    monkeypatch.setenv(native.ENV, "0")
    off = decoder.Decoder(CONFIG, decoder.pack(state, CONFIG, "int4"), "int4", torch.device("cpu"),
                          native_cache=tmp_path)
    assert off.native is None
    monkeypatch.delenv(native.ENV)
    on = _native(state, tmp_path)
    # either way the same greedy tokens (torch's step: bfloat16 activations, so only the tokens are compared)
    assert [t.argmax(-1).tolist() for t in _greedy(off, [3, 77], 12)] == \
        [t.argmax(-1).tolist() for t in _greedy(on, [3, 77], 12)]


def test_prompts_read_together_leave_what_they_leave_one_by_one(state, tmp_path):
    """prefill_many pads a group of prompts to its longest: the logits and every later step are the same as when each
    prompt is read alone (grouped here: lengths 5 and 3; then 20, 4 and 30)."""
    prompts = [[1, 2, 3, 4, 5], [7, 8, 9], [5] * 20, [9, 9, 11, 12], list(range(30, 60))]
    together, alone = _native(state, tmp_path), _native(state, tmp_path)
    with torch.inference_mode():
        first = together.prefill_many(0, prompts)
        assert torch.equal(first, torch.stack([alone.prefill(row, p) for row, p in enumerate(prompts)]))
        tokens, lengths = first.argmax(-1).tolist(), [len(p) for p in prompts]
        for _ in range(5):
            a, b = together.decode(tokens, lengths), alone.decode(tokens, lengths)
            assert torch.equal(a, b)
            tokens, lengths = a.argmax(-1).tolist(), [n + 1 for n in lengths]


def test_a_forked_child_steps_on_a_fresh_pool(state, tmp_path):
    """The pool's workers do not survive a fork: a child that steps on several threads must not wait for them."""
    import os

    dec = _native(state, tmp_path)
    _greedy(dec, [3, 4], 2)  # the parent's pool has its worker now
    pid = os.fork()
    if pid == 0:  # the child: a step on 2 threads, then out without running pytest's teardown
        try:
            _greedy(dec, [3, 4], 2)
            os._exit(0)
        except BaseException:
            os._exit(1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    pytest.fail("the forked child's step waited on workers it does not have")
