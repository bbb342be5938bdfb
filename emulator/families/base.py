"""What every model family adapter provides, and the shared reading of sampling controls from native bodies.

Bedrock turns a Converse request into the family's native body (with `additionalModelRequestFields` merged in
verbatim) before the model sees it; we do the same, so Converse and InvokeModel share one reading of each
family's parameters, defaults and ranges.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..catalog import Entry
from ..chat.prompts import Prompt, completion_prompt
from ..engine.types import Finished, SamplingParams, ToolInputDelta, ToolUse, ToolUseStart
from ..protocol.bounds import quoted
from ..protocol.errors import malformed_native, validation
from ..tools.blocks import ReplyBlocks
from ..tools.model import ToolPlan
from . import schema
from .schema import Spec, number_text

Path = tuple[str, ...]
_MISSING = object()


def dig(body: dict, path: Path) -> Any:
    node: Any = body
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def put(body: dict, path: Path, value: Any) -> None:
    node = body
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def deep_merge(into: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            deep_merge(into[key], value)
        else:
            into[key] = value
    return into


@dataclass(frozen=True)
class Knobs:
    """Where each sampling control lives in the family's native body (None: the family has no such control)."""

    max_tokens: Path | None = ("max_tokens",)
    temperature: Path | None = ("temperature",)
    top_p: Path | None = ("top_p",)
    top_k: Path | None = ("top_k",)
    stop: Path | None = ("stop_sequences",)
    seed: Path | None = None


@dataclass
class NativeRequest:
    """The InvokeModel request a family's reply writers answer, with the state of its streamed reply."""

    model_id: str
    body: dict
    request_id: str
    input_tokens: int = 0  # known before the first stream chunk is written
    deltas: int = 0  # text deltas streamed so far
    blocks: ReplyBlocks = field(default_factory=ReplyBlocks)  # the streamed reply's content blocks (Claude, Nova)
    latency_ms: int = 0  # set before the reply is built
    created: int = field(default_factory=lambda: int(time.time()))


class Family:
    name: str = ""
    # Capabilities, checked against the catalogue when it loads (families/__init__.py `check_catalog`).
    streams = False  # whether InvokeModelWithResponseStream serves it
    output_modality = "TEXT"  # what ListFoundationModels reports the family's models generate

    @cached_property
    def schema(self) -> Spec:
        """The JSON schema Bedrock checks this family's InvokeModel body against."""
        return self.build_schema()

    def build_schema(self) -> Spec:
        return Spec()

    def validate(self, body: dict) -> None:
        schema.check(self.schema, body)


class TextFamily(Family):
    streams = True
    # The tool choices Converse accepts for the family's models (AWS "Supported models and model features" and the
    # ToolChoice reference); none: no tool use at all.
    tool_choices: tuple[str, ...] = ()
    # The non-text content blocks Converse takes (a text-only local model reads each as a stand-in).
    media: frozenset[str] = frozenset({"image", "document"})
    # Extra members Bedrock adds to this family's `amazon-bedrock-invocationMetrics`.
    metrics_extra: dict[str, int] = {}
    knobs = Knobs()
    # Values used when a request leaves a control out, and the inclusive ranges a native body may use.
    defaults: dict[str, float] = {"max_tokens": 512, "temperature": 1.0, "top_p": 1.0, "top_k": 0}
    ranges: dict[str, tuple[float, float]] = {"temperature": (0.0, 1.0), "top_p": (0.0, 1.0), "top_k": (0, 500)}
    max_stop_sequences: int | None = None
    # Converse stop reason -> the family's native name.
    stop_reasons: dict[str, str] = {}
    # Completion-style bodies: the real model always continues a prompt, so end-of-text first is not an answer.
    completes_text = False

    def converse_native(self, inference_config: dict, additional: dict | None) -> dict:
        """The sampling part of the native body Bedrock builds from a Converse request."""
        native: dict = {}
        mapping = {
            "maxTokens": self.knobs.max_tokens,
            "temperature": self.knobs.temperature,
            "topP": self.knobs.top_p,
            "stopSequences": self.knobs.stop,
        }
        for member, path in mapping.items():
            if member not in inference_config:
                continue
            if path is None:
                raise validation(f"This model doesn't support the {member} field. Remove {member} and try again.")
            put(native, path, inference_config[member])
        return deep_merge(native, additional or {})

    def range_spec(self, name: str, integer: bool = False) -> Spec:
        """The schema node of a sampling control, from the family's `ranges`."""
        lo, hi = self.ranges.get(name, (None, None))
        return schema.Int(lo, hi) if integer else schema.Num(lo, hi)

    def variant(self, body: dict, model_id: str) -> "TextFamily":
        """The adapter for this body (a family can accept more than one body form, e.g. Claude's two APIs)."""
        return self

    def canonical(self, body: dict) -> dict:
        """The body with accepted alternative spellings rewritten to the paths in `knobs`."""
        return body

    def check_invocation(self, body: dict, model_id: str, streaming: bool) -> None:
        """Checks that depend on the invocation rather than the body alone (e.g. gpt-oss's `stream` and `model`)."""

    def prompt(self, body: dict) -> Prompt:
        """The generation input a validated native body asks for."""
        raise NotImplementedError

    def choices(self, body: dict) -> int:
        """How many independent generations the body asks for (Cohere `num_generations`, OpenAI `n`, ...)."""
        return 1

    def _number(self, body: dict, name: str, integer: bool, entry: Entry) -> float | None:
        path = getattr(self.knobs, name)
        value = dig(body, path) if path else _MISSING
        if value is _MISSING or value is None:
            default = entry.defaults.get(name, self.defaults.get(name))
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (integer and isinstance(value, float) and not value.is_integer()):
            pointer = "#/" + "/".join(path)
            raise malformed_native(f"{pointer}: expected type: {'Integer' if integer else 'Number'}, found: {type(value).__name__}")
        lo, hi = self.ranges.get(name, (None, None))
        if (lo is None or value >= lo) and (hi is None or value <= hi) and \
                not (isinstance(value, int) and value.bit_length() > 1000):
            return value  # in range (the usual case): no message to build
        pointer = "#/" + "/".join(path)
        if isinstance(value, int) and value.bit_length() > 1000:  # past float's range: no sampling knob takes it
            raise malformed_native(f"{pointer}: {quoted(str(value), 40)} is not less or equal to {2**63 - 1}")
        if lo is not None and value < lo:
            raise malformed_native(f"{pointer}: {number_text(value)} is not greater or equal to {number_text(lo)}")
        if hi is not None and value > hi:
            raise malformed_native(f"{pointer}: {number_text(value)} is not less or equal to {number_text(hi)}")
        return value

    def sampling(self, body: dict, entry: Entry) -> SamplingParams:
        """Read and range-check the sampling controls of a native body, filling the family's defaults.

        The body may be partial (Converse builds only its sampling part), so required keys are not checked here;
        every member that is present must still satisfy the family's schema, as on Bedrock.
        """
        body = self.canonical(body)
        schema.check(self.schema, body, require=False)
        asked = dig(body, self.knobs.max_tokens) if self.knobs.max_tokens else _MISSING
        max_tokens = self._number(body, "max_tokens", True, entry)
        if max_tokens is None:
            max_tokens = entry.max_output_tokens
        # No limit set, or the model's own maximum (what pydantic-ai and LiteLLM send to mean "no limit"): the
        # answer ends naturally (engine/loopguard.py), within the fallback budget. Any lower limit is exact.
        if asked is _MISSING or asked is None or max_tokens == entry.max_output_tokens:
            budget = natural_budget()
            natural_end = asked is _MISSING or asked is None or max_tokens > budget
            fallback = natural_end and max_tokens > budget
        else:  # any other explicit limit is exact (one past the model's maximum is refused below)
            natural_end = fallback = False
        if max_tokens < 1:
            raise malformed_native(f"#/{'/'.join(self.knobs.max_tokens or ())}: {max_tokens} is not greater or equal to 1")
        if max_tokens > entry.max_output_tokens:
            limit = entry.max_output_tokens
            raise validation(
                f"The maximum tokens you requested exceeds the model limit of {limit}. "
                f"Try again with a maximum tokens value that is lower than {limit}."
            )
        stops = dig(body, self.knobs.stop) if self.knobs.stop else _MISSING
        if stops is _MISSING or stops is None:
            stops = []
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise malformed_native(f"#/{'/'.join(self.knobs.stop or ())}: expected type: JSONArray of strings")
        if self.max_stop_sequences is not None and len(stops) > self.max_stop_sequences:
            pointer = "#/" + "/".join(self.knobs.stop or ())
            raise malformed_native(f"{pointer}: expected maximum item count: {self.max_stop_sequences}, found: {len(stops)}")
        seed = dig(body, self.knobs.seed) if self.knobs.seed else _MISSING
        temperature = self._number(body, "temperature", False, entry)
        top_p = self._number(body, "top_p", False, entry) if self.knobs.top_p else None
        top_k = self._number(body, "top_k", True, entry) if self.knobs.top_k else None
        return SamplingParams(
            max_new_tokens=int(min(max_tokens, budget) if fallback else max_tokens),
            temperature=1.0 if temperature is None else float(temperature),
            top_p=1.0 if top_p is None else float(top_p),
            top_k=0 if top_k is None else int(top_k),
            stop_sequences=tuple(stops),
            seed=int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else None,
            natural_end=natural_end,
            fallback_budget=fallback,
        )

    def native_stop_reason(self, reason: str) -> str:
        return self.stop_reasons.get(reason, reason)

    def native_response(self, result: Finished, model_id: str, request: NativeRequest | None = None) -> dict:
        """The family's native non-streamed response body for a finished generation.

        `request` is None when Converse asks (for `additionalModelResponseFieldPaths`).
        """
        raise NotImplementedError

    def native_responses(self, results: list[Finished], model_id: str, request: NativeRequest | None = None) -> dict:
        """The reply for several generations of one request; families with a choices list override it."""
        return self.native_response(results[0], model_id, request)

    # Native stream chunks. The API layer sends each as it is produced and adds Bedrock's
    # `amazon-bedrock-invocationMetrics` to the last chunk of `stream_end`.
    def stream_start(self, request: NativeRequest) -> list[dict]:
        return []

    def stream_delta(self, request: NativeRequest, text: str) -> list[dict]:
        raise NotImplementedError

    def stream_end(self, request: NativeRequest, result: Finished) -> list[dict]:
        raise NotImplementedError

    # Tools, for families whose bodies carry them: the plan runs the turn (tools/turn.py), `stream_tool` writes
    # a ToolUseStart / ToolInputDelta / ToolUse event as native chunks.
    def tool_plan(self, body: dict) -> ToolPlan | None:
        return None

    def stream_tool(self, request: NativeRequest, event: ToolUseStart | ToolInputDelta | ToolUse) -> list[dict]:
        # A body without tools has no way to say a call: a scripted rule's tool calls for such a family are
        # left out of its stream, as `native_response` leaves them out of its reply.
        return []


class ListedCompletion(TextFamily):
    """Completion families whose reply and every stream chunk is `{<list_key>: [{"text", "stop_reason"}]}`."""

    list_key = "outputs"
    completes_text = True

    def prompt(self, body: dict) -> Prompt:
        return completion_prompt(body["prompt"])

    def _listed(self, text: str, reason: str | None) -> dict:
        return {self.list_key: [{"text": text, "stop_reason": reason}]}

    def native_response(self, result: Finished, model_id: str, request: NativeRequest | None = None) -> dict:
        return self._listed(result.text, self.native_stop_reason(result.stop_reason))

    def stream_delta(self, request: NativeRequest, text: str) -> list[dict]:
        return [self._listed(text, None)]

    def stream_end(self, request: NativeRequest, result: Finished) -> list[dict]:
        return [self._listed("", self.native_stop_reason(result.stop_reason))]


NATURAL_BUDGET_ENV = "BEDROCK_EMULATOR_NATURAL_BUDGET"


def natural_budget() -> int:
    """The fallback token budget of a request that sets no limit (the loop guard usually ends it far sooner)."""
    try:
        return max(1, int(os.environ.get(NATURAL_BUDGET_ENV, "1024")))
    except ValueError:
        return 1024
