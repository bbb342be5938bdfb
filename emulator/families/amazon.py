"""Amazon's text families: Titan Text (`inputText` + `textGenerationConfig`) and Nova (`messages-v1`)."""

from __future__ import annotations

from ..chat.conversation import conversation
from ..chat.prompts import Prompt, instruction
from ..engine.types import (CONTEXT_EXCEEDED, END_TURN, MAX_TOKENS, STOP_SEQUENCE, Finished, TextDelta, ToolInputDelta,
                            ToolUse, ToolUseStart)
from ..protocol.errors import malformed_native
from ..protocol.shapes import errors_for, operation
from ..tools.blocks import Change, converse_events
from ..tools.checks import tool_plan
from ..tools.model import ToolPlan
from . import schema as s
from .base import Knobs, NativeRequest, TextFamily

_TGC = "textGenerationConfig"


class TitanText(TextFamily):
    completes_text = True
    name = "titan-text"
    knobs = Knobs(max_tokens=(_TGC, "maxTokenCount"), temperature=(_TGC, "temperature"), top_p=(_TGC, "topP"),
                  top_k=None, stop=(_TGC, "stopSequences"))
    defaults = {"max_tokens": 512, "temperature": 0.7, "top_p": 0.9}
    ranges = {"temperature": (0, 1), "top_p": (0, 1), "max_tokens": (1, None)}
    max_stop_sequences = 1
    # Recorded traffic (and Spring AI's enum) use FINISH; the docs' FINISHED / STOP_CRITERIA_MET are not sent.
    stop_reasons = {END_TURN: "FINISH", STOP_SEQUENCE: "FINISH", MAX_TOKENS: "LENGTH", CONTEXT_EXCEEDED: "LENGTH"}

    def build_schema(self) -> s.Spec:
        config = s.Obj({
            "maxTokenCount": self.range_spec("max_tokens", integer=True),
            "temperature": self.range_spec("temperature"),
            "topP": self.range_spec("top_p"),
            # The live validator allows one stop sequence, and only `|...` or `User:`.
            "stopSequences": s.Arr(s.Str(pattern=r"^(\|+|User:)$"), max_items=1),
        })
        return s.Obj({"inputText": s.Str(), _TGC: config}, required=("inputText",))

    def prompt(self, body: dict) -> Prompt:
        return Prompt(messages=instruction(body["inputText"]))

    def native_response(self, result: Finished, model_id: str, request: NativeRequest | None = None) -> dict:
        return {
            "inputTextTokenCount": result.input_tokens,
            "results": [{
                "tokenCount": result.output_tokens,
                "outputText": result.text,
                "completionReason": self.native_stop_reason(result.stop_reason),
            }],
        }

    def _chunk(self, request: NativeRequest, text: str, total: int | None, reason: str | None) -> dict:
        # inputTextTokenCount is only in the first chunk; the total and the reason only in the last.
        first = request.deltas == 0
        return {"outputText": text, "index": 0, "totalOutputTextTokenCount": total, "completionReason": reason,
                "inputTextTokenCount": request.input_tokens if first else None}

    def stream_delta(self, request: NativeRequest, text: str) -> list[dict]:
        return [self._chunk(request, text, None, None)]

    def stream_end(self, request: NativeRequest, result: Finished) -> list[dict]:
        return [self._chunk(request, "", result.output_tokens, self.native_stop_reason(result.stop_reason))]


_IC = "inferenceConfig"
_CACHE_ZERO = {"cacheReadInputTokenCount": 0, "cacheWriteInputTokenCount": 0}
# Both spellings reach Bedrock: recorded 200s use camelCase, older docs and some clients snake_case.
_NOVA_ALIASES = {"max_new_tokens": "maxTokens", "top_p": "topP", "top_k": "topK"}


class Nova(TextFamily):
    name = "nova"
    tool_choices = ("auto", "any", "tool")
    media = frozenset({"image", "document", "video"})  # Nova understands video; other chat models reject it
    knobs = Knobs(max_tokens=(_IC, "maxTokens"), temperature=(_IC, "temperature"), top_p=(_IC, "topP"),
                  top_k=(_IC, "topK"), stop=(_IC, "stopSequences"))
    defaults = {"temperature": 0.7, "top_p": 0.9, "top_k": 50}
    ranges = {"temperature": (0, 1), "top_p": (0, 1), "top_k": (0, 128), "max_tokens": (1, None)}
    stop_reasons = {END_TURN: "end_turn", MAX_TOKENS: "max_tokens", STOP_SEQUENCE: "stop_sequence",
                    CONTEXT_EXCEEDED: "max_tokens"}
    metrics_extra = _CACHE_ZERO

    def build_schema(self) -> s.Spec:
        config = s.Obj({
            "maxTokens": self.range_spec("max_tokens", integer=True),
            "temperature": self.range_spec("temperature"),
            "topP": self.range_spec("top_p"),
            "topK": self.range_spec("top_k", integer=True),
            "stopSequences": s.Arr(s.Str()),
            "reasoningConfig": s.AnyValue(),
        })
        message = s.Obj({"role": s.Str(enum=("user", "assistant")), "content": s.Arr(s.Obj({"text": s.Str()}, closed=False))},
                        required=("role", "content"))
        return s.Obj(
            {
                "schemaVersion": s.Str(),
                "system": s.Arr(s.Obj({"text": s.Str()}, closed=False), min_items=1),
                "messages": s.Arr(message),
                _IC: config,
                "toolConfig": s.AnyValue(),
            },
            required=("messages",),
        )

    def canonical(self, body: dict) -> dict:
        config = body.get(_IC)
        if not isinstance(config, dict) or not any(k in config for k in _NOVA_ALIASES):
            return body
        renamed = {_NOVA_ALIASES.get(k, k): v for k, v in config.items() if k not in _NOVA_ALIASES}
        for alias, key in _NOVA_ALIASES.items():
            if alias in config:
                renamed.setdefault(key, config[alias])
        return {**body, _IC: renamed}

    def prompt(self, body: dict) -> Prompt:
        # Nova's messages are Converse's messages (binary data as base64), so one conversation reader serves both.
        return Prompt(messages=conversation({"messages": body["messages"], "system": body.get("system")}))

    def _usage(self, result: Finished) -> dict:
        return {"inputTokens": result.input_tokens, "outputTokens": result.output_tokens}

    def tool_plan(self, body: dict) -> ToolPlan | None:
        # Nova's toolConfig is Converse's, so Converse's checks serve both.
        config = body.get("toolConfig")
        if config is not None:
            errors = errors_for(operation("Converse").input_shape.members["toolConfig"], config, "toolConfig")
            if errors:
                raise malformed_native(f"#/toolConfig: {errors[0]}")
        return tool_plan({"messages": body["messages"], "toolConfig": config})

    def native_response(self, result: Finished, model_id: str, request: NativeRequest | None = None) -> dict:
        content = [{"text": result.text}] if result.text or not result.tool_uses else []
        content += [{"toolUse": {"toolUseId": u.tool_use_id, "name": u.name, "input": u.input}} for u in result.tool_uses]
        return {
            "output": {"message": {"content": content, "role": "assistant"}},
            "stopReason": self.native_stop_reason(result.stop_reason),
            "usage": {**self._usage(result), "totalTokens": result.input_tokens + result.output_tokens, **_CACHE_ZERO},
        }

    def stream_start(self, request: NativeRequest) -> list[dict]:
        return [{"messageStart": {"role": "assistant"}}]

    @staticmethod
    def _chunks(changes: list[Change]) -> list[dict]:
        """The reply's block changes as Nova's chunks: Converse's stream events, one per chunk."""
        return [{name: payload} for name, payload in converse_events(changes)]

    def stream_delta(self, request: NativeRequest, text: str) -> list[dict]:
        return self._chunks(request.blocks.on(TextDelta(text)))

    def stream_tool(self, request: NativeRequest, event: ToolUseStart | ToolInputDelta | ToolUse) -> list[dict]:
        return self._chunks(request.blocks.on(event))

    def stream_end(self, request: NativeRequest, result: Finished) -> list[dict]:
        return [
            *self._chunks(request.blocks.finish(at_least_one=True)),  # nothing generated: still one (empty) block
            {"messageStop": {"stopReason": self.native_stop_reason(result.stop_reason)}},
            {"metadata": {"usage": {**self._usage(result), **_CACHE_ZERO}, "metrics": {}, "trace": {}}},
        ]
