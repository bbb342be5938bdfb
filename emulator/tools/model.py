"""The tool model every API shares: the tools a turn may call, how it must choose, and the calls it has
already had answered."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field


def tool_use_id() -> str:
    """A toolUseId in Bedrock's Converse form: `tooluse_` and 22 url-safe characters."""
    return "tooluse_" + secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    schema: dict  # the input's JSON schema, as the caller sent it
    schema_path: str = ""  # where that schema sits in the request, for error messages


@dataclass(frozen=True)
class ToolPlan:
    """The tools a turn may call and how it must choose (already validated by the API layer)."""

    tools: tuple[Tool, ...]
    choice: str = "auto"  # auto | any | tool | none
    forced: str | None = None  # the tool that `tool` names
    after_results: bool = False  # the latest user turn carries tool results
    text_schema: dict | None = None  # a JSON schema the text answer must follow (Converse outputConfig)
    new_id: Callable[[], str] = field(default=tool_use_id, compare=False)
    # Where the text schema sits in the request, for error messages.
    text_schema_path: str = "outputConfig.textFormat.structure.jsonSchema.schema"
    # Calls whose results are already in the conversation: (tool name, input as canonical JSON).
    answered: frozenset[tuple[str, str]] = frozenset()

    def tool(self, name: str) -> Tool:
        return next(t for t in self.tools if t.name == name)

    def callable_tools(self) -> tuple[Tool, ...]:
        if self.choice == "tool":
            return (self.tool(self.forced),)
        if self.choice == "any":
            # An agent loop ends: a tool whose result the conversation already has is not called while another
            # tool is still unanswered (e.g. pydantic-ai's `final_result` after its function tool).
            done = {name for name, _ in self.answered}
            fresh = tuple(t for t in self.tools if t.name not in done)
            return fresh or self.tools
        return self.tools if self.choice != "none" else ()

    def is_answered(self, name: str, arguments: object) -> bool:
        return (name, canonical_input(arguments)) in self.answered


def canonical_input(arguments: object) -> str:
    return json.dumps(arguments, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def answered_calls(messages: list[dict]) -> frozenset[tuple[str, str]]:
    """The (name, canonical input) of every tool call in Converse-shaped `messages` that has a result."""
    calls: dict[str, tuple[str, str]] = {}
    answered = set()
    for message in messages:
        for block in message.get("content") or []:
            if not isinstance(block, dict):
                continue
            use = block.get("toolUse")
            if isinstance(use, dict) and isinstance(use.get("name"), str):
                calls[str(use.get("toolUseId"))] = (use["name"], canonical_input(use.get("input", {})))
            result = block.get("toolResult")
            if isinstance(result, dict) and str(result.get("toolUseId")) in calls:
                answered.add(calls[str(result.get("toolUseId"))])
    return frozenset(answered)
