"""Cohere's text families: Command (legacy `prompt` body) and Command R / R+ (`message` + `chat_history`)."""

from __future__ import annotations

import uuid

from ..chat.prompts import Prompt, instruction
from ..engine.types import (CONTEXT_EXCEEDED, END_TURN, MAX_TOKENS, STOP_SEQUENCE, TOOL_USE, Finished, ToolInputDelta,
                            ToolUse, ToolUseStart)
from ..protocol.errors import malformed_native
from ..tools.checks import check_unique, checked_tool
from ..tools.markup import render_call, render_result
from ..tools.model import ToolPlan
from . import schema as s
from .base import Knobs, NativeRequest, TextFamily

_REASONS = {END_TURN: "COMPLETE", STOP_SEQUENCE: "COMPLETE", MAX_TOKENS: "MAX_TOKENS", CONTEXT_EXCEEDED: "MAX_TOKENS",
            TOOL_USE: "COMPLETE"}
# Command R's parameter types -> JSON Schema types (an unknown type leaves the value unconstrained).
_PARAM_TYPES = {"str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
                "number": "number", "bool": "boolean", "boolean": "boolean", "list": "array", "dict": "object",
                "object": "object"}


def _tool_schema(definitions: dict) -> dict:
    """Command R's `parameter_definitions` as the JSON schema the call's parameters are decoded under."""
    properties = {}
    for name, definition in definitions.items():
        kind = _PARAM_TYPES.get(str(definition.get("type", "")).lower())
        properties[name] = {"description": definition.get("description", ""), **({"type": kind} if kind else {})}
    return {"type": "object", "properties": properties,
            "required": [name for name, definition in definitions.items() if definition.get("required")]}


def _fields(records: list[dict]) -> str:
    """Documents or tool outputs as `key: value` lines, one paragraph per record."""
    return "\n\n".join("\n".join(f"{key}: {value}" for key, value in record.items()) for record in records)


def _calls(uses: tuple[ToolUse, ...]) -> list[dict]:
    return [{"name": u.name, "parameters": u.input} for u in uses]


def _derived_id(request: NativeRequest | None, salt: str) -> str:
    """A stable UUID per request (the same id in every chunk of one stream)."""
    seed = request.request_id if request else "converse"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}/{salt}"))


class CohereCommand(TextFamily):
    completes_text = True
    name = "cohere-command"
    knobs = Knobs(max_tokens=("max_tokens",), temperature=("temperature",), top_p=("p",), top_k=("k",),
                  stop=("stop_sequences",))
    defaults = {"max_tokens": 20, "temperature": 0.9, "top_p": 0.75, "top_k": 0}
    ranges = {"temperature": (0, 5), "top_p": (0, 1), "top_k": (0, 500), "max_tokens": (1, 4096), "n": (1, 5)}
    max_stop_sequences = 4
    stop_reasons = _REASONS

    def build_schema(self) -> s.Spec:
        return s.Obj(
            {
                "prompt": s.Str(),
                "max_tokens": self.range_spec("max_tokens", integer=True),
                "temperature": self.range_spec("temperature"),
                "p": self.range_spec("top_p"),
                "k": self.range_spec("top_k", integer=True),
                "stop_sequences": s.Arr(s.Str(), max_items=self.max_stop_sequences),
                "return_likelihoods": s.Str(enum=("GENERATION", "ALL", "NONE")),
                "stream": s.Bool(),
                "num_generations": self.range_spec("n", integer=True),
                "logit_bias": s.Obj(closed=False),
                "truncate": s.Str(enum=("NONE", "START", "END")),
            },
            required=("prompt",),
        )

    def prompt(self, body: dict) -> Prompt:
        return Prompt(messages=instruction(body["prompt"]))

    def choices(self, body: dict) -> int:
        return int(body.get("num_generations", 1))

    def native_responses(self, results: list[Finished], model_id: str, request: NativeRequest | None = None) -> dict:
        # The top-level id is the request id; likelihoods are not computed by the local engine.
        return {
            "id": request.request_id if request else _derived_id(request, "id"),
            "generations": [
                {"id": _derived_id(request, f"generation/{i}"), "text": r.text,
                 "finish_reason": self.native_stop_reason(r.stop_reason)}
                for i, r in enumerate(results)
            ],
            "prompt": request.body.get("prompt", "") if request else "",
        }

    def native_response(self, result: Finished, model_id: str, request: NativeRequest | None = None) -> dict:
        return self.native_responses([result], model_id, request)

    def stream_delta(self, request: NativeRequest, text: str) -> list[dict]:
        return [{"text": text, "is_finished": False}]

    def stream_end(self, request: NativeRequest, result: Finished) -> list[dict]:
        return [{"is_finished": True, "finish_reason": self.native_stop_reason(result.stop_reason)}]


_HISTORY_ROLES = {"USER": "user", "CHATBOT": "assistant", "SYSTEM": "system", "TOOL": "user"}


class CohereCommandR(TextFamily):
    name = "cohere-command-r"
    tool_choices = ("auto",)
    knobs = Knobs(max_tokens=("max_tokens",), temperature=("temperature",), top_p=("p",), top_k=("k",),
                  stop=("stop_sequences",), seed=("seed",))
    defaults = {"temperature": 0.3, "top_p": 0.75, "top_k": 0}
    ranges = {"temperature": (0, 1), "top_p": (0.01, 0.99), "top_k": (0, 500), "max_tokens": (1, 4000)}
    max_stop_sequences = 5
    stop_reasons = _REASONS

    def build_schema(self) -> s.Spec:
        turn = s.Obj({"role": s.Str(enum=tuple(_HISTORY_ROLES)), "message": s.Str()}, required=("role",), closed=False)
        return s.Obj(
            {
                "message": s.Str(),
                "chat_history": s.Arr(turn),
                "documents": s.Arr(s.Obj(closed=False)),
                "search_queries_only": s.Bool(),
                "preamble": s.Str(),
                "max_tokens": self.range_spec("max_tokens", integer=True),
                "temperature": self.range_spec("temperature"),
                "p": self.range_spec("top_p"),
                "k": self.range_spec("top_k", integer=True),
                "prompt_truncation": s.Str(enum=("OFF", "AUTO_PRESERVE_ORDER")),
                "frequency_penalty": s.Num(0, 1),
                "presence_penalty": s.Num(0, 1),
                "seed": s.Int(),
                "return_prompt": s.Bool(),
                "tools": s.Arr(s.Obj(closed=False)),
                "tool_results": s.Arr(s.Obj(closed=False)),
                "stop_sequences": s.Arr(s.Str(), max_items=self.max_stop_sequences),
                "raw_prompting": s.Bool(),
            },
            required=("message",),
        )

    def prompt(self, body: dict) -> Prompt:
        chat: list[dict] = []
        if body.get("preamble"):
            chat.append({"role": "system", "content": body["preamble"]})
        for turn in body.get("chat_history") or []:
            chat.append({"role": _HISTORY_ROLES[turn["role"]], "content": turn.get("message", "")})
        message = body["message"]
        documents = body.get("documents") or []
        if documents:
            rendered = _fields(documents)
            message = f"{message}\n\n[documents]\n{rendered}"
        for result in body.get("tool_results") or []:  # the calls answered in this turn, then their outputs
            tool_call = result.get("call") or {}
            chat.append({"role": "assistant",
                         "content": render_call(tool_call.get("name", ""), tool_call.get("parameters", {}))})
            chat.append({"role": "user", "content": render_result(_fields(result.get("outputs") or []))})
        if message or not body.get("tool_results"):
            chat.append({"role": "user", "content": message})
        return Prompt(messages=chat)

    def tool_plan(self, body: dict) -> ToolPlan | None:
        """Command R decides itself whether to call one of `tools` (there is no tool choice)."""
        offered = body.get("tools") or []
        if not offered:
            return None
        tools = []
        for i, tool in enumerate(offered):
            if not isinstance(tool.get("name"), str):
                raise malformed_native(f"#/tools/{i}: required key [name] not found")
            tools.append(checked_tool(i, tool["name"], tool.get("description", ""),
                                      _tool_schema(tool.get("parameter_definitions") or {}),
                                      f"tools.{i}.parameter_definitions"))
        check_unique([t.name for t in tools])
        return ToolPlan(tuple(tools), "auto", after_results=bool(body.get("tool_results")))

    def native_response(self, result: Finished, model_id: str, request: NativeRequest | None = None) -> dict:
        body = request.body if request else {}
        history = [*(body.get("chat_history") or []), {"role": "USER", "message": body.get("message", "")},
                   {"role": "CHATBOT", "message": result.text}]
        tokens = {"input_tokens": result.input_tokens, "output_tokens": result.output_tokens}
        return {
            "response_id": _derived_id(request, "response"),
            "text": result.text,
            "generation_id": _derived_id(request, "generation"),
            "chat_history": history,
            "finish_reason": self.native_stop_reason(result.stop_reason),
            "meta": {"api_version": {"version": "1"}, "billed_units": tokens, "tokens": tokens},
            **({"tool_calls": _calls(result.tool_uses)} if result.tool_uses else {}),
        }

    def stream_start(self, request: NativeRequest) -> list[dict]:
        return [{"is_finished": False, "event_type": "stream-start", "generation_id": _derived_id(request, "generation")}]

    def stream_delta(self, request: NativeRequest, text: str) -> list[dict]:
        return [{"is_finished": False, "event_type": "text-generation", "text": text}]

    def stream_tool(self, request: NativeRequest, event: ToolUseStart | ToolInputDelta | ToolUse) -> list[dict]:
        """A complete call goes out in one `tool-calls-generation` event."""
        if not isinstance(event, ToolUse):
            return []
        return [{"is_finished": False, "event_type": "tool-calls-generation", "text": "", "tool_calls": _calls((event,))}]

    def stream_end(self, request: NativeRequest, result: Finished) -> list[dict]:
        return [{
            "is_finished": True,
            "event_type": "stream-end",
            "finish_reason": self.native_stop_reason(result.stop_reason),
            "response": self.native_response(result, request.model_id, request),
        }]
