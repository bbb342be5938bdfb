"""OpenAI-style chat bodies: gpt-oss (and the base for AI21 Jamba and Mistral's chat form)."""

from __future__ import annotations

import json
import secrets

from ..catalog import base_model_id
from ..chat.prompts import Prompt, openai_messages
from ..engine.types import (CONTEXT_EXCEEDED, END_TURN, MAX_TOKENS, STOP_SEQUENCE, TOOL_USE, Finished, ToolInputDelta,
                            ToolUse, ToolUseStart)
from ..protocol.errors import validation
from ..tools.checks import check_unique, checked_tool
from ..tools.model import ToolPlan, answered_calls
from . import schema as s
from .base import Knobs, NativeRequest, TextFamily

_ROLES = ("system", "developer", "user", "assistant", "tool")
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHOICES = {"auto": "auto", "none": "none", "required": "any", "any": "any"}  # `any` is Mistral's `required`


def _converse_shaped(messages: list) -> list[dict]:
    """OpenAI-style assistant `tool_calls` and `tool` results as Converse toolUse / toolResult blocks."""
    blocks = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        for tool_call in message.get("tool_calls") or []:
            function = (tool_call.get("function") or {}) if isinstance(tool_call, dict) else {}
            try:
                arguments = json.loads(function.get("arguments") or "{}")
            except (TypeError, ValueError):
                arguments = function.get("arguments")
            blocks.append({"toolUse": {"toolUseId": tool_call.get("id"), "name": function.get("name"), "input": arguments}})
        if message.get("role") == "tool":
            blocks.append({"toolResult": {"toolUseId": message.get("tool_call_id")}})
    return [{"content": blocks}]


class OpenAIChat(TextFamily):
    """`openai.gpt-oss-*`: an OpenAI *Create chat completion* request and a `chat.completion` reply."""

    name = "openai"
    tool_choices = ("auto",)
    knobs = Knobs(max_tokens=("max_completion_tokens",), temperature=("temperature",), top_p=("top_p",), top_k=None,
                  stop=("stop",), seed=("seed",))
    defaults = {"temperature": 1.0, "top_p": 1.0}
    ranges = {"temperature": (0, 2), "top_p": (0, 1), "max_tokens": (1, None), "n": (1, 128)}
    max_stop_sequences = 4
    stop_reasons = {END_TURN: "stop", STOP_SEQUENCE: "stop", MAX_TOKENS: "length", CONTEXT_EXCEEDED: "length",
                    TOOL_USE: "tool_calls"}
    roles = _ROLES
    # Members accepted and passed over (the local model has no use for them).
    extra_members = ("frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "user", "tools",
                     "tool_choice", "response_format", "reasoning_effort", "stream_options", "parallel_tool_calls",
                     "logit_bias", "metadata", "store", "service_tier", "include_reasoning")

    def build_schema(self) -> s.Spec:
        message = s.Obj({"role": s.Str(enum=self.roles)}, required=("role",), closed=False)
        members = {
            "messages": s.Arr(message, min_items=1),
            "max_completion_tokens": self.range_spec("max_tokens", integer=True),
            "max_tokens": self.range_spec("max_tokens", integer=True),
            "temperature": self.range_spec("temperature"),
            "top_p": self.range_spec("top_p"),
            "stop": s.OneOf("string", "array"),
            "n": self.range_spec("n", integer=True),
            "seed": s.Int(),
            "stream": s.Bool(),
            "model": s.Str(),
            **{key: s.AnyValue() for key in self.extra_members},
        }
        return s.Obj(members, required=("messages",))

    def canonical(self, body: dict) -> dict:
        body = dict(body)
        if "max_tokens" in body and self.knobs.max_tokens == ("max_completion_tokens",):
            body.setdefault("max_completion_tokens", body.pop("max_tokens"))
        if isinstance(body.get("stop"), str):
            body["stop"] = [body["stop"]]
        return body

    def check_invocation(self, body: dict, model_id: str, streaming: bool) -> None:
        # `stream` must agree with the operation, and `model` with the URL; leaving either out fills it in.
        if "stream" in body and body["stream"] is not streaming:
            operation = "InvokeModelWithResponseStream" if streaming else "InvokeModel"
            raise validation(f"The stream parameter must be {str(streaming).lower()} for {operation}.")
        if "model" in body and body["model"] not in (model_id, base_model_id(model_id)):
            raise validation(f"The model parameter {body['model']} does not match the model ID {model_id} in the request path.")

    def choices(self, body: dict) -> int:
        return int(body.get("n", 1))

    def prompt(self, body: dict) -> Prompt:
        return Prompt(messages=openai_messages(body["messages"]))

    # --- tools -------------------------------------------------------------------------------------------------
    def tool_call_id(self) -> str:
        return "call_" + "".join(secrets.choice(_ALNUM) for _ in range(24))

    def tool_plan(self, body: dict) -> ToolPlan | None:
        """`tools` (`{"type": "function", "function": {name, description, parameters}}`) and `tool_choice`."""
        offered = body.get("tools") or []
        if not offered:
            return None
        tools = []
        for i, tool in enumerate(offered):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(function, dict) or tool.get("type", "function") != "function" or "name" not in function:
                raise validation(f"tools.{i}: a tool is {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}.")
            schema = function.get("parameters", {"type": "object", "properties": {}})
            tools.append(checked_tool(i, function["name"], function.get("description", ""), schema,
                                      f"tools.{i}.function.parameters"))
        check_unique([t.name for t in tools])
        choice = body.get("tool_choice", "auto")
        forced = None
        if isinstance(choice, dict):
            forced = (choice.get("function") or {}).get("name")
            if forced not in {t.name for t in tools}:
                raise validation(f"tool_choice: the function {forced} is not one of the tools provided.")
            kind = "tool"
        elif choice in _CHOICES:
            kind = _CHOICES[choice]
        else:
            raise validation(f"tool_choice: {choice!r} is not one of {', '.join(_CHOICES)} or a named function.")
        return ToolPlan(tuple(tools), kind, forced, body["messages"][-1].get("role") == "tool",
                        new_id=self.tool_call_id,
                        answered=answered_calls(_converse_shaped(body["messages"])))

    @staticmethod
    def tool_calls(uses: tuple[ToolUse, ...]) -> list[dict] | None:
        return [{"id": u.tool_use_id, "type": "function",
                 "function": {"name": u.name, "arguments": json.dumps(u.input, ensure_ascii=False)}}
                for u in uses] or None

    # --- replies -----------------------------------------------------------------------------------------------
    def reply_model(self, model_id: str) -> str:
        return base_model_id(model_id)

    def completion_id(self, request: NativeRequest | None) -> str:
        return "chatcmpl-" + (request.request_id.replace("-", "")[:24] if request else "0" * 24)

    def usage(self, input_tokens: int, output_tokens: int) -> dict:
        return {"prompt_tokens": input_tokens, "completion_tokens": output_tokens, "total_tokens": input_tokens + output_tokens}

    def reply_choice(self, index: int, result: Finished) -> dict:
        message = {"role": "assistant", "content": result.text or (None if result.tool_uses else "")}
        if result.tool_uses:
            message["tool_calls"] = self.tool_calls(result.tool_uses)
        return {"index": index, "message": message, "finish_reason": self.native_stop_reason(result.stop_reason)}

    def native_responses(self, results: list[Finished], model_id: str, request: NativeRequest | None = None) -> dict:
        return {
            "id": self.completion_id(request),
            "object": "chat.completion",
            "created": request.created if request else 0,
            "model": self.reply_model(model_id),
            "choices": [self.reply_choice(i, r) for i, r in enumerate(results)],
            "usage": self.usage(results[0].input_tokens, sum(r.output_tokens for r in results)),
        }

    def native_response(self, result: Finished, model_id: str, request: NativeRequest | None = None) -> dict:
        return self.native_responses([result], model_id, request)

    def chunk_choice(self, text: str | None, reason: str | None, first: bool) -> dict:
        delta = {"role": "assistant", "content": text} if first else ({"content": text} if text is not None else {})
        return {"index": 0, "delta": delta, "finish_reason": reason}

    def chunk(self, request: NativeRequest, choice: dict, **extra) -> dict:
        return {"id": self.completion_id(request), "object": "chat.completion.chunk", "created": request.created,
                "model": self.reply_model(request.model_id), "choices": [choice], **extra}

    def stream_start(self, request: NativeRequest) -> list[dict]:
        return [self.chunk(request, self.chunk_choice("", None, first=True))]

    def stream_delta(self, request: NativeRequest, text: str) -> list[dict]:
        return [self.chunk(request, self.chunk_choice(text, None, first=False))]

    def stream_end(self, request: NativeRequest, result: Finished) -> list[dict]:
        reason = self.native_stop_reason(result.stop_reason)
        return [self.chunk(request, self.chunk_choice(None, reason, first=False),
                           usage=self.usage(result.input_tokens, result.output_tokens))]

    def tool_chunk_choice(self, calls: list[dict], first: bool) -> dict:
        delta = {"tool_calls": [{"index": i, **c} for i, c in enumerate(calls)]}
        return {"index": 0, "delta": {"role": "assistant", **delta} if first else delta, "finish_reason": None}

    def stream_tool(self, request: NativeRequest, event: ToolUseStart | ToolInputDelta | ToolUse) -> list[dict]:
        """A tool call goes out whole, in one chunk, once its input is complete."""
        if not isinstance(event, ToolUse):
            return []
        return [self.chunk(request, self.tool_chunk_choice(self.tool_calls((event,)), first=request.deltas == 0))]
