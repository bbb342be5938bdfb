"""The call: what a request asks the model for, in the neutral terms every operation and family share."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..catalog import Entry
from ..guardrails.request_path import Guard
from ..tools.model import ToolPlan
from .base import TextFamily


@dataclass
class Call:
    """What a request asks for, in terms every operation shares (used to match scripted responses and faults)."""

    operation: str
    model_id: str
    entry: Entry
    family: TextFamily
    messages: list[dict] = field(default_factory=list)  # chat messages: {"role", "content": str}
    prompt: str | None = None  # a raw prompt (native completion bodies) instead of messages
    tools: ToolPlan | None = None  # tools the turn may call (tools/turn.py runs such turns)
    guard: Guard | None = None  # the request's guardrail: checks the input before, the output after generation

    @property
    def last_user_text(self) -> str:
        if self.prompt is not None:
            return self.prompt
        users = [m["content"] for m in self.messages if m["role"] == "user"]
        return users[-1] if users else ""

    @property
    def turn_index(self) -> int:
        return sum(1 for m in self.messages if m["role"] == "user")
