"""The native decode step: `kernels/decode_step.c`, built once per machine by the system C compiler, called by ctypes.

A decode step of SmolLM2-135M is ~900 small torch ops and 121 int4 matmul calls, whose dispatch and thread barriers
cost more than their arithmetic (bench/RESULTS.md, issue 19). The C step runs the whole forward of every layer in one
call, with the GIL released, over the checkpoint's own Q4_1 blocks and float32 activations: transformers' float32
numerics over the same weights, at a fraction of the time. The LM head is one more of its Q4_1 matmuls (the decoder
rescores the best candidates exactly, as for torch's step).

It is built with `-march=native` into `<cache>/native/`, keyed by the source, the compiler and the CPU, so a cache
shared between machines never loads code built for another CPU (AVX-512 or AVX2 with FMA where the CPU has them,
portable C loops elsewhere: the same arithmetic up to summation order). No compiler, a failed build or
BEDROCK_EMULATOR_NATIVE=0: torch's step serves, and the server logs why.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
from pathlib import Path

import torch

from . import sources

log = logging.getLogger("emulator.models")

ENV = "BEDROCK_EMULATOR_NATIVE"
SOURCE = Path(__file__).parent / "kernels" / "decode_step.c"
FLAGS = ["-O3", "-fPIC", "-shared", "-fno-math-errno"]
# The per-layer pointer table's order (decode_step.c's enum): the Q4_1 matrices' record tensors, the two norms, then
# the layer's KV cache tensors.
MATRICES = ("qkv", "o", "gate_up", "down")
_C = ctypes.c_void_p


def wanted(device: torch.device) -> bool:
    return device.type == "cpu" and os.environ.get(ENV, "1") != "0"


def _cpu_identity() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    lines = [line for line in info.splitlines() if line.startswith(("model name", "flags", "Features", "CPU part"))]
    return "\n".join(sorted(set(lines)))


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def library(cache: Path, march: str = "native") -> ctypes.CDLL | None:
    """The built step for this machine, building it on first use; None (and one warning) when it cannot be.
    `march`: the instruction set to build for (tests build the AVX2 and portable paths with x86-64-v3 and x86-64)."""
    compiler = _compiler()
    if compiler is None:
        log.warning("no C compiler found: the local model decodes with torch's step (slower); install gcc or cc")
        return None
    source = SOURCE.read_bytes()
    flags = [*FLAGS, f"-march={march}"]
    key = hashlib.sha256(b"\0".join([source, compiler.encode(), " ".join(flags).encode(),
                                     platform.machine().encode(), _cpu_identity().encode()])).hexdigest()[:16]
    target = cache / "native" / f"decode_step-{key}.so"
    if not target.exists():
        try:
            with sources.written_atomically(target, ".so.tmp") as tmp:  # two servers may build at once
                subprocess.run([compiler, *flags, "-o", str(tmp), str(SOURCE), "-lm"], capture_output=True, text=True,
                               timeout=300, check=True)
        except subprocess.CalledProcessError as exc:
            log.warning("building the native decode step failed; decoding with torch's step (slower):\n%s",
                        exc.stderr[-2000:])
            return None
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("building the native decode step failed (%s); decoding with torch's step (slower)", exc)
            return None
    lib = ctypes.CDLL(str(target))  # CDLL: the GIL is released for the call
    lib.scratch_floats.restype = ctypes.c_int64
    lib.scratch_floats.argtypes = [_C, ctypes.c_int]
    lib.decode_step.restype = None
    lib.decode_step.argtypes = [_C, _C, _C, ctypes.c_float, ctypes.c_int, ctypes.c_int, _C, _C, _C, _C, ctypes.c_int]
    lib.matmul_q4.restype = None
    lib.matmul_q4.argtypes = [_C, ctypes.c_int, ctypes.c_int, _C, ctypes.c_int, _C, ctypes.c_int]
    return lib


TILE = 4  # decode_step.c's TILE: output rows whose block records are stored together
RECORD = 24  # bytes per block record: float32 d and m, 16 bytes of nibbles


def supports(config: dict) -> bool:
    """Shapes decode_step.c handles: inputs in whole blocks of 32, outputs in whole tiles, heads in whole vectors."""
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    kv_heads, head_dim = config.get("num_key_value_heads") or heads, config.get("head_dim") or hidden // heads
    widths = (hidden, config["intermediate_size"], heads * head_dim)
    outs = (hidden, 2 * config["intermediate_size"], (heads + 2 * kv_heads) * head_dim, config["vocab_size"])
    return all(w % 32 == 0 for w in widths) and all(o % TILE == 0 for o in outs) and head_dim % 16 == 0


def q4_records(q: torch.Tensor, step: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """Q4_1 blocks (values q uint8 [out, blocks, 32], `step` and `low` [out, blocks]) as decode_step.c reads them: for
    each TILE rows, for each block, the rows' 24-byte records (float32 d, m; then 16 bytes of nibbles, byte j holding
    value j low and value j + 16 high, GGUF's order), one sequential stream. uint8 [out / TILE, blocks, TILE, 24]."""
    out = q.shape[0]
    nibbles = q[..., :16] | (q[..., 16:] << 4)
    scales = torch.stack([step, low], dim=-1).float().contiguous().view(torch.uint8)
    records = torch.cat([scales, nibbles], dim=-1)  # [out, blocks, 24]
    return records.view(out // TILE, TILE, -1, RECORD).transpose(1, 2).contiguous()


class NativeStep:
    """decode_step.c bound to one model's tensors and its KV cache; `hidden` runs a step, `head` the LM head."""

    def __init__(self, lib: ctypes.CDLL, config: dict, tensors: dict[str, torch.Tensor], eps: float,
                 cos: torch.Tensor, sin: torch.Tensor) -> None:
        self.lib = lib
        self.hidden_size = config["hidden_size"]
        self.vocab = config["vocab_size"]
        heads = config["num_attention_heads"]
        head_dim = config.get("head_dim") or self.hidden_size // heads
        self.cfg = torch.tensor([self.hidden_size, config["intermediate_size"], heads,
                                 config.get("num_key_value_heads") or heads, head_dim, config["num_hidden_layers"],
                                 self.vocab], dtype=torch.int32)
        self.eps = eps
        self.head_q4 = tensors["lm_head.q4"]
        self.keep = [cos, sin]  # everything a pointer refers to stays referenced here
        self.globals = self._pointers([tensors["embed.q"], tensors["embed.d"], tensors["norm"], cos, sin])
        self.layer_fixed = []
        for i in range(config["num_hidden_layers"]):
            row = [tensors[f"{i}.{name}.q4"] for name in MATRICES] + [tensors[f"{i}.attn_norm"], tensors[f"{i}.mlp_norm"]]
            self.keep += row
            self.layer_fixed.append([t.data_ptr() for t in row])
        self.bound: tuple | None = None
        self.scratch = torch.empty(0)

    def _pointers(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        for t in tensors:
            assert t.is_contiguous() and t.device.type == "cpu"
        self.keep += tensors
        return torch.tensor([t.data_ptr() for t in tensors], dtype=torch.int64)

    def _bind(self, ks: list[torch.Tensor], vs: list[torch.Tensor]) -> torch.Tensor:
        """The layers' pointer tables, pointed at the cache's current tensors (new ones when the cache grows)."""
        key = tuple(t.data_ptr() for t in ks + vs)
        if self.bound is None or self.bound[0] != key:
            tables = [torch.tensor(fixed + [k.data_ptr(), v.data_ptr()], dtype=torch.int64)
                      for fixed, k, v in zip(self.layer_fixed, ks, vs)]
            self.bound = (key, tables, torch.tensor([t.data_ptr() for t in tables], dtype=torch.int64), ks, vs)
        return self.bound[2]

    def hidden(self, tokens: list[int], positions: list[int], ks: list[torch.Tensor], vs: list[torch.Tensor],
               threads: int) -> torch.Tensor:
        """Final normed hidden states [B, hidden] for tokens at positions in cache rows 0..B-1 (their K/V written);
        the cache tensors are [rows >= B, kv_heads, capacity, head_dim] float32."""
        b = len(tokens)
        # C indexes with these unchecked: a bad one would read or write past a table, so it is refused here
        if not (0 <= min(tokens) and max(tokens) < self.vocab and 0 <= min(positions) and max(positions) < ks[0].shape[2]
                and ks[0].shape[0] >= b and ks[0].dtype == torch.float32):
            raise ValueError("decode step outside the model's vocabulary or its KV cache")
        need = self.lib.scratch_floats(self.cfg.data_ptr(), b)
        if self.scratch.numel() < need:
            self.scratch = torch.empty(need, dtype=torch.float32)
        out = torch.empty(b, self.hidden_size, dtype=torch.float32)
        ids = torch.tensor(tokens + positions, dtype=torch.int64)
        self.lib.decode_step(self._bind(ks, vs).data_ptr(), self.globals.data_ptr(), self.cfg.data_ptr(), self.eps,
                             ks[0].shape[2], b, ids.data_ptr(), ids[b:].data_ptr(), self.scratch.data_ptr(),
                             out.data_ptr(), threads)
        return out

    def head(self, x: torch.Tensor, threads: int) -> torch.Tensor:
        """Approximate float32 logits [B, vocab] of final hidden states [B, hidden] over the Q4_1 LM head."""
        x = x.contiguous()
        out = torch.empty(x.shape[0], self.vocab, dtype=torch.float32)
        self.lib.matmul_q4(self.head_q4.data_ptr(), self.vocab, self.hidden_size, x.data_ptr(), x.shape[0],
                           out.data_ptr(), threads)
        return out
