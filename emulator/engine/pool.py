"""Loads every local model the catalog names, once, and hands out their engines."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..catalog import Catalog
from . import encoder, sources
from .embeddings import EmbeddingModel, warm_projections
from .remote import RemoteEmbeddingModel, RemoteTextEngine
from .scheduler import TextEngine
from .text_model import TextModel, load_tokenizer, pick_device

log = logging.getLogger("emulator.models")

LOADING = "loading"  # the models are still loading
LOAD_FAILED = "load_failed"  # loading failed (the detail says why)
ENGINE_SERVED = "engine_served"  # an inference engine answers it: there are no local weights
WRONG_KIND = "wrong_kind"  # a text model asked for embeddings, or the reverse
LOADERS = 2  # models loaded at once (more would only add memory at the peak of a first start's conversions)


class ModelUnavailable(Exception):
    """A model the pool cannot hand out (the service says so in Bedrock's terms)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


class ModelPool:
    def __init__(self, catalog: Catalog, cache_dir: Path, device: str = "cpu") -> None:
        self.catalog = catalog
        self.cache_dir = cache_dir
        self.device_name = device
        self.text: dict[str, TextEngine] = {}
        self.embedding: dict[str, EmbeddingModel | RemoteEmbeddingModel] = {}
        # Models an OpenAI-compatible engine answers (engine/remote.py): nothing to load, ready at once.
        self.remote_text: dict[str, RemoteTextEngine] = {}
        for name, spec in catalog.spec.local_models.items():
            if spec.openai is not None and spec.kind == "text":
                self.remote_text[name] = RemoteTextEngine(name, spec.openai)
            elif spec.openai is not None:
                self.embedding[name] = RemoteEmbeddingModel(name, spec.openai)
        self.ready = False
        self.error: str | None = None

    def load_all(self) -> None:
        """Blocking; run it off the event loop. Records an error instead of raising so health can report it.

        The sources are resolved one after another (a first start downloads and converts, with progress bars);
        then two models load at once: much of a load runs outside the GIL (weight copies and layout changes, file
        reads, the tokenizer's Rust parser) while the other is in Python (transformers' import, tokenizer set-up),
        so on two cores a start waits for about the longer of the two instead of their sum."""
        try:
            device = pick_device(self.device_name)
            used = {entry.local for entry in self.catalog.spec.models if entry.local}
            local = []
            for name in sorted(used):
                spec = self.catalog.spec.local_models[name]
                if spec.openai is None:
                    local.append((name, spec, sources.resolve(spec.package, spec.path, self.cache_dir)))
            loaders = ThreadPoolExecutor(max_workers=LOADERS, thread_name_prefix="load-model")
            try:
                for done in [loaders.submit(self._load, *model, device) for model in local]:
                    done.result()  # the first failure in catalog order is the one reported
            finally:
                loaders.shutdown(cancel_futures=True)  # after a failure, models not yet started are not loaded
            self.ready = True
        except Exception as exc:
            log.exception("model loading failed")
            self.error = str(exc)

    def _load(self, name: str, spec, folder: Path, device) -> None:
        started = time.monotonic()
        if spec.kind == "text":
            self.text[name] = TextEngine(TextModel.load(name, folder, device, spec.dtype))
        else:
            model = _load_embedding(name, folder, device)
            warm_projections(model.dimensions, self.cache_dir)
            self.embedding[name] = model
        log.info("model %s ready in %.1fs", name, time.monotonic() - started)

    def _unavailable(self) -> ModelUnavailable:
        return ModelUnavailable(LOAD_FAILED, self.error) if self.error else ModelUnavailable(LOADING)

    def text_engine(self, name: str) -> TextEngine:
        if name not in self.text:
            if name in self.remote_text:  # callers that need local weights (scripted usage counts) fall back
                raise ModelUnavailable(ENGINE_SERVED, f"{name} is served by an inference engine")
            if name in self.embedding:
                raise ModelUnavailable(WRONG_KIND)
            raise self._unavailable()
        return self.text[name]

    def embedding_model(self, name: str) -> EmbeddingModel | RemoteEmbeddingModel:
        if name not in self.embedding:
            if name in self.text or name in self.remote_text:
                raise ModelUnavailable(WRONG_KIND)
            raise self._unavailable()
        return self.embedding[name]

    def engines(self) -> dict[str, RemoteTextEngine | RemoteEmbeddingModel]:
        """The models that inference engines answer, by name."""
        remote = {name: m for name, m in self.embedding.items() if isinstance(m, RemoteEmbeddingModel)}
        return {**self.remote_text, **remote}

    async def close(self) -> None:
        for engine in self.engines().values():
            await engine.close()


def _load_embedding(name: str, folder: Path, device) -> EmbeddingModel:
    """BERT checkpoints through the lean encoder (no transformers model import at start), others via transformers."""
    if not encoder.supports(folder):
        return EmbeddingModel.load(name, folder, device)
    log.info("loaded embedding model %s from %s on %s (lean BERT encoder)", name, folder, device)
    return EmbeddingModel(name, load_tokenizer(folder), encoder.BertEncoder(folder, device), device)

