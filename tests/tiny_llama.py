"""A tiny random Llama (2 layers, 64 wide) for tests of the decoder's steps: short to run and to compile; the real
model's forward is the same code."""

from __future__ import annotations

import torch

CONFIG = {
    "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
    "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 256, "rms_norm_eps": 1e-5,
    "max_position_embeddings": 512, "tie_word_embeddings": True, "rope_theta": 10000.0,
}


def state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)

    def w(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.1

    h, inter = CONFIG["hidden_size"], CONFIG["intermediate_size"]
    kv = CONFIG["num_key_value_heads"] * h // CONFIG["num_attention_heads"]
    state = {"model.embed_tokens.weight": w(CONFIG["vocab_size"], h), "model.norm.weight": 1 + w(h)}
    for i in range(CONFIG["num_hidden_layers"]):
        p = f"model.layers.{i}."
        state |= {p + "self_attn.q_proj.weight": w(h, h), p + "self_attn.k_proj.weight": w(kv, h),
                  p + "self_attn.v_proj.weight": w(kv, h), p + "self_attn.o_proj.weight": w(h, h),
                  p + "mlp.gate_proj.weight": w(inter, h), p + "mlp.up_proj.weight": w(inter, h),
                  p + "mlp.down_proj.weight": w(h, inter), p + "input_layernorm.weight": 1 + w(h),
                  p + "post_attention_layernorm.weight": 1 + w(h)}
    return state
