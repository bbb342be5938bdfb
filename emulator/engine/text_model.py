"""A local causal language model: its tokenizer and chat template, and the runner that computes its logits.

Two runners share one interface (rows of a KV cache; `prefill` a row's prompt, `decode` one token for rows 0..B-1):
- `Decoder` (decoder.py): the fast path for Llama-architecture models, weights packed once into the cache
  (int4 on CPU, bfloat16 on GPU by default); transformers' model class is never instantiated, so a start reads
  only the packed file and the tokenizer.
- `ReferenceRunner`: transformers' own forward pass, one sequence at a time, in the catalog's dtype. It serves
  every other architecture, and `BEDROCK_EMULATOR_WEIGHTS=reference` selects it to reproduce transformers' float32
  numerics exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import weakref
from collections import OrderedDict
from pathlib import Path

import torch

from . import decoder

log = logging.getLogger("emulator.models")

WEIGHTS_ENV = "BEDROCK_EMULATOR_WEIGHTS"
WEIGHT_FORMATS = ("int4", "int8", "bfloat16", "float32", "reference")
PREFILL_CHUNK = 512  # prompt tokens per forward pass: bounds the attention mask's memory on long prompts
# Prompts up to this many characters are tokenized on the calling thread (well under a millisecond: cheaper than a
# hop to a worker thread and back) and their ids remembered; longer ones go to a worker thread, so the event loop
# never spends time that grows with a request's size.
INLINE_CHARS = 2048
MEMO_ENTRIES = 512  # remembered short prompts (at most ~1 MB of text): test suites repeat the same prompts
# Held by loading code while it reaches into transformers: the pool loads two models at once, and transformers'
# lazy top-level module is not thread-safe on first use (a name looked up while another thread imports can come
# back missing).
TRANSFORMERS_LOCK = threading.RLock()


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(device)


def weight_format(device: torch.device) -> str:
    """The format asked for in BEDROCK_EMULATOR_WEIGHTS, else int4 on CPU and bfloat16 on a GPU."""
    chosen = os.environ.get(WEIGHTS_ENV) or ("int4" if device.type == "cpu" else "bfloat16")
    if chosen not in WEIGHT_FORMATS:
        raise RuntimeError(f"{WEIGHTS_ENV}={chosen!r}: expected one of {', '.join(WEIGHT_FORMATS)}")
    if chosen in ("int4", "int8") and device.type != "cpu":
        raise RuntimeError(f"{WEIGHTS_ENV}={chosen} runs on CPU only; use bfloat16 (the GPU default) or float32")
    return chosen


class ReferenceRunner:
    """transformers' forward, one sequence at a time, each with its own cache."""

    def __init__(self, model) -> None:
        self.model = model
        self._caches: dict[int, object] = {}

    def _step(self, row: int, ids: list[int]) -> torch.Tensor:
        out = self.model(
            input_ids=torch.tensor([ids], device=self.model.device), past_key_values=self._caches.get(row), use_cache=True
        )
        self._caches[row] = out.past_key_values
        return out.logits[0, -1].float()

    def prefill(self, row: int, ids: list[int]) -> torch.Tensor:
        self._caches.pop(row, None)
        return self._step(row, ids)

    def prefill_many(self, row: int, prompts: list[list[int]]) -> torch.Tensor:
        return torch.stack([self.prefill(row + i, ids) for i, ids in enumerate(prompts)])

    def decode(self, tokens: list[int], positions: list[int]) -> torch.Tensor:
        return torch.stack([self._step(row, [token]) for row, token in enumerate(tokens)])

    def move_row(self, src: int, dst: int, length: int) -> None:
        self._caches[dst] = self._caches.pop(src)

    def release(self) -> None:
        self._caches.clear()

    def stepping(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


class TextModel:
    def __init__(self, name: str, tokenizer, runner, config: dict, eos_ids: set[int], device: torch.device) -> None:
        self.name = name
        self.tokenizer = tokenizer
        self.runner = runner
        self.device = device
        self.eos_ids = frozenset(eos_ids)
        self.context_length = int(config.get("max_position_embeddings", 2048))
        self._memo: OrderedDict[tuple, tuple[int, ...]] = OrderedDict()  # see prompt_ids
        self._memo_lock = threading.Lock()
        # A template that prints today's date (Llama 3.1's strftime_now) renders differently tomorrow: not remembered.
        self._memo_ok = "strftime" not in str(getattr(tokenizer, "chat_template", None) or "")

    @classmethod
    def load(cls, name: str, folder: Path, device: torch.device, dtype: str = "float32") -> "TextModel":
        config = json.loads((folder / "config.json").read_text())
        weights = weight_format(device)
        if weights != "reference" and decoder.supports(config):
            from .sources import default_cache_dir

            runner = decoder.Decoder(config, decoder.load_packed(folder, weights), weights, device, PREFILL_CHUNK,
                                     native_cache=default_cache_dir())
        else:
            with TRANSFORMERS_LOCK:
                from transformers import AutoModelForCausalLM

                model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype))
            weights = f"reference ({dtype})"
            runner = ReferenceRunner(model.to(device).eval())
        # After the weights: their copies and layout changes run outside the GIL, beside another model's loading
        # (the pool loads two at once), which the tokenizer's transformers import would hold up.
        tokenizer = load_tokenizer(folder)
        log.info("loaded text model %s from %s on %s, weights %s", name, folder, device, weights)
        return cls(name, tokenizer, runner, config, _eos_ids(folder, config, tokenizer), device)

    def chat_ids(self, messages: list[dict], continue_final: bool = False) -> list[int]:
        """Token ids of a conversation rendered with the model's own chat template.

        `continue_final` renders a trailing assistant message as a prefill the model continues.
        """
        return self.text_ids(render_chat(self.tokenizer, messages, continue_final))

    def text_ids(self, text: str) -> list[int]:
        """Token ids of a raw prompt (templates already applied, so no special tokens are added)."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    async def prompt_ids(self, messages: list[dict] | None, text: str | None = None,
                         continue_final: bool = False) -> tuple[int, ...]:
        """`chat_ids(messages, continue_final)`, or `text_ids(text)` when `messages` is None, for the event loop:
        short inputs inline and remembered, long ones on a worker thread."""
        if messages is None:
            key: tuple = (None, text)
            size = len(text)
        elif all(m.keys() == {"role", "content"} and isinstance(m["content"], str) for m in messages):
            key = (continue_final, *((m["role"], m["content"]) for m in messages))
            size = sum(len(m["content"]) for m in messages)
        else:  # messages with more than role and text (none today): not keyed, so the worker thread as before
            size = INLINE_CHARS + 1
        if size > INLINE_CHARS or not self._memo_ok:
            if messages is None:
                return tuple(await asyncio.to_thread(self.text_ids, text))
            return tuple(await asyncio.to_thread(self.chat_ids, messages, continue_final))
        with self._memo_lock:
            ids = self._memo.get(key)
            if ids is not None:
                self._memo.move_to_end(key)
                return ids
        ids = tuple(self.text_ids(text) if messages is None else self.chat_ids(messages, continue_final))
        with self._memo_lock:
            self._memo[key] = ids
            if len(self._memo) > MEMO_ENTRIES:
                self._memo.popitem(last=False)
        return ids


_EMPTY_SYSTEM: "weakref.WeakKeyDictionary[object, str | None]" = weakref.WeakKeyDictionary()


def render_chat(tokenizer, messages: list[dict], continue_final: bool = False) -> str:
    """A conversation rendered with the tokenizer's chat template, without any system prompt of the template's
    own (see `_injected_system_block`): what the model reads for these messages and nothing else."""
    if tokenizer not in _EMPTY_SYSTEM:
        _EMPTY_SYSTEM[tokenizer] = _injected_system_block(tokenizer)
    empty = _EMPTY_SYSTEM[tokenizer]
    no_system = empty is not None and (not messages or messages[0]["role"] != "system")
    if no_system:  # an empty system turn stops the template adding its default; its markup is cut below
        messages = [{"role": "system", "content": ""}, *messages]
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=not continue_final, continue_final_message=continue_final
    )
    if no_system and text.startswith(empty):
        text = text[len(empty):]
    return text


def _injected_system_block(tokenizer) -> str | None:
    """The rendered empty system turn, when the chat template adds a system prompt of its own to conversations
    without one (SmolLM2's "You are a helpful AI assistant named SmolLM..."); None when it adds nothing.

    The caller never sent that prompt: it would change answers and bill tokens nobody asked for."""
    try:
        def render(messages: list[dict], generation: bool = True) -> str:
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)

        user = [{"role": "user", "content": "x"}]
        empty = render([{"role": "system", "content": ""}], generation=False)
        with_empty = render([{"role": "system", "content": ""}, *user])
    except Exception:  # no chat template, or one that rejects these shapes: nothing to undo
        return None
    if not with_empty.startswith(empty) or with_empty[len(empty):] == render(user):
        return None
    return empty


# Named tokenizer classes that build exactly the pipeline their folder's tokenizer.json holds, so the generic
# tokenizers-backed class loads the same tokenizer from it. Naming the class itself imports `transformers.models`,
# which reads the source of every model transformers has (about a second of a start, twice what loading takes).
# BERT's: its class only restates the saved normalizer, pre-tokenizer, decoder and [CLS]/[SEP] template; it also
# lists token_type_ids among its inputs, which for one text are all 0 (what the lean encoder assumes without them).
# tests/test_embeddings.py checks both load the same tokenizer.
AS_SAVED = {"BertTokenizer", "BertTokenizerFast"}


def load_tokenizer(folder: Path):
    """The folder's tokenizer, built from the class its tokenizer_config.json names.

    `AutoTokenizer` resolves the model's config class first, which imports transformers' whole modeling stack
    (seconds of a start); the named tokenizer class is what it would build anyway.
    """
    try:
        named = json.loads((folder / "tokenizer_config.json").read_text()).get("tokenizer_class")
    except OSError:
        named = None
    with TRANSFORMERS_LOCK:
        import transformers

        if named in AS_SAVED and (folder / "tokenizer.json").is_file():
            return transformers.PreTrainedTokenizerFast.from_pretrained(folder)
        tokenizer_class = getattr(transformers, named, None) if isinstance(named, str) else None
        return (tokenizer_class or transformers.AutoTokenizer).from_pretrained(folder)


def _eos_ids(folder: Path, config: dict, tokenizer) -> set[int]:
    """End-of-turn tokens: the generation config's (as transformers' generate uses them), else the model config's."""
    gen_config = folder / "generation_config.json"
    eos = json.loads(gen_config.read_text()).get("eos_token_id") if gen_config.exists() else None
    if eos is None:
        eos = config.get("eos_token_id")
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
