"""The reply's content blocks, built from generation events: one state machine (a block opens, takes deltas,
closes) whose changes each API's encoder writes in its own form (Converse and Nova: `converse_events`; Claude's
Messages stream: families/anthropic.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..engine.types import Event, TextDelta, ToolInputDelta, ToolUse, ToolUseStart

TEXT = "text"
TOOL = "tool"


@dataclass(frozen=True, slots=True)
class Opened:
    index: int
    kind: str  # TEXT | TOOL
    tool_use_id: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class Delta:
    index: int
    kind: str  # TEXT: a piece of the answer; TOOL: a fragment of the tool input's JSON
    text: str


@dataclass(frozen=True, slots=True)
class Closed:
    index: int


Change = Opened | Delta | Closed


class ReplyBlocks:
    """The reply's content blocks. `on(event)` returns the changes a generation event makes (blocks numbered
    from 0 in the order they open); `content` is the reply's content in Converse's form."""

    def __init__(self) -> None:
        self.content: list[dict] = []
        self._open: str | None = None  # TEXT | TOOL

    @property
    def _index(self) -> int:
        return len(self.content) - 1

    def _close(self) -> list[Change]:
        if self._open is None:
            return []
        self._open = None
        return [Closed(self._index)]

    def _open_text(self) -> list[Change]:
        out = self._close()
        self.content.append({"text": ""})
        self._open = TEXT
        return [*out, Opened(self._index, TEXT)]

    def _open_tool(self, use_id: str, name: str) -> list[Change]:
        out = self._close()
        self.content.append({"toolUse": {"toolUseId": use_id, "name": name, "input": {}}})
        self._open = TOOL
        return [*out, Opened(self._index, TOOL, use_id, name)]

    def on(self, event: Event) -> list[Change]:
        if isinstance(event, TextDelta):
            out = [] if self._open == TEXT else self._open_text()
            self.content[-1]["text"] += event.text
            out.append(Delta(self._index, TEXT, event.text))
            return out
        if isinstance(event, ToolUseStart):
            return self._open_tool(event.tool_use_id, event.name)
        if isinstance(event, ToolInputDelta):
            return [Delta(self._index, TOOL, event.json)]
        if isinstance(event, ToolUse):
            current = self.content[-1].get("toolUse") if self._open == TOOL else None
            out = []
            if current is None or current["toolUseId"] != event.tool_use_id:  # a complete call on its own (scripted)
                out = self._open_tool(event.tool_use_id, event.name)
                out.append(Delta(self._index, TOOL, json.dumps(event.input, ensure_ascii=False)))
            self.content[-1]["toolUse"]["input"] = event.input
            return [*out, *self._close()]
        return []

    def finish(self, at_least_one: bool = False) -> list[Change]:
        """Close the last block. An empty generation has none (Converse answers it with `content: []`);
        `at_least_one`: it still gets one empty text block (Claude's and Nova's streams)."""
        if at_least_one and not self.content:
            return [*self._open_text(), *self._close()]
        return self._close()


def converse_events(changes: list[Change]) -> list[tuple[str, dict]]:
    """Changes as ConverseStream events (Nova's native stream chunks are the same): a text block has no
    contentBlockStart, a toolUse block does."""
    out: list[tuple[str, dict]] = []
    for change in changes:
        if isinstance(change, Delta):
            delta = {"text": change.text} if change.kind == TEXT else {"toolUse": {"input": change.text}}
            out.append(("contentBlockDelta", {"contentBlockIndex": change.index, "delta": delta}))
        elif isinstance(change, Closed):
            out.append(("contentBlockStop", {"contentBlockIndex": change.index}))
        elif change.kind == TOOL:
            start = {"toolUse": {"toolUseId": change.tool_use_id, "name": change.name}}
            out.append(("contentBlockStart", {"contentBlockIndex": change.index, "start": start}))
    return out
