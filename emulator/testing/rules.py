"""Scripted responses: rules that answer matching requests in place of the model.

A rule file (YAML or JSON) holds `rules:`, a list tried in order; the first rule whose `match` fits a request
answers it with `respond`. The same schema serves `--fixtures DIR` and `POST /_emulator/rules`:

    rules:
      - name: weather tool call            # optional, shown in listings and the invocation log
        match:                             # every key optional; all given must hold
          operation: ConverseStream        # or a list: Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream,
                                           #   OpenAIChatCompletions, OpenAIResponses (api/openai)
          model: "anthropic.claude-3*"     # glob over the model id as sent or its base id (profiles/ARNs stripped)
          contains: "weather"              # substring of the last user message's text (case-sensitive)
          regex: "in (Paris|Rome)"         # regex searched in the same text (`regex` module, 100 ms budget)
          turn: 1                          # number of user messages so far (1 = first turn; raw prompts count as 1)
          body: {messages: [...]}          # the whole request body as sent, volatile keys ignored (see below)
          ignore: [toolUseId, id]          # keys ignored in `body` (default: recording.matching.VOLATILE)
        respond:                           # text and/or tool_calls, or an error
          text: "Let me check."
          tool_calls: [{name: get_weather, input: {city: Paris}}]   # optional `id`; default: a fresh tooluse_ id
          stop_reason: tool_use            # default: tool_use with tool calls, else end_turn
          usage: {input_tokens: 12, output_tokens: 7}   # default: counted with the model's tokenizer
          pace_ms: 20                      # delay between streamed pieces (default 0)
          # error: {code: ThrottlingException, message: "...", extra: {}}   instead of text/tool_calls
        times: 1                           # answer this many requests, then retire (default: unlimited)

A recorded exchange (a cassette, `emulator/recording/cassette.py`) in the same directory is loaded as a rule
that matches its operation, model and body with the same `Match`, and answers with the recorded reply itself
(at the operation seam, so CountTokens and errors replay too).

Scripted output is sent as written: sampling parameters (max tokens, stop sequences) do not trim it. The API
layers frame it exactly like generated output, in each operation's and family's native shape.
"""

from __future__ import annotations

import asyncio
import glob
import itertools
import json
import re
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, field_validator,
                      model_validator)

from .. import safe_regex
from ..engine.types import END_TURN, Event, Failed, Finished, TextDelta, ToolInputDelta, ToolUse, ToolUseStart
from ..families.call import Call
from ..protocol.bounds import quoted
from ..protocol.errors import BedrockError
from ..recording.cassette import Cassette, is_cassette
from ..recording.matching import VOLATILE, Sent, normalized
from ..safe_regex import UnsafePattern, compile_checked
from ..service import Service
from ..tools.model import tool_use_id
from .caps import MAX_RULES, MAX_TEXT, cap_error
from .scope import GeneratingOperation, as_list, describe, error_code, extra_members, model_matches

ErrorCode = Annotated[str, BeforeValidator(error_code)]
StopReason = Literal["end_turn", "tool_use", "max_tokens", "stop_sequence", "guardrail_intervened", "content_filtered"]
RULE_FILE_SUFFIXES = (".yaml", ".yml", ".json")
RULE_REGEX_BUDGET_S = 0.1  # per rule regex and request (matching runs on a worker thread)


class RuleError(ValueError):
    """A rule file or admin request that does not fit the schema; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Match(_Strict):
    operation: list[GeneratingOperation] | None = None
    model: str | None = Field(default=None, max_length=1000)
    contains: str | None = Field(default=None, max_length=MAX_TEXT)
    regex: str | None = None
    turn: int | None = Field(default=None, ge=1)
    body: Any = None
    ignore: list[str] = Field(default_factory=lambda: list(VOLATILE))
    _normalized: Any = PrivateAttr(default=None)

    _as_list = field_validator("operation", mode="before")(as_list)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_checked(value)  # the safe engine, with its compile-time check (see safe_regex)
            except UnsafePattern as exc:
                raise ValueError(str(exc)) from None
        return value

    def fits(self, operation: str, model_id: str | None, body: Any) -> bool:
        """What can be decided before a request is parsed: operation, model and body."""
        if self.operation is not None and operation not in self.operation:
            return False
        if not model_matches(self.model, model_id):
            return False
        if self.body is None:
            return True
        if self._normalized is None:  # the rule's side is normalized once, the request's once per request
            self._normalized = normalized(self.body, frozenset(self.ignore))
        sent = body if isinstance(body, Sent) else Sent(body)
        return self._normalized == sent.normalized(frozenset(self.ignore))

    def matches(self, call: Call, body: Any = None) -> bool:
        if not self.fits(call.operation, call.model_id, body):
            return False
        text = call.last_user_text
        if self.contains is not None and self.contains not in text:
            return False
        if self.regex is not None:
            try:
                if safe_regex.search(self.regex, text, RULE_REGEX_BUDGET_S) is None:
                    return False
            except safe_regex.RegexTimeout:
                raise BedrockError("ValidationException", f"The scripted rule regex {quoted(self.regex, 80)!r} took "
                                   f"longer than {int(RULE_REGEX_BUDGET_S * 1000)} ms on this request's text; "
                                   "simplify the pattern.") from None
        return self.turn is None or self.turn == max(call.turn_index, 1)


class RecordedMatch(Match):
    """A cassette's match: any Bedrock operation (CountTokens, ApplyGuardrail... replay too), and the path's
    other labels (a guardrail's id, an async invocation's ARN) besides the model."""

    operation: list[str] | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    def fits_request(self, operation: str, labels: dict[str, str], body: Any) -> bool:
        others = {k: v for k, v in labels.items() if k != "modelId"}
        return others == self.labels and self.fits(operation, labels.get("modelId"), body)


class ToolCall(_Strict):
    name: str = Field(min_length=1, max_length=64)
    input: dict[str, Any] = Field(default_factory=dict)
    id: str | None = Field(default=None, min_length=1, max_length=64)


class Usage(_Strict):
    input_tokens: int | None = Field(default=None, ge=0)
    output_tokens: int | None = Field(default=None, ge=0)


class ScriptedError(_Strict):
    code: ErrorCode
    message: str | None = Field(default=None, max_length=MAX_TEXT)
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _modeled_members(self) -> "ScriptedError":
        unknown = set(self.extra) - extra_members(self.code)
        if unknown:
            allowed = ", ".join(sorted(extra_members(self.code))) or "none"
            raise ValueError(f"{self.code} has no member(s) {', '.join(sorted(unknown))} (allowed: {allowed})")
        return self

    def exception(self) -> BedrockError:
        return BedrockError(self.code, self.message, **self.extra)


class Respond(_Strict):
    text: str = Field(default="", max_length=MAX_TEXT)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    stop_reason: StopReason | None = None
    stop_sequence: str | None = None
    usage: Usage = Field(default_factory=Usage)
    error: ScriptedError | None = None
    pace_ms: float = Field(default=0, ge=0, le=60_000)

    @model_validator(mode="after")
    def _consistent(self) -> "Respond":
        if self.error is not None:
            if self.text or self.tool_calls or self.stop_reason or self.stop_sequence:
                raise ValueError("a response with `error` cannot also have text, tool_calls, stop_reason or stop_sequence")
        elif not self.text and not self.tool_calls:
            raise ValueError("a response needs `text`, `tool_calls` or `error`")
        if self.stop_sequence is not None and self.stop_reason not in (None, "stop_sequence"):
            raise ValueError("`stop_sequence` goes with stop_reason `stop_sequence`")
        return self

    @property
    def final_stop_reason(self) -> str:
        if self.stop_reason is not None:
            return self.stop_reason
        if self.stop_sequence is not None:
            return "stop_sequence"
        return "tool_use" if self.tool_calls else END_TURN


class Rule(_Strict):
    name: str | None = Field(default=None, max_length=256)
    match: Match = Field(default_factory=Match)
    respond: Respond
    times: int | None = Field(default=None, ge=1)


@dataclass
class CassetteRule:
    """A cassette loaded as a rule: its `RecordedMatch` decides, the recorded reply answers."""

    name: str
    match: RecordedMatch
    replay: Cassette
    times: int | None = None

    def model_dump(self, **_: object) -> dict:
        return {"name": self.name, "match": {"operation": self.match.operation, "model": self.match.model},
                "replay": {"status": self.replay.response.status, "stream": self.replay.streams}}


def cassette_rule(cassette: Cassette, source: str, ignore: list[str] | tuple[str, ...] = ()) -> CassetteRule:
    request = cassette.request
    body = request.body if request.body is not None else request.body_text
    match = RecordedMatch(operation=[request.operation], model=None if request.model is None else glob.escape(request.model),
                          labels=request.labels or {}, body=body, ignore=sorted({*VOLATILE, *ignore, *cassette.ignore}))
    return CassetteRule(Path(source).name, match, cassette)


class RuleFile(_Strict):
    rules: list[Rule]


def parse_rules(data: object, where: str = "") -> list[Rule | CassetteRule]:
    """`{"rules": [...]}` (a rule file), a single rule object (handy in admin requests), or a cassette."""
    if isinstance(data, dict) and isinstance(data.get("rules"), list) and len(data["rules"]) > MAX_RULES:
        raise RuleError(f"{where + ': ' if where else ''}rules: at most {MAX_RULES} rules "
                        f"(got {len(data['rules'])})")
    try:
        if is_cassette(data):
            return [cassette_rule(Cassette.model_validate(data), where or "api")]
        if isinstance(data, dict) and "rules" in data:
            return RuleFile.model_validate(data).rules
        return [Rule.model_validate(data)]
    except ValidationError as exc:
        raise RuleError(describe(exc, where)) from None


def load_file(path: Path, ignore: list[str] | tuple[str, ...] = ()) -> list[Rule | CassetteRule]:
    """A rule file's rules, or a cassette file as one rule (`ignore`: volatile keys beyond the defaults)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise RuleError(f"{path}: cannot read rules: {exc}") from None
    if is_cassette(data):
        try:
            return [cassette_rule(Cassette.model_validate(data), str(path), ignore)]
        except ValidationError as exc:
            raise RuleError(describe(exc, str(path))) from None
    if not isinstance(data, dict) or "rules" not in data:
        raise RuleError(f"{path}: a rule file is a mapping with a `rules:` list (or a cassette: `request:` and `response:`)")
    return parse_rules(data, str(path))


def rule_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise RuleError(f"{directory}: the fixtures directory does not exist")
    return sorted(p for p in directory.iterdir() if p.suffix in RULE_FILE_SUFFIXES and p.is_file())


@dataclass
class LoadedRule:
    id: str
    rule: Rule | CassetteRule
    source: str  # the file it came from, "api", or "recorded" (a cassette written by --record-missing)
    used: int = 0

    @property
    def exhausted(self) -> bool:
        return self.rule.times is not None and self.used >= self.rule.times

    @property
    def label(self) -> str:
        return self.rule.name or self.id

    @property
    def cassette(self) -> Cassette | None:
        return self.rule.replay if isinstance(self.rule, CassetteRule) else None

    def view(self) -> dict:
        remaining = None if self.rule.times is None else max(self.rule.times - self.used, 0)
        return {"id": self.id, "source": self.source, "used": self.used, "remaining": remaining,
                **self.rule.model_dump(mode="json", exclude_defaults=True)}


class RuleBook:
    """Rules added at run time are tried first, in the order added; then the rules loaded from files, then the
    cassettes of `--replay` (`use_cassettes`). Cassettes answer at the operation seam (`match_recorded`),
    scripted rules at the generation seam (`match`)."""

    def __init__(self, directory: Path | None = None) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._added: list[LoadedRule] = []
        self._loaded_files: list[LoadedRule] = []
        for path in rule_files(directory) if directory is not None else []:
            self._loaded_files += [self._loaded(rule, str(path)) for rule in load_file(path)]
        self._files = self._fresh_file_rules()
        self._cassettes: list[LoadedRule] = []
        self._changed()

    def _changed(self) -> None:
        """What every request asks of the rules, worked out once per change to them rather than per request."""
        scripted = [r.rule.match for r in self._all() if r.cassette is None]
        self.wants_body = any(match.body is not None for match in scripted)
        # Whether matching may take long enough (user regexes) to belong on a worker thread.
        self.needs_thread = any(match.regex is not None for match in scripted)
        self.has_cassettes = len(scripted) < len(self._added) + len(self._files) + len(self._cassettes)

    def _fresh_file_rules(self) -> list[LoadedRule]:
        return [LoadedRule(r.id, r.rule, r.source) for r in self._loaded_files]

    def _loaded(self, rule: Rule | CassetteRule, source: str) -> LoadedRule:
        return LoadedRule(f"rule-{next(self._ids)}", rule, source)

    def _all(self) -> itertools.chain[LoadedRule]:
        return itertools.chain(self._added, self._files, self._cassettes)

    def add(self, rules: list[Rule]) -> list[LoadedRule]:
        """Add all of `rules` or, past the cap, none (a refused request changes nothing)."""
        if len(self._added) + len(rules) > MAX_RULES:
            raise cap_error("run-time rules", MAX_RULES, len(self._added))
        loaded = [self._loaded(rule, "api") for rule in rules]
        self._added += loaded
        self._changed()
        return loaded

    def use_cassettes(self, directory: Path | None, ignore: list[str] | tuple[str, ...] = ()) -> int:
        """Answer from the cassettes in `directory` (replacing those of an earlier directory); how many loaded."""
        files = rule_files(directory) if directory is not None and directory.exists() else []
        rules = [rule for path in files for rule in load_file(path, ignore)]
        self._cassettes = [self._loaded(rule, str(directory)) for rule in rules if isinstance(rule, CassetteRule)]
        self._changed()
        return len(self._cassettes)

    def add_cassette(self, cassette: Cassette, path: Path, ignore: list[str] | tuple[str, ...] = ()) -> LoadedRule:
        loaded = self._loaded(cassette_rule(cassette, str(path), ignore), "recorded")
        self._cassettes.append(loaded)
        self._changed()
        return loaded

    def match(self, call: Call, body: Any = None) -> LoadedRule | None:
        """The first live scripted rule that fits `call`; using it counts against its `times`. Safe on a worker
        thread: a rule with `times` is used exactly that often, even when matched from threads."""
        body = Sent(body)
        with self._lock:
            for loaded in list(self._all()):
                if loaded.cassette is None and not loaded.exhausted and loaded.rule.match.matches(call, body):
                    loaded.used += 1
                    return loaded
        return None

    def match_recorded(self, operation: str, labels: dict[str, str], body: Any) -> LoadedRule | None:
        """The cassette that answers this request: of those that fit, the least used (the same request recorded
        twice replays its recordings in order, then keeps answering with them)."""
        sent = Sent(body)
        fitting = [r for r in self._all() if r.cassette is not None and not r.exhausted
                   and r.rule.match.fits_request(operation, labels, sent)]
        if not fitting:
            return None
        chosen = min(fitting, key=lambda r: r.used)  # min keeps the first of equals: file order
        chosen.used += 1
        return chosen

    def cassettes(self) -> list[LoadedRule]:
        return [r for r in self._all() if r.cassette is not None]

    def remove(self, rule_id: str) -> bool:
        before = len(self._added) + len(self._files) + len(self._cassettes)
        self._added = [r for r in self._added if r.id != rule_id]
        self._files = [r for r in self._files if r.id != rule_id]
        self._cassettes = [r for r in self._cassettes if r.id != rule_id]
        self._changed()
        return len(self._added) + len(self._files) + len(self._cassettes) < before

    def clear(self) -> None:
        """Forget the rules added at run time; file rules stay (they are the server's configuration)."""
        self._added.clear()
        self._changed()

    def reset(self) -> None:
        """Run-time rules gone; file rules back as loaded (unused, removed ones restored); cassettes unused."""
        self.clear()
        self._files = self._fresh_file_rules()
        self._changed()
        for loaded in self._cassettes:
            loaded.used = 0

    def views(self) -> list[dict]:
        return [r.view() for r in self._all()]


# --- turning a rule's response into generation events ------------------------------------------------------

_PIECE = re.compile(r"\s*\S+|\s+$")


def pieces(text: str) -> list[str]:
    """Word-sized stream pieces that join back into exactly `text` (each keeps its leading whitespace)."""
    return _PIECE.findall(text)


_WHOLE_REPLY = frozenset({"Converse", "InvokeModel"})  # operations whose reply is never streamed


def _one_piece(text: str) -> list[str]:
    return [text] if text else []


def estimated_tokens(text: str) -> int:
    """A heuristic (about 4 characters per token), used only when no tokenizer is loaded."""
    return (len(text) + 3) // 4


async def _token_counts(respond: Respond, call: Call, service: Service) -> tuple[int, int]:
    """The scripted usage, else what the model's own tokenizer counts for the prompt and the scripted output."""
    usage = respond.usage
    output_text = respond.text + "".join(json.dumps(t.input) for t in respond.tool_calls)
    if usage.input_tokens is not None and usage.output_tokens is not None:
        return usage.input_tokens, usage.output_tokens
    try:
        model = service.engine_for(call.entry).model
    except BedrockError:  # models still loading (or none for this entry): scripted responses need none
        model = None
    if usage.input_tokens is not None:
        input_tokens = usage.input_tokens
    elif model is not None:
        input_tokens = await service.input_tokens(call)
    else:
        input_tokens = estimated_tokens(call.prompt or "".join(m["content"] for m in call.messages))
    if usage.output_tokens is not None:
        output_tokens = usage.output_tokens
    elif model is not None:
        output_tokens = len(await model.prompt_ids(None, output_text)) if output_text else 0
    else:
        output_tokens = estimated_tokens(output_text)
    return input_tokens, output_tokens


async def scripted_events(loaded: LoadedRule, call: Call, service: Service) -> AsyncIterator[Event]:
    """The rule's response as the events a generation produces: text pieces, tool calls, then Finished."""
    respond = loaded.rule.respond
    if respond.error is not None:
        yield Failed(respond.error.exception())
        return
    input_tokens, output_tokens = await _token_counts(respond, call, service)
    pace = respond.pace_ms / 1000
    # A reply sent whole shows nobody its pieces: one delta per block (each event is a hop through every layer).
    split = pieces if pace or call.operation not in _WHOLE_REPLY or call.guard is not None else _one_piece
    outputs: list[Event] = [TextDelta(piece) for piece in split(respond.text)]
    # Ids in the caller's form: `toolu_bdrk_` for Anthropic's native body, `tooluse_` for Converse and the rest.
    new_id = call.tools.new_id if call.tools is not None else tool_use_id
    for tool in respond.tool_calls:  # the sequence a generated tool call makes: start, input fragments, whole call
        use_id = tool.id or new_id()
        outputs.append(ToolUseStart(use_id, tool.name))
        outputs += [ToolInputDelta(piece) for piece in split(json.dumps(tool.input, ensure_ascii=False))]
        outputs.append(ToolUse(use_id, tool.name, tool.input))
    for i, event in enumerate(outputs):
        if i and pace and isinstance(event, (TextDelta, ToolInputDelta)):
            await asyncio.sleep(pace)
        yield event
    yield Finished(respond.final_stop_reason, respond.stop_sequence, input_tokens, output_tokens, respond.text)
