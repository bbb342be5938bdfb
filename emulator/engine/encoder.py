"""A lean BERT encoder forward for the embedding model, so a start never imports transformers' model classes.

Importing transformers' modeling stack and building a model through `from_pretrained` takes seconds on a small
machine (most of a warm start), while the forward itself is a dozen tensor ops per layer. This module reads the
checkpoint's safetensors directly and runs the same float32 computation as transformers' `BertModel` (absolute
positions, token type 0, post-layer-norm, exact GELU); bench/agreement.py checks its vectors against transformers'.
Other encoder architectures load through transformers (`EmbeddingModel.load`).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

SUPPORTED = {"BertModel"}


def supports(folder: Path) -> bool:
    try:
        config = json.loads((folder / "config.json").read_text())
    except OSError:
        return False
    return (
        bool(SUPPORTED.intersection(config.get("architectures") or []))
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and any(folder.glob("*.safetensors"))
    )


class BertEncoder:
    """Callable like transformers' BertModel for what embeddings need: `model(input_ids=..., attention_mask=...)`."""

    def __init__(self, folder: Path, device: torch.device) -> None:
        from safetensors.torch import load_file

        raw = json.loads((folder / "config.json").read_text())
        self.config = SimpleNamespace(**raw)
        w: dict[str, torch.Tensor] = {}
        for shard in sorted(folder.glob("*.safetensors")):
            w.update(load_file(shard, device=str(device)))
        w = {k.removeprefix("bert."): v.float() for k, v in w.items()}
        self.heads = raw["num_attention_heads"]
        self.hidden = raw["hidden_size"]
        self.eps = float(raw.get("layer_norm_eps", 1e-12))
        e = "embeddings."
        self.word, self.position = w[e + "word_embeddings.weight"], w[e + "position_embeddings.weight"]
        self.token_type = w[e + "token_type_embeddings.weight"]
        self.embed_norm = (w[e + "LayerNorm.weight"], w[e + "LayerNorm.bias"])
        self.layers = []
        for i in range(raw["num_hidden_layers"]):
            p = f"encoder.layer.{i}."
            a = p + "attention."
            qkv_w = torch.cat([w[a + f"self.{n}.weight"] for n in ("query", "key", "value")])
            qkv_b = torch.cat([w[a + f"self.{n}.bias"] for n in ("query", "key", "value")])
            self.layers.append((
                (qkv_w, qkv_b),
                (w[a + "output.dense.weight"], w[a + "output.dense.bias"]),
                (w[a + "output.LayerNorm.weight"], w[a + "output.LayerNorm.bias"]),
                (w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"]),
                (w[p + "output.dense.weight"], w[p + "output.dense.bias"]),
                (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
            ))

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                 **_: object) -> SimpleNamespace:
        b, n = input_ids.shape
        types = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
        x = self.word[input_ids] + self.position[:n][None] + self.token_type[types]
        x = F.layer_norm(x, (self.hidden,), *self.embed_norm, self.eps)
        mask = attention_mask.bool()[:, None, None, :]  # padding keys are never attended
        hd = self.hidden // self.heads
        for qkv, out, norm1, up, down, norm2 in self.layers:
            q, k, v = F.linear(x, *qkv).view(b, n, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b, n, self.hidden)
            x = F.layer_norm(x + F.linear(att, *out), (self.hidden,), *norm1, self.eps)
            x = F.layer_norm(x + F.linear(F.gelu(F.linear(x, *up)), *down), (self.hidden,), *norm2, self.eps)
        return SimpleNamespace(last_hidden_state=x)

    def to(self, device: torch.device) -> "BertEncoder":
        return self

    def eval(self) -> "BertEncoder":
        return self
