"""Meta Llama: a prompt already in Llama's chat markup (or plain text it continues), `max_gen_len`."""

from __future__ import annotations

from ..chat.prompts import Prompt, completion_prompt
from ..engine.types import CONTEXT_EXCEEDED, END_TURN, MAX_TOKENS, STOP_SEQUENCE, Finished
from . import schema as s
from .base import Knobs, NativeRequest, TextFamily


class Llama(TextFamily):
    completes_text = True
    name = "llama"
    tool_choices = ("auto",)  # Llama 3.1 and later, where tool use began
    # Llama on Bedrock has no stop-sequence and no top_k control.
    knobs = Knobs(max_tokens=("max_gen_len",), temperature=("temperature",), top_p=("top_p",), top_k=None, stop=None)
    defaults = {"max_tokens": 512, "temperature": 0.5, "top_p": 0.9}
    ranges = {"temperature": (0, 1), "top_p": (0, 1), "max_tokens": (1, 2048)}
    stop_reasons = {END_TURN: "stop", STOP_SEQUENCE: "stop", MAX_TOKENS: "length", CONTEXT_EXCEEDED: "length"}

    def build_schema(self) -> s.Spec:
        return s.Obj(
            {
                "prompt": s.Str(),
                "max_gen_len": self.range_spec("max_tokens", integer=True),
                "temperature": self.range_spec("temperature"),
                "top_p": self.range_spec("top_p"),
                "images": s.Arr(s.Str()),
            },
            required=("prompt",),
        )

    def prompt(self, body: dict) -> Prompt:
        return completion_prompt(body["prompt"])

    def native_response(self, result: Finished, model_id: str, request: NativeRequest | None = None) -> dict:
        return {
            "generation": result.text,
            "prompt_token_count": result.input_tokens,
            "generation_token_count": result.output_tokens,
            "stop_reason": self.native_stop_reason(result.stop_reason),
        }

    def stream_delta(self, request: NativeRequest, text: str) -> list[dict]:
        # The running count is of chunks sent; the last chunk carries the exact total.
        return [{
            "generation": text,
            "prompt_token_count": request.input_tokens if request.deltas == 0 else None,
            "generation_token_count": request.deltas + 1,
            "stop_reason": None,
        }]

    def stream_end(self, request: NativeRequest, result: Finished) -> list[dict]:
        return [{
            "generation": "",
            "prompt_token_count": request.input_tokens if request.deltas == 0 else None,
            "generation_token_count": result.output_tokens,
            "stop_reason": self.native_stop_reason(result.stop_reason),
        }]
