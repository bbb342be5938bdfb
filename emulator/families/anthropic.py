"""Anthropic Claude: the Messages body (and its legacy Text Completions form)."""

from __future__ import annotations

import secrets

from ..engine.types import Finished
from .base import Knobs, TextFamily

_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def bedrock_id(prefix: str) -> str:
    """Ids in Anthropic-on-Bedrock's form, e.g. `msg_bdrk_01Q6Z4xmUkMigo9K4qd1fshW`."""
    return prefix + "01" + "".join(secrets.choice(_ALPHABET) for _ in range(22))


def anthropic_model_name(model_id: str) -> str:
    """`us.anthropic.claude-3-haiku-20240307-v1:0` -> `claude-3-haiku-20240307`, the name Claude reports."""
    from ..catalog import base_model_id

    name = base_model_id(model_id).split("/")[-1].removeprefix("anthropic.")
    return name.split("-v")[0] if "-v" in name else name


class Anthropic(TextFamily):
    name = "anthropic"
    knobs = Knobs(max_tokens=("max_tokens",), temperature=("temperature",), top_p=("top_p",), top_k=("top_k",),
                  stop=("stop_sequences",))
    defaults = {"temperature": 1.0, "top_p": 0.999, "top_k": 0}
    ranges = {"temperature": (0.0, 1.0), "top_p": (0.0, 1.0), "top_k": (0, 500)}
    max_stop_sequences = 8191

    def native_response(self, result: Finished, model_id: str) -> dict:
        return {
            "id": bedrock_id("msg_bdrk_"),
            "type": "message",
            "role": "assistant",
            "model": anthropic_model_name(model_id),
            "content": [{"type": "text", "text": result.text}],
            "stop_reason": self.native_stop_reason(result.stop_reason),
            "stop_sequence": result.stop_sequence,
            "usage": {"input_tokens": result.input_tokens, "output_tokens": result.output_tokens},
        }
