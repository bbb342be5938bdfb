"""A local sentence-embedding model (mean pooling over a transformers encoder, as sentence-transformers does)."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import torch

log = logging.getLogger("emulator.models")


class EmbeddingModel:
    def __init__(self, name: str, tokenizer, model, device: torch.device) -> None:
        self.name = name
        self.tokenizer = tokenizer
        self.model = model
        self.device = device
        self.dimensions = int(model.config.hidden_size)
        self.max_length = int(min(getattr(tokenizer, "model_max_length", 512), 512))
        self._lock = threading.Lock()  # one forward pass at a time; callers run in worker threads

    @classmethod
    def load(cls, name: str, folder: Path, device: torch.device) -> "EmbeddingModel":
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder).to(device).eval()
        log.info("loaded embedding model %s from %s on %s", name, folder, device)
        return cls(name, tokenizer, model, device)

    def count_tokens(self, text: str) -> int:
        """Tokens the model reads for `text` (special tokens excluded), before truncation."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def embed_sync(self, texts: list[str]) -> torch.Tensor:
        """Unit-normalised mean-pooled vectors, one row per text (inputs beyond the model's window are cut)."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with self._lock, torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).cpu()

    async def embed(self, texts: list[str]) -> torch.Tensor:
        return await asyncio.to_thread(self.embed_sync, texts)
