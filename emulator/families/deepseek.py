"""DeepSeek-R1: a `prompt` in DeepSeek's chat markup (or plain text), replies as `choices[{text, stop_reason}]`."""

from __future__ import annotations

from ..engine.types import CONTEXT_EXCEEDED, END_TURN, MAX_TOKENS, STOP_SEQUENCE
from . import schema as s
from .base import Knobs, ListedCompletion


class DeepSeek(ListedCompletion):
    list_key = "choices"
    name = "deepseek"
    knobs = Knobs(max_tokens=("max_tokens",), temperature=("temperature",), top_p=("top_p",), top_k=None,
                  stop=("stop",))
    defaults = {"temperature": 1.0, "top_p": 1.0}
    ranges = {"temperature": (0, 1), "top_p": (0, 1), "max_tokens": (1, 32768)}
    max_stop_sequences = 10
    stop_reasons = {END_TURN: "stop", STOP_SEQUENCE: "stop", MAX_TOKENS: "length", CONTEXT_EXCEEDED: "length"}

    def build_schema(self) -> s.Spec:
        return s.Obj(
            {
                "prompt": s.Str(),
                "temperature": self.range_spec("temperature"),
                "top_p": self.range_spec("top_p"),
                "max_tokens": self.range_spec("max_tokens", integer=True),
                "stop": s.Arr(s.Str(), max_items=self.max_stop_sequences),
            },
            required=("prompt",),
        )
