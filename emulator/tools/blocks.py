"""The reply's content blocks, built from generation events."""

from __future__ import annotations

import json

from ..engine.types import Event, TextDelta, ToolInputDelta, ToolUse, ToolUseStart


class ReplyBlocks:
    """The reply's content blocks, built from generation events.

    `on(event)` returns the ConverseStream events the generation event becomes, numbered by content block
    (a text block gets no contentBlockStart; a toolUse block does); `content` is the non-streamed message content.
    """

    def __init__(self) -> None:
        self.content: list[dict] = []
        self._open: str | None = None  # "text" | "tool"
        self._input: list[str] = []

    @property
    def _index(self) -> int:
        return len(self.content) - 1

    def _close(self) -> list[tuple[str, dict]]:
        if self._open is None:
            return []
        self._open = None
        return [("contentBlockStop", {"contentBlockIndex": self._index})]

    def _start_tool(self, use_id: str, name: str) -> list[tuple[str, dict]]:
        out = self._close()
        self.content.append({"toolUse": {"toolUseId": use_id, "name": name, "input": {}}})
        self._open, self._input = "tool", []
        start = {"toolUse": {"toolUseId": use_id, "name": name}}
        return [*out, ("contentBlockStart", {"contentBlockIndex": self._index, "start": start})]

    def _input_delta(self, fragment: str) -> tuple[str, dict]:
        self._input.append(fragment)
        return ("contentBlockDelta", {"contentBlockIndex": self._index, "delta": {"toolUse": {"input": fragment}}})

    def on(self, event: Event) -> list[tuple[str, dict]]:
        if isinstance(event, TextDelta):
            out = []
            if self._open != "text":
                out = self._close()
                self.content.append({"text": ""})
                self._open = "text"
            self.content[-1]["text"] += event.text
            return [*out, ("contentBlockDelta", {"contentBlockIndex": self._index, "delta": {"text": event.text}})]
        if isinstance(event, ToolUseStart):
            return self._start_tool(event.tool_use_id, event.name)
        if isinstance(event, ToolInputDelta):
            return [self._input_delta(event.json)]
        if isinstance(event, ToolUse):
            current = self.content[-1].get("toolUse") if self._open == "tool" else None
            out = []
            if current is None or current["toolUseId"] != event.tool_use_id:  # a complete call on its own (scripted)
                out = self._start_tool(event.tool_use_id, event.name)
                out.append(self._input_delta(json.dumps(event.input, ensure_ascii=False)))
            self.content[-1]["toolUse"]["input"] = event.input
            return [*out, *self._close()]
        return []

    def finish(self) -> list[tuple[str, dict]]:
        """Close the last block (an empty generation has none: Bedrock answers it with `content: []`)."""
        return self._close()
