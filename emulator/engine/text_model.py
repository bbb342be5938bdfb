"""A local causal language model with its tokenizer and chat template."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger("emulator.models")


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(device)


class TextModel:
    def __init__(self, name: str, tokenizer, model, device: torch.device) -> None:
        self.name = name
        self.tokenizer = tokenizer
        self.model = model
        self.device = device
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        self.eos_ids = frozenset(eos_ids)
        self.context_length = int(getattr(model.config, "max_position_embeddings", 2048))

    @classmethod
    def load(cls, name: str, folder: Path, device: torch.device, dtype: str = "float32") -> "TextModel":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype))
        model.to(device).eval()
        log.info("loaded text model %s from %s on %s", name, folder, device)
        return cls(name, tokenizer, model, device)

    def chat_ids(self, messages: list[dict], continue_final: bool = False) -> list[int]:
        """Token ids of a conversation rendered with the model's own chat template.

        `continue_final` renders a trailing assistant message as a prefill the model continues.
        """
        text = self.tokenizer.apply_chat_template(
            messages,
            tokenize=False,
            add_generation_prompt=not continue_final,
            continue_final_message=continue_final,
        )
        return self.text_ids(text)

    def text_ids(self, text: str) -> list[int]:
        """Token ids of a raw prompt (templates already applied, so no special tokens are added)."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]
