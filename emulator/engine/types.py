"""The common generation request and result every API and family adapter speaks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

# Stop reasons in Converse's vocabulary; family adapters translate them to their native names.
END_TURN = "end_turn"
MAX_TOKENS = "max_tokens"
STOP_SEQUENCE = "stop_sequence"
TOOL_USE = "tool_use"
CONTEXT_EXCEEDED = "model_context_window_exceeded"  # the prompt and the output filled the context window


MIN_TEMPERATURE = 1e-4  # see SamplingParams.greedy


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 disables top-k filtering
    stop_sequences: tuple[str, ...] = ()
    seed: int | None = None
    # The request set no token limit: a degenerate loop ends the turn with end_turn (engine/loopguard.py), and
    # `fallback_budget` says max_new_tokens is the emulator's fallback budget, whose end is also an end_turn.
    natural_end: bool = False
    fallback_budget: bool = False
    # A completion that must say something: end-of-text is not chosen before the first non-blank text.
    require_text: bool = False

    @property
    def greedy(self) -> bool:
        # Below MIN_TEMPERATURE, logits / temperature overflows float32 to inf (NaN probabilities in torch);
        # sampling that cold is greedy in effect, so it is done greedily. NaN never gets here (JSON refuses it).
        return not self.temperature >= MIN_TEMPERATURE


class TokenConstraint(Protocol):
    """Constrains decoding (e.g. to a JSON schema). One instance per sequence; the scheduler calls it each step."""

    def mask_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Return `logits` with every token the constraint forbids next set to -inf."""

    def advance(self, token_id: int) -> None:
        """Record the token that was chosen."""

    def is_complete(self) -> bool:
        """True once the constrained output is whole; generation then ends with `end_turn`."""


@dataclass(frozen=True)
class GenerationRequest:
    prompt_ids: tuple[int, ...]
    params: SamplingParams
    constraint: TokenConstraint | None = None


@dataclass(frozen=True)
class TextDelta:
    """A piece of output text that can no longer turn into (part of) a stop sequence."""

    text: str


@dataclass(frozen=True)
class ToolUseStart:
    """A tool call begins; its input follows as `ToolInputDelta` JSON fragments, then the complete `ToolUse`."""

    tool_use_id: str
    name: str


@dataclass(frozen=True)
class ToolInputDelta:
    """A fragment of a tool call's input JSON text, as it is generated."""

    json: str


@dataclass(frozen=True)
class ToolUse:
    """A complete tool call. Alone (e.g. scripted) or closing the `ToolUseStart` with the same id."""

    tool_use_id: str
    name: str
    input: dict


@dataclass(frozen=True)
class Finished:
    stop_reason: str
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int
    text: str
    # The turn's tool calls, for replies built from the result alone (the API layer fills it from ToolUse events).
    tool_uses: tuple[ToolUse, ...] = ()


@dataclass(frozen=True)
class Failed:
    error: BaseException


Event = TextDelta | ToolUseStart | ToolInputDelta | ToolUse | Finished | Failed
