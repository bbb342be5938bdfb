"""Anthropic Claude: the Messages body and the legacy Text Completions body (`\\n\\nHuman:` prompts)."""

from __future__ import annotations

import re
from dataclasses import replace

from ..catalog import base_model_id
from ..chat.conversation import EFFORTS
from ..chat.prompts import Prompt, converse_blocks_text, human_assistant_turns
from ..engine.types import (CONTEXT_EXCEEDED, END_TURN, MAX_TOKENS, STOP_SEQUENCE, Finished, SamplingParams, TextDelta,
                            ToolInputDelta, ToolUse, ToolUseStart)
from ..protocol.errors import validation
from ..protocol.ids import random_bytes
from ..tools.blocks import TEXT, Change, Closed, Delta
from ..tools.checks import check_tool_turns, check_unique, checked_tool, text_schema_at
from ..tools.model import ToolPlan, answered_calls
from . import schema as s
from .base import Knobs, NativeRequest, TextFamily

_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
HUMAN = "\n\nHuman:"


def bedrock_id(prefix: str) -> str:
    """Ids in Anthropic-on-Bedrock's form, e.g. `msg_bdrk_01Q6Z4xmUkMigo9K4qd1fshW`."""
    # One PRNG draw, no system call: this runs on every reply (the slight modulo bias is harmless).
    return prefix + "01" + "".join(_ALPHABET[b % len(_ALPHABET)] for b in random_bytes(22))


def anthropic_model_name(model_id: str) -> str:
    """`us.anthropic.claude-3-haiku-20240307-v1:0` -> `claude-3-haiku-20240307`, the name Claude reports."""
    name = base_model_id(model_id).split("/")[-1].removeprefix("anthropic.")
    return name.split("-v")[0] if "-v" in name else name


def _anthropic_block(block: dict) -> dict:
    """An Anthropic content block as the equivalent Converse block, so both APIs render prompts one way."""
    kind = block.get("type")
    if kind == "text":
        return {"text": block.get("text", "")}
    if kind in ("image", "document"):
        source = block.get("source") or {}
        fmt = str(source.get("media_type", "")).split("/")[-1] or "unknown"
        if source.get("type") == "text":
            return {"document": {"name": block.get("title", "document"), "format": "txt", "source": {"text": source.get("data", "")}}}
        inner = {"bytes": source["data"]} if source.get("type") == "base64" and "data" in source else {}
        if kind == "image":
            return {"image": {"format": fmt, "source": inner}}
        return {"document": {"name": block.get("title", "document"), "format": fmt, "source": inner}}
    if kind == "tool_use":
        return {"toolUse": {"toolUseId": block.get("id", ""), "name": block.get("name", ""), "input": block.get("input", {})}}
    if kind == "tool_result":
        content = block.get("content", [])
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        items = [_anthropic_block(item) for item in content if isinstance(item, dict)]
        status = "error" if block.get("is_error") else "success"
        return {"toolResult": {"toolUseId": block.get("tool_use_id", ""), "content": items, "status": status}}
    return {}  # thinking, redacted_thinking and unknown blocks are not part of the visible prompt


# Claude 3 and later answer only the Messages API; Claude 2 and Instant answer both.
_MESSAGES_ONLY = re.compile(r"claude-(?:[3-9]|opus|sonnet|haiku)")

_TEXT_BLOCK = s.Obj({"type": s.Str(), "text": s.Str(), "cache_control": s.AnyValue(), "citations": s.AnyValue()},
                    required=("type", "text"))
_BLOCK = s.Obj({"type": s.Str()}, required=("type",), closed=False)
_MESSAGE = s.Obj(
    {"role": s.Str(enum=("user", "assistant")), "content": s.OneOf("string", "array")},
    required=("role", "content"),
)


def _message_text(i: int, content: str | list, prefill: bool) -> str:
    """One message's content checked as Claude checks it, rendered as Converse renders the same blocks."""
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    for j, block in enumerate(blocks):
        is_text = isinstance(block, dict) and block.get("type") == "text"
        s.check_at(_TEXT_BLOCK if is_text else _BLOCK, block, ("messages", i, "content", j))
    if not prefill and (not blocks or any(b["type"] == "text" and not b["text"] for b in blocks)):
        if not blocks:
            raise validation("messages: all messages must have non-empty content except for the optional final assistant message")
        raise validation("messages: text content blocks must be non-empty")
    text = converse_blocks_text([_anthropic_block(b) for b in blocks])
    if prefill and text != text.rstrip():
        raise validation("messages: final assistant content cannot end with trailing whitespace")
    return text


class Anthropic(TextFamily):
    """The Messages API body (every Claude model)."""

    name = "anthropic"
    tool_choices = ("auto", "any", "tool")
    knobs = Knobs(max_tokens=("max_tokens",), temperature=("temperature",), top_p=("top_p",), top_k=("top_k",),
                  stop=("stop_sequences",))
    defaults = {"temperature": 1.0, "top_p": 0.999, "top_k": 0}
    ranges = {"temperature": (0, 1), "top_p": (0, 1), "top_k": (0, 500), "max_tokens": (1, None)}
    max_stop_sequences = 8191
    stop_reasons = {END_TURN: "end_turn", MAX_TOKENS: "max_tokens", STOP_SEQUENCE: "stop_sequence",
                    CONTEXT_EXCEEDED: CONTEXT_EXCEEDED}

    def build_schema(self) -> s.Spec:
        return s.Obj(
            {
                # Any version string: anthropic-sdk 2.x sends its API date instead of `bedrock-2023-05-31`.
                "anthropic_version": s.Str(),
                "anthropic_beta": s.Arr(s.Str()),
                "max_tokens": self.range_spec("max_tokens", integer=True),
                "system": s.OneOf("string", "array"),
                "messages": s.Arr(_MESSAGE),
                "temperature": self.range_spec("temperature"),
                "top_p": self.range_spec("top_p"),
                "top_k": self.range_spec("top_k", integer=True),
                "stop_sequences": s.Arr(s.Str(), max_items=self.max_stop_sequences),
                "tools": s.Arr(s.Obj({"name": s.Str()}, required=("name",), closed=False)),
                "tool_choice": s.Obj({"type": s.Str(enum=("auto", "any", "tool", "none"))}, required=("type",), closed=False),
                "thinking": s.Obj({"type": s.Str()}, required=("type",), closed=False),
                "metadata": s.AnyValue(),
                # Structured output (`format`, decoded under its JSON schema) and `effort` (accepted).
                "output_config": s.Obj({"format": s.Obj({"type": s.Str(enum=("json_schema",)), "schema": s.AnyValue()},
                                                        required=("type", "schema")),
                                        "effort": s.Str(enum=EFFORTS)}),
            },
            required=("anthropic_version", "max_tokens", "messages"),
        )

    def variant(self, body: dict, model_id: str) -> TextFamily:
        if "messages" in body or "prompt" not in body:
            return self
        name = anthropic_model_name(model_id)
        if _MESSAGES_ONLY.match(name):
            raise validation(f'"{name}" is not supported on this API. Please use the Messages API instead.')
        return ANTHROPIC_COMPLETIONS

    def prompt(self, body: dict) -> Prompt:
        chat: list[dict] = []
        system = body.get("system")
        if isinstance(system, list):
            system = "\n".join(b.get("text", "") for b in system if isinstance(b, dict) and b.get("type") == "text")
        if system:
            chat.append({"role": "system", "content": system})
        messages = body["messages"]
        if not messages:
            raise validation("messages: at least one message is required")
        for i, message in enumerate(messages):
            prefill = i == len(messages) - 1 and message["role"] == "assistant"
            text = _message_text(i, message["content"], prefill)
            if chat and chat[-1]["role"] == message["role"]:  # consecutive turns of one role are merged, as the API does
                chat[-1]["content"] += "\n\n" + text
            elif text or not prefill:
                chat.append({"role": message["role"], "content": text})
        return Prompt(messages=chat)

    def tool_plan(self, body: dict) -> ToolPlan | None:
        """`tools` and `tool_choice` checked as Claude checks them (custom tools: name, description, input_schema)."""
        history = [{"role": m["role"], "content": [{"text": m["content"]}] if isinstance(m["content"], str)
                    else [_anthropic_block(b) for b in m["content"] if isinstance(b, dict)]} for m in body["messages"]]
        offered = body.get("tools") or []
        answer_format = (body.get("output_config") or {}).get("format")
        text_schema = None
        if answer_format is not None:
            text_schema = text_schema_at(answer_format["schema"], "output_config.format.schema")
        if not offered:
            if any("toolUse" in b or "toolResult" in b for m in history for b in m["content"]):
                raise validation("Requests which include `tool_use` or `tool_result` blocks must define tools.")
            if text_schema is not None:
                return ToolPlan((), "none", text_schema=text_schema, text_schema_path="output_config.format.schema")
            return None
        tools = []
        for i, tool in enumerate(offered):
            if tool.get("type", "custom") != "custom":
                raise validation(f"tools.{i}: the emulator runs custom tools only; the {tool['type']} tool is not available.")
            if "input_schema" not in tool:
                raise validation(f"tools.{i}.custom.input_schema: Field required")
            tools.append(checked_tool(i, tool["name"], tool.get("description", ""), tool["input_schema"],
                                      f"tools.{i}.input_schema"))
        check_unique([t.name for t in tools])
        choice = body.get("tool_choice") or {"type": "auto"}
        forced = choice.get("name") if choice["type"] == "tool" else None
        if choice["type"] == "tool" and forced not in {t.name for t in tools}:
            raise validation(f"tool_choice.name: the tool {forced} is not one of the tools provided.")
        check_tool_turns(history)
        last = history[-1] if history and history[-1]["role"] == "user" else {"content": []}
        return ToolPlan(tuple(tools), choice["type"], forced, any("toolResult" in b for b in last["content"]),
                        text_schema=text_schema, text_schema_path="output_config.format.schema",
                        new_id=lambda: bedrock_id("toolu_bdrk_"),
                        answered=answered_calls(history))

    def native_response(self, result: Finished, model_id: str, request: NativeRequest | None = None) -> dict:
        content = [{"type": "text", "text": result.text}] if result.text or not result.tool_uses else []
        content += [{"type": "tool_use", "id": u.tool_use_id, "name": u.name, "input": u.input} for u in result.tool_uses]
        return {
            "id": bedrock_id("msg_bdrk_"),
            "type": "message",
            "role": "assistant",
            "model": anthropic_model_name(model_id),
            "content": content,
            "stop_reason": self.native_stop_reason(result.stop_reason),
            "stop_sequence": result.stop_sequence,
            "usage": {"input_tokens": result.input_tokens, "output_tokens": result.output_tokens},
        }

    def stream_start(self, request: NativeRequest) -> list[dict]:
        message = {
            "id": bedrock_id("msg_bdrk_"),
            "type": "message",
            "role": "assistant",
            "model": anthropic_model_name(request.model_id),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": request.input_tokens, "output_tokens": 1},
        }
        return [{"type": "message_start", "message": message}]  # content blocks open as their output arrives

    @staticmethod
    def _chunks(changes: list[Change]) -> list[dict]:
        """The reply's block changes as Messages stream events (every block, text included, opens explicitly)."""
        out = []
        for change in changes:
            if isinstance(change, Delta):
                if change.kind == TEXT:
                    delta = {"type": "text_delta", "text": change.text}
                else:
                    delta = {"type": "input_json_delta", "partial_json": change.text}
                out.append({"type": "content_block_delta", "index": change.index, "delta": delta})
            elif isinstance(change, Closed):
                out.append({"type": "content_block_stop", "index": change.index})
            else:
                block = {"type": "text", "text": ""} if change.kind == TEXT else \
                    {"type": "tool_use", "id": change.tool_use_id, "name": change.name, "input": {}}
                out.append({"type": "content_block_start", "index": change.index, "content_block": block})
        return out

    def stream_delta(self, request: NativeRequest, text: str) -> list[dict]:
        return self._chunks(request.blocks.on(TextDelta(text)))

    def stream_tool(self, request: NativeRequest, event: ToolUseStart | ToolInputDelta | ToolUse) -> list[dict]:
        return self._chunks(request.blocks.on(event))

    def stream_end(self, request: NativeRequest, result: Finished) -> list[dict]:
        return [
            *self._chunks(request.blocks.finish(at_least_one=True)),  # nothing generated: one empty text block
            {
                "type": "message_delta",
                "delta": {"stop_reason": self.native_stop_reason(result.stop_reason), "stop_sequence": result.stop_sequence},
                "usage": {"output_tokens": result.output_tokens},
            },
            {"type": "message_stop"},
        ]


class AnthropicCompletions(TextFamily):
    """The legacy Text Completions body of Claude 2 and Claude Instant."""

    name = "anthropic-completions"
    knobs = Knobs(max_tokens=("max_tokens_to_sample",), temperature=("temperature",), top_p=("top_p",),
                  top_k=("top_k",), stop=("stop_sequences",))
    defaults = {"temperature": 1.0, "top_p": 1.0, "top_k": 250}
    ranges = {"temperature": (0, 1), "top_p": (0, 1), "top_k": (0, 500), "max_tokens": (1, 4096)}
    # Claude stops at the next human turn whatever the request says; that is its natural end.
    stop_reasons = {END_TURN: "stop_sequence", MAX_TOKENS: "max_tokens", STOP_SEQUENCE: "stop_sequence",
                    CONTEXT_EXCEEDED: "max_tokens"}

    def build_schema(self) -> s.Spec:
        return s.Obj(
            {
                "prompt": s.Str(),
                "max_tokens_to_sample": self.range_spec("max_tokens", integer=True),
                "temperature": self.range_spec("temperature"),
                "top_p": self.range_spec("top_p"),
                "top_k": self.range_spec("top_k", integer=True),
                "stop_sequences": s.Arr(s.Str()),
                "anthropic_version": s.Str(),
            },
            required=("prompt", "max_tokens_to_sample"),
        )

    def prompt(self, body: dict) -> Prompt:
        turns = human_assistant_turns(body["prompt"])
        if turns is None or not any(t["role"] == "user" for t in turns):
            raise validation('Invalid prompt: prompt must start with "\\n\\nHuman:" turn after an optional system prompt')
        if turns[-1]["role"] != "assistant":
            raise validation('Invalid prompt: prompt must end with "\\n\\nAssistant:" turn')
        if not turns[-1]["content"].strip():
            turns.pop()
        return Prompt(messages=turns)

    def sampling(self, body: dict, entry) -> SamplingParams:
        params = super().sampling(body, entry)
        return replace(params, stop_sequences=(*params.stop_sequences, HUMAN))

    def _stop(self, result: Finished) -> str | None:
        return HUMAN if result.stop_reason == END_TURN else result.stop_sequence

    def native_response(self, result: Finished, model_id: str, request: NativeRequest | None = None) -> dict:
        return {
            "type": "completion",
            "completion": result.text,
            "stop_reason": self.native_stop_reason(result.stop_reason),
            "stop": self._stop(result),
        }

    def stream_delta(self, request: NativeRequest, text: str) -> list[dict]:
        return [{"completion": text, "stop_reason": None, "stop": None}]

    def stream_end(self, request: NativeRequest, result: Finished) -> list[dict]:
        return [{"completion": "", "stop_reason": self.native_stop_reason(result.stop_reason), "stop": self._stop(result)}]


ANTHROPIC_COMPLETIONS = AnthropicCompletions()
