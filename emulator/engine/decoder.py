"""A lean decoder forward for Llama-architecture models, built for batched token-by-token serving.

transformers' generic forward spends most of a small model's decode step in Python (cache objects, mask builders,
module hooks), not in arithmetic: SmolLM2-135M decodes ~24 tokens/s through it against a memory-bandwidth floor of
~2 ms per token. This module runs the same architecture (RMSNorm, rotary embeddings, grouped-query attention,
SwiGLU) as a short list of tensor ops per layer over weights packed for serving:

- "int4" (the CPU default): 4-bit groups of 32 with a scale and a minimum for torch's int4 kernel; GGUF's Q4_1
  blocks have exactly this form, so the layers compute with the checkpoint's own weights. Activations are
  bfloat16 into the matmuls and float32 everywhere else (residual stream, norms, attention, KV cache). Large
  decode batches use a bfloat16 copy of the same weights (see DENSE_FROM_ROWS).
- "int8": one scale per output channel (`torch._weight_int8pack_mm`); a re-quantization, kept for comparison.
- "bfloat16": plain bfloat16 matmuls; the GPU default.
- "float32": the converted weights as they are (transformers' numerics through this code path).
The LM head's best candidates are always rescored exactly in float32 (`Decoder._logits`).

Decode steps of int4 weights on CPU run natively when a C compiler is at hand (native.py: the whole step in one call,
float32 activations over the same Q4_1 blocks); prompts always run through the torch forward below.

Q, K, V and gate/up projections are fused into one matmul each. A batch of sequences shares one KV cache tensor per
layer, one row per sequence, each row at its own length; a step's attention masks every row past its own length.
Rows are compact (a finished sequence's row is refilled by the last one), so a step never gathers the cache.

The transformers model class stays the reference: `bench/agreement.py` measures how often this path's greedy tokens
equal transformers' float32 ones.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

from . import native, sources

# Architectures whose checkpoints this forward reproduces exactly (no biases, no sliding window, default RoPE).
SUPPORTED = {"LlamaForCausalLM"}
log = logging.getLogger("emulator.models")

PACK_VERSION = 5
# The int4 kernel decodes the weights again for every input row, so for a large batch a bfloat16 copy of the same
# weights in oneDNN's blocked layout is faster: one read serves every row. Prompts stay on the int4 weights (GGUF's
# own values, exactly), whose numerics every single-stream token also gets; bfloat16 rounds them slightly.
DENSE_FROM_ROWS = 16
# Threads for a one-sequence decode step (BEDROCK_EMULATOR_STREAM_THREADS; 0 = torch's count). The native step
# (native.py) uses them all by default: its barriers spin briefly, then yield. Torch's step uses one: its 121 small
# matmuls are 121 OpenMP barriers per token, and with every core in the pool the event loop streaming each token (or
# any other process) preempts a pool thread and the barrier waits out a scheduler slice (bench/RESULTS.md, issue 19).
# Prompts and batches use all threads either way.
STREAM_THREADS_ENV = "BEDROCK_EMULATOR_STREAM_THREADS"
PREFILL_TOKENS = 2048  # a group of prompts read in one forward, padded: bounds the step's memory (see prefill_many)
RESCORE_MARGIN = 2.0  # LM-head logits this close to a row's best are recomputed in float32
RESCORE_LIMIT = 64  # at most this many per row
GROUP = 32  # int4 group size: GGUF's Q4 block, so a Q4_1 checkpoint round-trips exactly


def supports(config: dict) -> bool:
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    return (
        bool(SUPPORTED.intersection(config.get("architectures") or []))
        and not config.get("attention_bias")
        and not config.get("mlp_bias")
        and rope.get("rope_type", "default") == "default"
    )


class Linear:
    """y = x @ W.T in the packed weight format; one fused matmul per call."""

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor | None, dense: torch.Tensor | None = None) -> None:
        self.weight = weight
        self.scale = scale
        self.dense = dense
        self.int4 = scale is not None and scale.dim() == 3  # [groups, out, (scale, zero)]

    def __call__(self, x: torch.Tensor, dense: bool = False) -> torch.Tensor:
        if dense and self.dense is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.dense, None, "none", [], "")
        if self.int4:
            return torch.ops.aten._weight_int4pack_mm_for_cpu(x, self.weight, GROUP, self.scale)
        if self.scale is not None:
            return torch._weight_int8pack_mm(x, self.weight, self.scale)
        return F.linear(x, self.weight)


def _q4(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """w on GGUF Q4_1's grid, w = q * step + min per GROUP-block (a Q4_1 checkpoint's own values): q (0..15, uint8)
    [out, blocks, GROUP], step and minimum [out, blocks]."""
    groups = w.view(w.shape[0], -1, GROUP)
    lo, hi = groups.amin(dim=2), groups.amax(dim=2)
    step = ((hi - lo) / 15).clamp(min=1e-12)
    q = torch.round((groups - lo[..., None]) / step[..., None]).clamp(0, 15).to(torch.uint8)
    return q, step, lo


def _int4(q: torch.Tensor, step: torch.Tensor, lo: torch.Tensor, act: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Q4_1 blocks (see `_q4`) in torch's int4 kernel's layout."""
    q = q.to(torch.int32).reshape(q.shape[0], -1)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.contiguous(), 1)
    # the kernel computes (q - 8) * scale + zero
    return packed, torch.stack([step.t(), (lo + 8 * step).t()], dim=-1).to(act).contiguous()


def _int8_blocks(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric 8-bit blocks of GROUP (GGUF Q8_0's layout: w = q * scale), float32 scales."""
    blocks = w.view(w.shape[0], -1, GROUP)
    scale = (blocks.abs().amax(dim=2) / 127.0).clamp(min=1e-12)
    q = torch.round(blocks / scale[..., None]).clamp(-127, 127).to(torch.int8).view_as(w)
    return q.contiguous(), scale.float().contiguous()


def pack(state: dict[str, torch.Tensor], config: dict, weights: str) -> dict[str, torch.Tensor]:
    """Turn a transformers Llama state dict into this module's packed tensors (fused, quantized if asked).

    Besides the layers' matmul weights, the vocabulary table is kept as 8-bit blocks ("vocab.q/.d"): it serves
    the embedding lookup and the exact rescoring of the LM head's best candidates (see `Decoder._logits`).
    """
    act = torch.float32 if weights == "float32" else torch.bfloat16
    out: dict[str, torch.Tensor] = {}

    def linear(name: str, w: torch.Tensor) -> None:
        w = w.float()
        if weights == "int4":
            blocks = _q4(w)
            out[name], out[name + ".scale"] = _int4(*blocks, act)
            out[name + ".q4"] = native.q4_records(*blocks)  # the native step's copy
            out[name + ".dense"] = w.to(act).contiguous()
        elif weights == "int8":
            scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0
            out[name] = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
            out[name + ".scale"] = scale.to(act)
        else:
            out[name] = w.to(act).contiguous()

    embed = state["model.embed_tokens.weight"].float()
    head = embed if config.get("tie_word_embeddings", False) else state["lm_head.weight"].float()
    if weights == "float32":
        out["embed"] = embed.contiguous()
        if head is not embed:
            out["lm_head"] = head.contiguous()
    else:
        out["embed.q"], out["embed.d"] = _int8_blocks(embed)
        if head is not embed:
            out["head.q"], out["head.d"] = _int8_blocks(head)
        linear("lm_head", head)
    out["norm"] = state["model.norm.weight"].float()
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        qkv = torch.cat([state[p + f"self_attn.{n}_proj.weight"] for n in "qkv"])
        linear(f"{i}.qkv", qkv)
        linear(f"{i}.o", state[p + "self_attn.o_proj.weight"])
        linear(f"{i}.gate_up", torch.cat([state[p + "mlp.gate_proj.weight"], state[p + "mlp.up_proj.weight"]]))
        linear(f"{i}.down", state[p + "mlp.down_proj.weight"])
        out[f"{i}.attn_norm"] = state[p + "input_layernorm.weight"].float()
        out[f"{i}.mlp_norm"] = state[p + "post_attention_layernorm.weight"].float()
    return out


def packed_path(folder: Path, weights: str) -> Path:
    return folder / f"emulator-packed-{weights}-v{PACK_VERSION}.safetensors"


def load_packed(folder: Path, weights: str) -> dict[str, torch.Tensor]:
    """The packed weights for `folder`, made once from its safetensors and cached beside them."""
    from safetensors.torch import load_file, save_file

    target = packed_path(folder, weights)
    if target.exists():
        return load_file(target)
    log.info("packing %s weights for %s (once; cached as %s)", weights, folder.name, target.name)
    config = json.loads((folder / "config.json").read_text())
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        if not shard.name.startswith("emulator-packed-"):
            state.update(load_file(shard))
    packed = pack(state, config, weights)
    with sources.written_atomically(target) as tmp:  # two servers may pack at once
        save_file(packed, str(tmp))
    return packed


class KVCache:
    """One K and one V tensor per layer, shaped [rows, kv_heads, capacity, head_dim]; grown by doubling."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, dtype: torch.dtype, device: torch.device) -> None:
        self.shape = (kv_heads, head_dim)
        self.layers = layers
        self.dtype = dtype
        self.device = device
        self.rows = 0
        self.capacity = 0
        self.k: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []
        self.reset()

    def reset(self) -> None:
        """Drop everything (frees memory after a burst of long or many sequences); the next use allocates."""
        self.k, self.v, self.rows, self.capacity = [], [], 0, 0

    def ensure(self, rows: int, length: int, limit: int) -> None:
        if rows <= self.rows and length <= self.capacity:
            return
        new_rows = max(self.rows, 1)
        while new_rows < rows:
            new_rows *= 2
        new_cap = max(self.capacity, 256)
        while new_cap < length:
            new_cap *= 2
        self._alloc(new_rows, min(max(new_cap, length), limit))

    def _alloc(self, rows: int, capacity: int) -> None:
        kvh, hd = self.shape
        # zeros, not empty: masked positions must hold finite values (0 * NaN would poison attention)
        new_k = [torch.zeros(rows, kvh, capacity, hd, dtype=self.dtype, device=self.device) for _ in range(self.layers)]
        new_v = [torch.zeros(rows, kvh, capacity, hd, dtype=self.dtype, device=self.device) for _ in range(self.layers)]
        r, c = min(rows, self.rows), min(capacity, self.capacity)
        for old, new in zip(self.k + self.v, new_k + new_v):
            new[:r, :, :c] = old[:r, :, :c]
        self.k, self.v, self.rows, self.capacity = new_k, new_v, rows, capacity

    def move_row(self, src: int, dst: int, length: int) -> None:
        for t in self.k + self.v:
            t[dst, :, :length] = t[src, :, :length]


class Decoder:
    """Forward passes over a batch of cache rows: `prefill` one row's prompt, `decode` one token for many rows."""

    def __init__(
        self, config: dict, tensors: dict[str, torch.Tensor], weights: str, device: torch.device, chunk: int = 512,
        native_cache: Path | None = None,
    ) -> None:
        self.weights = weights
        self.chunk = chunk
        self.device = device
        self.act = torch.float32 if weights == "float32" else torch.bfloat16
        # Copies, not views: the packed file's memory map (dense copies included) is released once loading is done.
        t = {k: v if k.endswith(".dense") else v.to(device, copy=True) for k, v in tensors.items()}
        self.hidden = config["hidden_size"]
        self.heads = config["num_attention_heads"]
        self.kv_heads = config.get("num_key_value_heads") or self.heads
        self.head_dim = config.get("head_dim") or self.hidden // self.heads
        self.groups = self.heads // self.kv_heads
        self.eps = float(config.get("rms_norm_eps", 1e-6))
        self.context_length = int(config.get("max_position_embeddings", 2048))
        self.n_layers = config["num_hidden_layers"]
        self.vocab = config["vocab_size"]
        # The native step (native.py) decodes every batch when it builds; torch's step when it cannot.
        lib = None
        if weights == "int4" and native_cache is not None and native.wanted(device) and native.supports(config):
            lib = native.library(native_cache)

        def lin(name: str) -> Linear:
            # the bfloat16 copies serve torch's step for big batches only: never read (a memory map) with the native one
            dense = t.get(name + ".dense") if lib is None else None
            if dense is not None:  # oneDNN's blocked layout, made here (it cannot be saved)
                dense = torch.ops.mkldnn._reorder_linear_weight(dense, 16)
            return Linear(t[name], t.get(name + ".scale"), dense)

        if weights == "float32":
            self.embed_q, self.embed_d = t["embed"], None
            self.head_q, self.head_d = None, None
            self.lm_head = Linear(t.get("lm_head", t["embed"]), None)
        else:
            self.embed_q, self.embed_d = t["embed.q"], t["embed.d"]
            self.head_q, self.head_d = t.get("head.q", self.embed_q), t.get("head.d", self.embed_d)
            self.lm_head = lin("lm_head")
        self.norm = t["norm"]
        self.layers = [
            (t[f"{i}.attn_norm"], lin(f"{i}.qkv"), lin(f"{i}.o"), t[f"{i}.mlp_norm"], lin(f"{i}.gate_up"), lin(f"{i}.down"))
            for i in range(self.n_layers)
        ]
        rope = config.get("rope_parameters") or {}
        theta = float(rope.get("rope_theta", config.get("rope_theta", 10000.0)))
        inv = 1.0 / theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float64) / self.head_dim)
        angles = torch.outer(torch.arange(self.context_length, dtype=torch.float64), inv)
        angles = torch.cat([angles, angles], dim=-1)
        self.cos = angles.cos().to(torch.float32).to(device)
        self.sin = angles.sin().to(torch.float32).to(device)
        # Rotary embedding as one matmul per layer: x @ R(pos), with R = diag(cos) + P * sin, P the rotate-half map.
        half = self.head_dim // 2
        eye = torch.eye(self.head_dim)
        rot = torch.zeros(self.head_dim, self.head_dim)
        rot[torch.arange(half) + half, torch.arange(half)] = -1.0
        rot[torch.arange(half), torch.arange(half) + half] = 1.0
        self.eye, self.rot = eye.to(device), rot.to(device)
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.threads = torch.get_num_threads()  # the native step's threads
        self.native = None if lib is None else native.NativeStep(lib, config, t, self.eps, self.cos, self.sin)
        self.stream_threads = int(os.environ.get(STREAM_THREADS_ENV) or (0 if self.native is not None else 1))
        self.cache = KVCache(self.n_layers, self.kv_heads, self.head_dim, torch.float32, device)

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self._rows(self.embed_q, self.embed_d, ids)

    @staticmethod
    def _rows(q: torch.Tensor, d: torch.Tensor | None, ids: torch.Tensor) -> torch.Tensor:
        """Float32 rows `ids` (any shape) of a table stored plain or as 8-bit blocks."""
        rows = q[ids].float()
        if d is None:
            return rows
        return (rows.unflatten(-1, (-1, GROUP)) * d[ids][..., None]).flatten(-2)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """Float32 logits of final hidden states [N, hidden].

        The packed LM head is approximate (4- or 8-bit weights, output rounded to bfloat16: a step of 0.125 at
        typical logit sizes), enough to flip a close greedy choice. So every token within RESCORE_MARGIN of a row's
        best approximate logit is recomputed exactly in float32 from the 8-bit vocabulary blocks: the greedy token
        is the float32 argmax whenever the head's error stays under half the margin (bench/agreement.py measures it).
        """
        return self._rescore(x, self.lm_head(x.to(self.act), x.shape[0] >= DENSE_FROM_ROWS))

    def _rescore(self, x: torch.Tensor, approximate: torch.Tensor) -> torch.Tensor:
        logits = approximate.float()
        if self.head_q is None:
            return logits
        # each row on its own (its best RESCORE_LIMIT, those within the margin): a row's logits never depend on the
        # batch it ran in
        top = logits.topk(min(RESCORE_LIMIT, logits.shape[-1]), dim=-1)
        rows, ranks = torch.nonzero(top.values >= top.values[:, :1] - RESCORE_MARGIN, as_tuple=True)
        cols = top.indices[rows, ranks]
        exact = (self._rows(self.head_q, self.head_d, cols) * x[rows]).sum(dim=-1)
        logits[rows, cols] = exact
        return logits

    def _rope(self, positions: torch.Tensor) -> torch.Tensor:
        cos, sin = self.cos[positions][:, None, :], self.sin[positions][:, None, :]
        return self.eye * cos + self.rot * sin  # [N, hd, hd]

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, lo: int, seqs: int, length: int,
                 mask: torch.Tensor | None, last: torch.Tensor | None, at: int | None = None) -> torch.Tensor:
        """Run N tokens (`seqs` sequences in cache rows lo.., N/seqs tokens each) through every layer.

        `at`: the position when N is one token of one sequence (its KV entries are then written by plain slicing);
        `mask` None: every query row sees the whole cache prefix (a single sequence's next token).
        Returns float32 logits: one row per sequence for its token `last[s]` when `last` is given, else one per token.
        """
        n = ids.shape[0]
        per_seq = n // seqs
        kvh, g, hd, heads = self.kv_heads, self.groups, self.head_dim, self.heads
        q_width, kv_width = heads * hd, kvh * hd
        rows = torch.arange(lo, lo + seqs, device=self.device).repeat_interleave(per_seq)
        rope = self._rope(positions)
        x = self._embed(ids)
        dense = seqs >= DENSE_FROM_ROWS and per_seq == 1  # a big batch of decode steps, never prompts
        act = self.act
        for i, (attn_norm, qkv_proj, o_proj, mlp_norm, gate_up, down) in enumerate(self.layers):
            qkv = qkv_proj(torch.rms_norm(x, (self.hidden,), attn_norm, self.eps).to(act), dense).float()
            qk = torch.bmm(qkv[:, : q_width + kv_width].view(n, heads + kvh, hd), rope)
            k_cache, v_cache = self.cache.k[i], self.cache.v[i]
            if at is not None:  # one token of one sequence: plain slices instead of index_put
                k_cache[lo, :, at] = qk[0, heads:]
                v_cache[lo, :, at] = qkv[0, q_width + kv_width :].view(kvh, hd)
            else:
                k_cache[rows, :, positions] = qk[:, heads:]
                v_cache[rows, :, positions] = qkv[:, q_width + kv_width :].view(n, kvh, hd)
            # Query heads that share a KV head become extra query rows of that head: no K/V repeat needed.
            q = qk[:, :heads].reshape(seqs, per_seq, kvh, g, hd).permute(0, 2, 3, 1, 4).reshape(seqs, kvh, g * per_seq, hd)
            att = F.scaled_dot_product_attention(
                q, k_cache[lo : lo + seqs, :, :length], v_cache[lo : lo + seqs, :, :length], attn_mask=mask, scale=self.scale
            )
            att = att.reshape(seqs, kvh, g, per_seq, hd).permute(0, 3, 1, 2, 4).reshape(n, q_width)
            x = x + o_proj(att.to(act), dense)
            gu = gate_up(torch.rms_norm(x, (self.hidden,), mlp_norm, self.eps).to(act), dense)
            half = gu.shape[1] // 2
            x = x + down(F.silu(gu[:, :half]) * gu[:, half:], dense)
        if last is not None:
            x = x.view(seqs, per_seq, self.hidden)[torch.arange(seqs, device=self.device), last]
        return self._logits(torch.rms_norm(x, (self.hidden,), self.norm, self.eps))

    def prefill(self, row: int, ids: list[int]) -> torch.Tensor:
        """Feed a prompt into cache row `row` (in chunks); return its last token's logits [vocab]."""
        for start in range(0, len(ids), self.chunk):
            logits = self._prefill_chunk(row, ids[start : start + self.chunk], start)
        return logits

    def prefill_many(self, row: int, prompts: list[list[int]]) -> torch.Tensor:
        """Feed prompts into cache rows row, row+1, ...; return their last tokens' logits [len(prompts), vocab].

        Prompts that arrive together are read in one forward where they fit (each within `chunk` tokens, the group
        within PREFILL_TOKENS once right-padded to its longest, padding at most as much as the prompts): a padded
        position's K/V lands past its row's length, where no step ever reads it. The rest go one by one."""
        out: list[torch.Tensor] = []
        start = 0
        while start < len(prompts):
            end, longest = start + 1, len(prompts[start])
            real = longest  # the group's prompt tokens, padding left out
            while end < len(prompts) and longest <= self.chunk:
                n = len(prompts[end])
                wider = max(longest, n)
                if n > self.chunk or wider * (end + 1 - start) > min(PREFILL_TOKENS, 2 * (real + n)):
                    break
                end, longest, real = end + 1, wider, real + n
            if end - start == 1:
                out.append(self.prefill(row + start, prompts[start])[None])
            else:
                out.append(self._prefill_group(row + start, prompts[start:end], longest))
            start = end
        return torch.cat(out)

    def _prefill_group(self, row: int, prompts: list[list[int]], longest: int) -> torch.Tensor:
        seqs = len(prompts)
        self.cache.ensure(row + seqs, longest, self.context_length)
        positions = torch.arange(longest, device=self.device)
        causal = positions[None, :] <= positions[:, None]
        mask = causal.repeat(self.groups, 1)[None, None]  # query rows are (group, token); the same for every row
        ids = torch.tensor([p + [0] * (longest - len(p)) for p in prompts], device=self.device).reshape(-1)
        last = torch.tensor([len(p) - 1 for p in prompts], device=self.device)
        return self._forward(ids, positions.repeat(seqs), row, seqs, longest, mask, last)

    def _prefill_chunk(self, row: int, ids: list[int], start: int) -> torch.Tensor:
        n = len(ids)
        length = start + n
        self.cache.ensure(row + 1, length, self.context_length)
        positions = torch.arange(start, length, device=self.device)
        allowed = torch.arange(length, device=self.device)[None, :] <= positions[:, None]  # causal, with history
        mask = allowed.repeat(self.groups, 1)[None, None]  # query rows are (group, token)
        ids_t = torch.tensor(ids, device=self.device)
        return self._forward(ids_t, positions, row, 1, length, mask, torch.tensor([n - 1], device=self.device))[0]

    @contextlib.contextmanager
    def stepping(self) -> Iterator[None]:
        """Around a decode step and its sampling: with the native step, torch's own ops (rescoring, sampling) run on
        one thread, so that torch's OpenMP workers, which spin after each op, leave the cores to the step's threads."""
        if self.native is None:
            yield
            return
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(self.threads)

    def decode(self, tokens: list[int], positions: list[int]) -> torch.Tensor:
        """One token for each of cache rows 0..B-1 (token b at position positions[b]); return logits [B, vocab]."""
        b = len(tokens)
        length = max(positions) + 1
        self.cache.ensure(b, length, self.context_length)
        if self.native is not None:
            threads = self.stream_threads if b == 1 and self.stream_threads > 0 else self.threads
            x = self.native.hidden(tokens, positions, self.cache.k, self.cache.v, threads)
            return self._rescore(x, self.native.head(x, threads))
        pos = torch.tensor(positions, device=self.device)
        ids_t = torch.tensor(tokens, device=self.device)
        if b == 1 and 0 < self.stream_threads < torch.get_num_threads():
            threads = torch.get_num_threads()
            torch.set_num_threads(self.stream_threads)
            try:
                return self._decode(ids_t, pos, length, positions[0], b)
            finally:
                torch.set_num_threads(threads)
        return self._decode(ids_t, pos, length, positions[0], b)

    def _decode(self, ids_t: torch.Tensor, pos: torch.Tensor, length: int, at: int, b: int) -> torch.Tensor:
        if b == 1:  # one stream: its token sees the whole prefix, no mask
            return self._forward(ids_t, pos, 0, 1, length, None, None, at=at)
        mask = (torch.arange(length, device=self.device)[None, :] <= pos[:, None])[:, None, None, :]
        return self._forward(ids_t, pos, 0, b, length, mask, None)

    def move_row(self, src: int, dst: int, length: int) -> None:
        self.cache.move_row(src, dst, length)

    def release(self) -> None:
        """Idle: free a cache that a burst grew (a single short sequence's cache is kept for the next request)."""
        if self.cache.rows > 1 or self.cache.capacity > 1024:
            self.cache.reset()
