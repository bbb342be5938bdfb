"""A local sentence-embedding model, and the fixed maps from its vectors to the sizes and types Bedrock returns.

The model (all-MiniLM-L6-v2 by default) is mean-pooled as sentence-transformers does. Its 384 values become
Bedrock's 256 / 512 / 1024 / 1536 through one fixed, seeded projection per size (`projection`), chosen so cosine
similarity keeps its meaning; `quantize` then gives Titan's and Cohere's integer and binary types.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from pathlib import Path

import numpy as np
import torch

from . import sources

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
        from .text_model import TRANSFORMERS_LOCK

        with TRANSFORMERS_LOCK:
            from transformers import AutoModel, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModel.from_pretrained(folder).to(device).eval()
        log.info("loaded embedding model %s from %s on %s", name, folder, device)
        return cls(name, tokenizer, model, device)

    def count_tokens(self, text: str) -> int:
        """Tokens the model reads for `text` (special tokens excluded), before truncation."""
        # Under the lock: a fast tokenizer rewrites its shared truncation settings on every call.
        with self._lock:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def embed_sync(self, texts: list[str], normalize: bool = True, keep: str = "start") -> torch.Tensor:
        """Mean-pooled vectors, one row per text, unit-normalised unless asked otherwise.

        Inputs beyond the model's window are cut; `keep` says which part survives ("start" or "end").
        """
        with self._lock, torch.inference_mode():
            # The tokenizer's truncation side is shared state, so it is set and used under the lock.
            self.tokenizer.truncation_side = "right" if keep == "start" else "left"
            batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            batch = {k: v.to(self.device) for k, v in batch.items()}
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return (torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled).cpu()

    async def embed(self, texts: list[str], normalize: bool = True, keep: str = "start") -> torch.Tensor:
        return await asyncio.to_thread(self.embed_sync, texts, normalize, keep)

    @property
    def window(self) -> int:
        """Tokens of text the model reads (its window less the special tokens it adds)."""
        return self.max_length - self.tokenizer.num_special_tokens_to_add()


# Changing this changes every vector the emulator returns; it is part of the documented behaviour.
PROJECTION_SEED = 20240307


_PROJECTIONS: dict[tuple[int, int], np.ndarray] = {}  # (source, target) -> matrix; built or read once per process


def projection(source: int, target: int) -> np.ndarray:
    """The fixed `target x source` matrix that maps native vectors to Bedrock's size (built once per process;
    `warm_projections` reads it from the model cache instead)."""
    found = _PROJECTIONS.get((source, target))
    if found is None:
        found = _PROJECTIONS.setdefault((source, target), _build_projection(source, target))
    return found


def _build_projection(source: int, target: int) -> np.ndarray:
    """Growing (target >= source): the columns are orthonormal, so the map is an isometry; dot products, norms and
    cosine similarity are preserved exactly. Shrinking: a random orthogonal projection scaled by
    sqrt(source/target) (Johnson-Lindenstrauss), which keeps norms in expectation and cosines approximately.
    Both come from one seeded Gaussian matrix, so every run and machine returns the same vectors.
    """
    if target == source:
        return np.eye(source, dtype=np.float64)
    rng = np.random.default_rng((PROJECTION_SEED, source, target))
    basis, _ = np.linalg.qr(rng.standard_normal((max(source, target), min(source, target))))
    if target > source:
        return basis
    return basis.T * math.sqrt(source / target)


# Every size Bedrock's embedding families return (Titan V1 1536; V2 256/512/1024; Cohere 1024; Cohere v4 up to 1536).
FAMILY_SIZES = (256, 512, 1024, 1536)


def warm_projections(source: int, cache_dir: Path | None = None) -> None:
    """Have every family size's matrix ready before the first request: a QR decomposition contends for the CPU with
    the model's threads (on a busy machine it took seconds on a request's path, and seconds of every start: BLAS
    threads spinning against other processes). With `cache_dir`, each matrix is built once and kept in
    `<cache_dir>/projections/` as .npy (the exact float64 values; the file name carries the seed and numpy's version,
    whose QR made them), so later starts only read ~10 MB."""
    for target in FAMILY_SIZES:
        if (source, target) in _PROJECTIONS or cache_dir is None:
            projection(source, target)
            continue
        path = cache_dir / "projections" / f"{PROJECTION_SEED}-{source}x{target}-numpy{np.__version__}.npy"
        try:
            matrix = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):  # absent, or damaged: built again
            matrix = None
        if matrix is None or matrix.shape != (target, source) or matrix.dtype != np.float64:
            matrix = projection(source, target)
            _save(path, matrix)
        _PROJECTIONS.setdefault((source, target), matrix)


def _save(path: Path, matrix: np.ndarray) -> None:
    """Kept for later starts; a cache that cannot be written only costs the next start."""
    try:
        with sources.written_atomically(path) as tmp, open(tmp, "wb") as out:  # two servers may start at once
            np.save(out, matrix, allow_pickle=False)
    except OSError as exc:
        log.warning("could not cache the embedding projection %s: %s", path.name, exc)


def project(vectors: torch.Tensor | np.ndarray, target: int, normalize: bool) -> np.ndarray:
    """Rows mapped to `target` values each, unit-normalised if asked."""
    native = np.asarray(vectors, dtype=np.float64)
    out = native @ projection(native.shape[1], target).T
    if normalize:
        out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
    return out.astype(np.float32)


def quantize(vectors: np.ndarray, kind: str) -> list[list]:
    """Vectors as one of the embedding types Bedrock's models return.

    float: as is. int8 / uint8: each vector scaled so its largest magnitude is 127 (per-vector scaling leaves
    cosine similarity intact), uint8 offset by 128. binary / ubinary (Cohere): the sign bits packed eight to a
    byte, as signed (minus 128) or unsigned bytes. bits (Titan's `binary`): one 0/1 value per dimension.
    """
    if kind == "float":
        return [[float(str(value)) for value in row] for row in vectors.astype(np.float32)]  # shortest float32 text
    if kind in ("int8", "uint8"):
        scale = 127.0 / np.clip(np.abs(vectors).max(axis=1, keepdims=True), 1e-12, None)
        ints = np.rint(vectors * scale).astype(np.int16)
        return (ints + 128 if kind == "uint8" else ints).tolist()
    positive = vectors > 0
    if kind == "bits":
        return positive.astype(np.int8).tolist()
    packed = np.packbits(positive, axis=1).astype(np.int16)
    if kind == "ubinary":
        return packed.tolist()
    if kind == "binary":
        return (packed - 128).tolist()
    raise ValueError(f"unknown embedding type {kind}")
