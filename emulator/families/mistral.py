"""Mistral: the text-completion body (`prompt`, `stop`) and the chat body of Mistral Large 2 / Pixtral."""

from __future__ import annotations

import secrets

from ..catalog import base_model_id
from ..engine.types import CONTEXT_EXCEEDED, END_TURN, MAX_TOKENS, STOP_SEQUENCE, TOOL_USE, Finished
from . import schema as s
from .base import Knobs, ListedCompletion, NativeRequest
from .openai import _ALNUM, OpenAIChat

_REASONS = {END_TURN: "stop", STOP_SEQUENCE: "stop", MAX_TOKENS: "length", CONTEXT_EXCEEDED: "length",
            TOOL_USE: "tool_calls"}


class MistralText(ListedCompletion):
    list_key = "outputs"
    name = "mistral"
    knobs = Knobs(max_tokens=("max_tokens",), temperature=("temperature",), top_p=("top_p",), top_k=("top_k",),
                  stop=("stop",))
    # 7B / Mixtral values; the catalog overrides them for Large and Small (temperature 0.7, top_p 1).
    defaults = {"max_tokens": 512, "temperature": 0.5, "top_p": 0.9, "top_k": 50}
    ranges = {"temperature": (0, 1), "top_p": (0, 1), "top_k": (1, 200), "max_tokens": (1, None)}
    max_stop_sequences = 10
    stop_reasons = _REASONS

    def build_schema(self) -> s.Spec:
        return s.Obj(
            {
                "prompt": s.Str(),
                "max_tokens": self.range_spec("max_tokens", integer=True),
                "stop": s.Arr(s.Str(), max_items=self.max_stop_sequences),
                "temperature": self.range_spec("temperature"),
                "top_p": self.range_spec("top_p"),
                "top_k": self.range_spec("top_k", integer=True),
            },
            required=("prompt",),
        )


class MistralChat(OpenAIChat):
    """Mistral Large 2 and later: OpenAI-like messages, but replies use `message` and `stop_reason`."""

    name = "mistral-chat"
    tool_choices = ("auto", "any")  # Mistral Large
    knobs = Knobs(max_tokens=("max_tokens",), temperature=("temperature",), top_p=("top_p",), top_k=None, stop=None)
    defaults = {"max_tokens": 8192, "temperature": 0.7, "top_p": 1.0}
    ranges = {"temperature": (0, 1), "top_p": (0, 1), "max_tokens": (1, None)}
    stop_reasons = _REASONS
    roles = ("system", "user", "assistant", "tool")
    extra_members = ("tools", "tool_choice", "response_format")

    def build_schema(self) -> s.Spec:
        schema = super().build_schema()
        keep = ("messages", "max_tokens", "temperature", "top_p", *self.extra_members)
        return s.Obj({k: v for k, v in schema.properties.items() if k in keep}, required=("messages",))

    def check_invocation(self, body: dict, model_id: str, streaming: bool) -> None:
        pass

    def choices(self, body: dict) -> int:
        return 1

    def reply_model(self, model_id: str) -> str:
        """`mistral.mistral-large-2407-v1:0` -> `mistral-large-2407`."""
        return base_model_id(model_id).removeprefix("mistral.").split("-v")[0]

    def completion_id(self, request: NativeRequest | None) -> str:
        return request.request_id if request else "00000000-0000-0000-0000-000000000000"

    def tool_call_id(self) -> str:
        """Like `v6RMMiRlT7ygYkT4uULjtg` in Bedrock's Mistral Large examples."""
        return "".join(secrets.choice(_ALNUM) for _ in range(22))

    def reply_choice(self, index: int, result: Finished) -> dict:
        return {"index": index, "message": {"role": "assistant", "content": result.text, "tool_calls": self.tool_calls(result.tool_uses)},
                "stop_reason": self.native_stop_reason(result.stop_reason)}

    def tool_chunk_choice(self, calls: list[dict], first: bool) -> dict:
        choice = self.chunk_choice("", None, first)
        return {**choice, "message": {**choice["message"], "tool_calls": calls}}

    def chunk_choice(self, text: str | None, reason: str | None, first: bool) -> dict:
        # Recorded Large-2407 chunks carry `message` (not `delta`) and `stop_reason` (not `finish_reason`).
        return {"index": 0, "logprobs": None, "context_logits": None, "generation_logits": None,
                "message": {"role": "assistant" if first else None, "content": text or "", "tool_calls": None,
                            "index": None, "tool_call_id": None},
                "stop_reason": reason}

    def stream_start(self, request: NativeRequest) -> list[dict]:
        return []

    def stream_delta(self, request: NativeRequest, text: str) -> list[dict]:
        return [self.chunk(request, self.chunk_choice(text, None, first=request.deltas == 0), usage=None)]

    def stream_end(self, request: NativeRequest, result: Finished) -> list[dict]:
        reason = self.native_stop_reason(result.stop_reason)
        return [self.chunk(request, self.chunk_choice("", reason, first=request.deltas == 0),
                           usage=self.usage(result.input_tokens, result.output_tokens))]
