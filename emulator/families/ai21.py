"""AI21 Labs: Jurassic-2 (completion body, no streaming) and Jamba (OpenAI-style chat)."""

from __future__ import annotations

import re

from ..catalog import base_model_id
from ..chat.prompts import Prompt, instruction
from ..engine.types import CONTEXT_EXCEEDED, MAX_TOKENS, STOP_SEQUENCE, Finished
from . import schema as s
from .base import Knobs, NativeRequest, TextFamily
from .openai import OpenAIChat

_PENALTY = s.Obj({
    "scale": s.Num(0),
    **{f"applyTo{kind}": s.Bool() for kind in ("Whitespaces", "Punctuations", "Numbers", "Stopwords", "Emojis")},
})


class Jurassic2(TextFamily):
    completes_text = True
    name = "ai21-j2"
    streams = False  # Bedrock serves Jurassic-2 through InvokeModel only
    knobs = Knobs(max_tokens=("maxTokens",), temperature=("temperature",), top_p=("topP",), top_k=None,
                  stop=("stopSequences",))
    defaults = {"max_tokens": 200, "temperature": 0.5, "top_p": 0.5}
    ranges = {"temperature": (0, 1), "top_p": (0, 1), "max_tokens": (1, 8191), "n": (1, 16)}

    def build_schema(self) -> s.Spec:
        return s.Obj(
            {
                "prompt": s.Str(),
                "maxTokens": self.range_spec("max_tokens", integer=True),
                "minTokens": s.Int(0),
                "temperature": self.range_spec("temperature"),
                "topP": self.range_spec("top_p"),
                "stopSequences": s.Arr(s.Str(), max_items=1),  # the live validator allows one
                "numResults": self.range_spec("n", integer=True),
                "topKReturn": s.Int(0, 64),
                "countPenalty": _PENALTY,
                "presencePenalty": _PENALTY,
                "frequencyPenalty": _PENALTY,
            },
            required=("prompt",),
        )

    def prompt(self, body: dict) -> Prompt:
        return Prompt(messages=instruction(body["prompt"]))

    def choices(self, body: dict) -> int:
        return int(body.get("numResults", 1))

    def _finish_reason(self, result: Finished) -> dict:
        if result.stop_reason == STOP_SEQUENCE:
            return {"reason": "stop", "sequence": result.stop_sequence}
        if result.stop_reason in (MAX_TOKENS, CONTEXT_EXCEEDED):
            return {"reason": "length", "length": result.output_tokens}
        return {"reason": "endoftext"}

    def native_responses(self, results: list[Finished], model_id: str, request: NativeRequest | None = None) -> dict:
        body = request.body if request else {}
        # Token-level details (`tokens` with log-probabilities) are not computed by the local engine: left empty.
        return {
            "id": 1234,
            "prompt": {"text": body.get("prompt", ""), "tokens": []},
            "completions": [
                {"data": {"text": r.text, "tokens": []}, "finishReason": self._finish_reason(r)} for r in results
            ],
        }

    def native_response(self, result: Finished, model_id: str, request: NativeRequest | None = None) -> dict:
        return self.native_responses([result], model_id, request)


class Jamba(OpenAIChat):
    name = "ai21-jamba"
    tool_choices = ("auto",)
    knobs = Knobs(max_tokens=("max_tokens",), temperature=("temperature",), top_p=("top_p",), top_k=None,
                  stop=("stop",))
    defaults = {"max_tokens": 4096, "temperature": 1.0, "top_p": 1.0}
    ranges = {"temperature": (0, 2), "top_p": (0, 1), "max_tokens": (1, None), "n": (1, 16)}
    roles = ("system", "user", "assistant", "tool")
    extra_members = ("frequency_penalty", "presence_penalty", "tools", "response_format", "documents")

    def build_schema(self) -> s.Spec:
        schema = super().build_schema()
        members = {k: v for k, v in schema.properties.items() if k not in ("max_completion_tokens", "seed", "model")}
        return s.Obj(members, required=("messages",))

    def reply_model(self, model_id: str) -> str:
        """`ai21.jamba-1-5-large-v1:0` -> `jamba-1.5-large`, the name Jamba reports."""
        name = base_model_id(model_id).removeprefix("ai21.")
        name = re.sub(r"-v\d+(:\d+)?$", "", name)
        return re.sub(r"(\d)-(\d)", r"\1.\2", name)

    def reply_choice(self, index: int, result: Finished) -> dict:
        choice = super().reply_choice(index, result)
        choice["message"]["tool_calls"] = None
        return choice

    def native_responses(self, results: list[Finished], model_id: str, request: NativeRequest | None = None) -> dict:
        reply = super().native_responses(results, model_id, request)
        reply["meta"] = {"requestDurationMillis": request.latency_ms if request else 0}
        return reply
