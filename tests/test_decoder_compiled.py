"""The compiled decode step (BEDROCK_EMULATOR_COMPILE=1) computes what the eager step computes, for one stream and
for a continuous batch whose size and lengths change, and falls back to eager when it cannot compile.

A tiny random Llama (2 layers) keeps the cold compile short; the real model's graph is the same code."""

from __future__ import annotations

import shutil

import pytest
import torch

from emulator.engine import compiled, decoder
from tiny_llama import CONFIG, state as _state

def _decoder(tmp_path, compile_step: bool) -> decoder.Decoder:
    packed = decoder.pack(_state(), CONFIG, "int4")
    return decoder.Decoder(CONFIG, packed, "int4", torch.device("cpu"), compile_step=compile_step,
                           compile_cache=tmp_path / "inductor")


def _run(dec: decoder.Decoder, prompts: list[list[int]], steps: int) -> list[torch.Tensor]:
    """Prefill every prompt into its row, then decode `steps` greedy tokens for all rows together; a row leaves
    half-way (the batch size changes, the last row moves into its place)."""
    out = []
    with torch.inference_mode():
        tokens = [int(dec.prefill(row, ids).argmax()) for row, ids in enumerate(prompts)]
        lengths = [len(ids) for ids in prompts]
        for step in range(steps):
            logits = dec.decode(tokens, lengths)
            out.append(logits)
            tokens = logits.argmax(dim=-1).tolist()
            lengths = [n + 1 for n in lengths]
            if step == steps // 2 and len(tokens) > 2:
                dec.move_row(len(tokens) - 1, 0, lengths[-1])
                tokens, lengths = [tokens[-1], *tokens[1:-1]], [lengths[-1], *lengths[1:-1]]
    return out


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("cc") is None, reason="no C++ compiler")
def test_the_compiled_step_matches_the_eager_step(tmp_path, monkeypatch):
    monkeypatch.setenv(compiled.ENV, "1")
    fast = _decoder(tmp_path, compile_step=True)
    assert fast.compiled is not None
    assert fast.compiled.ready.wait(600)
    assert fast.compiled.error is None, repr(fast.compiled.error)
    slow = _decoder(tmp_path, compile_step=False)
    assert slow.compiled is None
    for prompts in ([[1, 2, 3, 4, 5]], [[1, 2, 3], [7, 8, 9, 10, 11, 12], [5] * 20, [9, 9]]):
        got, want = _run(fast, prompts, 8), _run(slow, prompts, 8)
        for g, w in zip(got, want):
            assert g.shape == w.shape
            # within a bfloat16 step of the approximate LM head (a token near the rescoring margin may be rescored
            # exactly on one side only)
            torch.testing.assert_close(g, w, atol=0.15, rtol=0)
            assert g.argmax(dim=-1).tolist() == w.argmax(dim=-1).tolist()


def test_when_compiling_fails_the_eager_step_serves(tmp_path, monkeypatch):
    monkeypatch.setenv(compiled.ENV, "1")

    def no_compiler(*args, **kwargs):  # what inductor raises without a working C++ compiler, in short
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setattr(torch, "compile", no_compiler)
    dec = _decoder(tmp_path, compile_step=True)
    assert dec.compiled.ready.wait(60)
    assert isinstance(dec.compiled.error, RuntimeError)
    assert dec.compiled.get(1) is None
    want = _run(_decoder(tmp_path, compile_step=False), [[1, 2, 3]], 3)
    for g, w in zip(_run(dec, [[1, 2, 3]], 3), want):
        torch.testing.assert_close(g, w)


def test_off_unless_asked(monkeypatch):
    monkeypatch.delenv(compiled.ENV, raising=False)
    assert not compiled.wanted(torch.device("cpu"))
    monkeypatch.setenv(compiled.ENV, "1")
    assert compiled.wanted(torch.device("cpu"))
    assert not compiled.wanted(torch.device("cuda"))
