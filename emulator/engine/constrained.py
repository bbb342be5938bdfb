"""Constrained decoding: each step only tokens that keep the output inside a grammar may be chosen.

The grammar engine is llguidance (the one vLLM, SGLang and llama.cpp use): it compiles a JSON schema to a grammar
and computes the set of allowed next tokens in Rust, typically in well under a millisecond. What we add:

- `grammar_schema`: objects whose schema says nothing about `additionalProperties` get `false` in the grammar, so
  generated tool input never carries members the schema does not name (the JSON Schema default would allow them).
  Where the schema sets no bound, strings get at most 512 characters, arrays at most 32 items, and numbers stay
  within +-1e15 with at most 6 decimals: values there always satisfy the schema, and a small model that starts
  repeating digits or words cannot run on until maxTokens.
- A budget-aware finish: a constraint knows how many tokens its sequence may still produce. When that budget comes
  close to the length of the shortest way to finish the JSON from the current state (found by a greedy walk on a
  copy of the matcher: close strings, objects and arrays, pick the cheapest values), decoding is steered along
  that walk, so output cut by maxTokens is still complete, valid JSON whenever the budget allows it at all.
"""

from __future__ import annotations

import json
import threading
from functools import lru_cache

import llguidance
import numpy as np
import torch

from .types import TokenConstraint

_COMPILE_OPTIONS = {"whitespace_flexible": False}  # compact JSON: no tokens wasted on layout
# Keywords under which a subschema (or a map / list of them) sits, for `grammar_schema`.
_SUBSCHEMA = ("items", "additionalItems", "contains", "not", "if", "then", "else", "propertyNames")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
# The greedy finishing walk prefers these characters, in this order: close what is open, then the cheapest values.
_FINISH_PREFERENCE = '"}],:0tfn[{' + "ruealse" + "123456789.-" + "abcdghijkmopqvwxyz" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ_ "
_MAX_FINISH_WALK = 512
# Generation caps where a schema sets no bound of its own.
_MAX_STRING = 512
_MAX_ITEMS = 32
_MAX_MAGNITUDE = 10**15
_DECIMAL_STEP = 1e-6
# Finish-walk lengths are re-measured every few steps, and at every step once the budget gets within reach.
_REMEASURE_EVERY = 8
_WATCH_MARGIN = 32
# Headroom for one freely chosen token lengthening the walk (e.g. a token that opens an object and a key).
_SLACK = 12


class SchemaError(ValueError):
    """A JSON schema the grammar engine cannot compile (the message says why)."""


def _has_type(schema: dict, name: str) -> bool:
    types = schema.get("type")
    return types == name or (isinstance(types, list) and name in types)


def grammar_schema(schema: object) -> object:
    """A copy of `schema` with closed objects and generation caps (see the module docstring)."""
    if isinstance(schema, list):
        return [grammar_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _SUBSCHEMA:
        if key in out:
            out[key] = grammar_schema(out[key])
    for key in _SUBSCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [grammar_schema(s) for s in out[key]]
    for key in _SUBSCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: grammar_schema(s) for name, s in out[key].items()}
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = grammar_schema(out["additionalProperties"])
    if (_has_type(out, "object") or "properties" in out) and not {"additionalProperties", "patternProperties"} & out.keys():
        out["additionalProperties"] = False
    if _has_type(out, "string") and not {"maxLength", "pattern", "format", "enum", "const"} & out.keys():
        out["maxLength"] = max(_MAX_STRING, out.get("minLength", 0))
    if _has_type(out, "array") and "maxItems" not in out:
        out["maxItems"] = max(_MAX_ITEMS, out.get("minItems", 0))
    if _has_type(out, "number") or _has_type(out, "integer"):
        if not {"minimum", "exclusiveMinimum"} & out.keys():
            out["minimum"] = -_MAX_MAGNITUDE
        if not {"maximum", "exclusiveMaximum"} & out.keys():
            out["maximum"] = _MAX_MAGNITUDE
        if _has_type(out, "number") and "multipleOf" not in out:
            out["multipleOf"] = _DECIMAL_STEP
    return out


@lru_cache(maxsize=256)
def _compiled(schema_text: str) -> str:
    grammar = llguidance.LLMatcher.grammar_from_json_schema(
        grammar_schema(json.loads(schema_text)), defaults=_COMPILE_OPTIONS
    )
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar)
    if is_error:
        raise SchemaError(messages[0] if messages else "the schema cannot be compiled")
    return grammar


def json_schema_grammar(schema: dict) -> str:
    """The grammar of compact JSON documents valid under `schema` (cached: agents resend the same tools)."""
    try:
        return _compiled(json.dumps(schema))  # key order kept: it is the order members are generated in
    except ValueError as exc:  # SchemaError, or llguidance refusing the input outright
        raise SchemaError(str(exc)) from None


def choice_grammar(options: list[str]) -> str:
    """The grammar of one JSON string out of `options` (e.g. which tool to call)."""
    return json_schema_grammar({"enum": list(options)})


class GrammarTokenizer:
    """llguidance's view of one Hugging Face tokenizer (building it takes about a second; built once per model)."""

    def __init__(self, hf_tokenizer) -> None:
        import llguidance.hf  # imports transformers' modeling stack: paid on the first tool call, not at start

        self.ll = llguidance.hf.from_tokenizer(hf_tokenizer)
        self.vocab_size = self.ll.vocab_size
        self.eos = self.ll.eos_token
        single: dict[str, int] = {}
        for char in dict.fromkeys(_FINISH_PREFERENCE):
            ids = hf_tokenizer.encode(char, add_special_tokens=False)
            if len(ids) == 1:
                single[char] = ids[0]
        # Token ids the finishing walk tries, most preferred first.
        self.finish_candidates = np.array(list(single.values()), dtype=np.int64)
        # Ordinary tokens that open a markup tag (`<`, ` </`, ...), for `FirstTokenBan`.
        self.tag_openers = np.array([
            i for i in range(self.vocab_size)
            if not self.ll.is_special_token(i) and self.ll.decode_bytes([i]).lstrip().startswith(b"<")
        ], dtype=np.int64)


_tokenizers: dict[int, tuple[object, GrammarTokenizer]] = {}
_tokenizers_lock = threading.Lock()


def grammar_tokenizer(hf_tokenizer) -> GrammarTokenizer:
    """The cached `GrammarTokenizer` of a model's tokenizer. Blocking the first time: call it off the event loop."""
    with _tokenizers_lock:
        cached = _tokenizers.get(id(hf_tokenizer))
        if cached is None or cached[0] is not hf_tokenizer:
            cached = (hf_tokenizer, GrammarTokenizer(hf_tokenizer))
            _tokenizers[id(hf_tokenizer)] = cached
        return cached[1]


class FirstTokenBan(TokenConstraint):
    """Forbids some tokens as the first one of a reply, and nothing after it."""

    def __init__(self, banned: np.ndarray) -> None:
        self._banned = banned
        self._first = True

    def mask_logits(self, logits: torch.Tensor) -> torch.Tensor:
        if not self._first:
            return logits
        keep = np.ones(logits.shape[-1], dtype=np.bool_)
        keep[self._banned[self._banned < keep.shape[0]]] = False
        return _masked(logits, keep)

    def advance(self, token_id: int) -> None:
        self._first = False

    def is_complete(self) -> bool:
        return False


def _masked(logits: torch.Tensor, keep: np.ndarray) -> torch.Tensor:
    """`logits` with every position outside `keep` at -inf.

    On CPU this goes through numpy: torch's small element-wise kernels get very slow when the cores are busy
    (its worker threads wait on each other), and this runs once per generated token.
    """
    if logits.device.type == "cpu" and logits.dtype == torch.float32:
        return torch.from_numpy(np.where(keep, logits.numpy(), np.float32(-np.inf)))
    return logits.masked_fill(~torch.from_numpy(keep).to(logits.device), float("-inf"))


class GrammarConstraint(TokenConstraint):
    """Keeps one sequence inside a grammar; `budget` is how many tokens the sequence may produce at most."""

    def __init__(self, tokenizer: GrammarTokenizer, grammar: str, budget: int) -> None:
        self._tok = tokenizer
        self._matcher = llguidance.LLMatcher(tokenizer.ll, grammar)
        if self._matcher.is_error():
            raise SchemaError(self._matcher.get_error())
        self._words = np.zeros((tokenizer.vocab_size + 31) // 32, dtype=np.int32)
        self._remaining = budget
        self._steps = 0
        self._finish_length: int | None = None
        self._forced: list[int] = []  # the finishing walk being followed, next token first

    # -- TokenConstraint -----------------------------------------------------------------------------------
    def mask_logits(self, logits: torch.Tensor) -> torch.Tensor:
        if not self._forced and self._should_finish():
            self._forced = self._finish_walk(self._matcher) or []
        size = logits.shape[-1]
        if self._forced:
            keep = np.zeros(size, dtype=np.bool_)
            keep[self._forced[0]] = True
        else:
            self._fill(self._matcher)
            keep = np.unpackbits(self._words.view(np.uint8), bitorder="little").view(np.bool_)
            if keep.shape[0] < size:
                keep = np.concatenate([keep, np.zeros(size - keep.shape[0], dtype=np.bool_)])
            keep = keep[:size]
        return _masked(logits, keep)

    def advance(self, token_id: int) -> None:
        if self._forced:
            self._forced.pop(0)
        self._matcher.consume_token(token_id)
        self._remaining -= 1
        self._steps += 1

    def is_complete(self) -> bool:
        return self._matcher.is_stopped()

    # -- helpers -------------------------------------------------------------------------------------------
    @property
    def failed(self) -> str | None:
        """Why the matcher gave up (a token outside the grammar was forced on it), or None."""
        return self._matcher.get_error() or None

    def _fill(self, matcher: llguidance.LLMatcher) -> None:
        matcher.unsafe_compute_mask_ptr(self._words.ctypes.data, self._words.nbytes)

    def _should_finish(self) -> bool:
        """Measure the finishing walk now and then; True once the budget leaves no room for free choices."""
        near = self._finish_length is not None and self._remaining <= self._finish_length + _WATCH_MARGIN
        if near or self._finish_length is None or self._steps % _REMEASURE_EVERY == 0:
            walk = self._finish_walk(self._matcher)
            self._finish_length = len(walk) if walk is not None else None
        return self._finish_length is not None and self._finish_length + _SLACK >= self._remaining

    def _finish_walk(self, matcher: llguidance.LLMatcher) -> list[int] | None:
        """A short token path that completes the document from `matcher`'s state (None: none found)."""
        sim = matcher.deep_copy()
        walk: list[int] = []
        words = self._words
        while not sim.is_stopped():
            if len(walk) >= _MAX_FINISH_WALK or sim.is_error():
                return None
            forced = sim.compute_ff_tokens()  # e.g. the rest of a key or an enum value, tokenized compactly
            if forced:
                sim.consume_tokens(forced)
                walk.extend(forced)
                continue
            self._fill(sim)
            if self._bit(words, self._tok.eos):
                walk.append(self._tok.eos)  # the document may end here
                return walk
            token = self._cheapest(words)
            if token is None:
                return None
            sim.consume_token(token)
            walk.append(token)
        return walk

    def _cheapest(self, words: np.ndarray) -> int | None:
        candidates = self._tok.finish_candidates
        hits = (words[candidates >> 5] >> (candidates & 31)) & 1
        found = np.flatnonzero(hits)
        if found.size:
            return int(candidates[found[0]])
        bits = np.unpackbits(words.view(np.uint8), bitorder="little")
        allowed = np.flatnonzero(bits[: self._tok.vocab_size])
        return int(allowed[0]) if allowed.size else None

    @staticmethod
    def _bit(words: np.ndarray, token: int) -> bool:
        return bool((words[token >> 5] >> (token & 31)) & 1)


__all__ = [
    "FirstTokenBan",
    "GrammarConstraint",
    "GrammarTokenizer",
    "SchemaError",
    "choice_grammar",
    "grammar_schema",
    "grammar_tokenizer",
    "json_schema_grammar",
]
