"""Tool-aware assistant turns, shared by every API: tools in the prompt, the decision to call one, and the call's
input decoded under the tool's JSON schema.

The local model sees tools the way many small open chat models were trained to (Hermes / Qwen style): a `<tools>`
list in the system prompt, calls written as `<tool_call>{"name": ..., "arguments": ...}</tool_call>`, results as
`<tool_response>` in the next user turn. A turn takes up to three passes over the same conversation:

1. free text (tool choice `auto` or `none`); with `auto`, the `<tool_call>` marker stops it if the model starts
   a call by itself, and the text before it becomes a text block in front of the call;
2. the tool's name, constrained to the offered names (skipped when only one tool can be called);
3. the input, constrained to the tool's JSON schema (`engine/constrained.py`) and streamed as it is generated.

A 135M model practically never starts a call by itself, so `auto` is helped by a HEURISTIC (`auto_pick`): when
the latest user turn shares a content word with a tool's name or description, that tool is called; when the
latest user turn carries tool results, the model answers in text. A model that does emit the marker is still
honoured (pass 1).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any

from .engine.constrained import (
    FirstTokenBan,
    GrammarConstraint,
    SchemaError,
    choice_grammar,
    grammar_tokenizer,
    json_schema_grammar,
)
from .engine.types import (
    END_TURN,
    MAX_TOKENS,
    STOP_SEQUENCE,
    TOOL_USE,
    Event,
    Failed,
    Finished,
    SamplingParams,
    TextDelta,
    TokenConstraint,
    ToolInputDelta,
    ToolUse,
    ToolUseStart,
)
from .protocol.errors import validation

REPEAT_TRIES = 4  # samples of a repeated tool's input before an identical call is accepted (see pass 3)
CALL_START = "<tool_call>"
CALL_END = "</tool_call>"


def tool_use_id() -> str:
    """A toolUseId in Bedrock's Converse form: `tooluse_` and 22 url-safe characters."""
    return "tooluse_" + secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    schema: dict  # the input's JSON schema, as the caller sent it


@dataclass(frozen=True)
class ToolPlan:
    """The tools a turn may call and how it must choose (already validated by the API layer)."""

    tools: tuple[Tool, ...]
    choice: str = "auto"  # auto | any | tool | none
    forced: str | None = None  # the tool that `tool` names
    after_results: bool = False  # the latest user turn carries tool results
    text_schema: dict | None = None  # a JSON schema the text answer must follow (Converse outputConfig)
    new_id: Callable[[], str] = field(default=tool_use_id, compare=False)
    # Where each tool's schema (and the text schema) sits in the request, for error messages.
    schema_paths: tuple[str, ...] = ()
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


def schema_problem(plan: ToolPlan) -> str | None:
    """Why the grammar engine cannot follow one of the turn's schemas, or None. Compiling is cached but blocking.

    Checked when a turn runs, not when a request is read: Bedrock accepts these schemas, so only generating
    with them (not e.g. CountTokens) is something the emulator cannot do."""
    for i, tool in enumerate(plan.tools):
        try:
            json_schema_grammar(tool.schema)
        except SchemaError as exc:
            where = plan.schema_paths[i] if i < len(plan.schema_paths) else f"tools.{i}"
            return (f"The emulator cannot constrain tool input to the schema at {where}: {exc}. "
                    "Remove or rewrite that part of the schema and try again.")
    if plan.text_schema is not None:
        try:
            json_schema_grammar(plan.text_schema)
        except SchemaError as exc:
            return f"The emulator cannot constrain the answer to the schema at {plan.text_schema_path}: {exc}."
    return None


# --- the prompt --------------------------------------------------------------------------------------------

def tools_prompt(tools: tuple[Tool, ...]) -> str:
    listed = "\n".join(
        json.dumps({"name": t.name, "description": t.description, "parameters": t.schema}, ensure_ascii=False)
        for t in tools
    )
    return (
        "You may call one of these tools to help with the user's request:\n"
        f"<tools>\n{listed}\n</tools>\n"
        f"To call a tool, answer with {CALL_START}\n"
        '{"name": <tool name>, "arguments": <arguments as a JSON object>}\n'
        f"{CALL_END}"
    )


def render_call(name: str, arguments: object) -> str:
    """A tool call in the conversation history, as the model is told to write one."""
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False, separators=(",", ":"))
    return f"{CALL_START}\n{body}\n{CALL_END}"


def render_result(content: str, error: bool = False) -> str:
    """A tool result in the conversation history (`error`: the tool reported a failure).

    Plain words rather than `<tool_response>` tags: a small model copies tags it sees into its answer."""
    return f"The tool failed: {content}" if error else f"The tool returned: {content}"


def with_tools(messages: list[dict], plan: ToolPlan) -> list[dict]:
    """The conversation with the tools (and any answer schema) described in its system message."""
    offered = plan.tools if plan.choice != "none" else ()
    parts = [tools_prompt(offered)] if offered else []
    if plan.text_schema is not None:
        parts.append("Answer with a JSON object that follows this JSON schema:\n" + json.dumps(plan.text_schema))
    if not parts:
        return messages
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": messages[0]["content"] + "\n\n" + "\n\n".join(parts)}, *messages[1:]]
    return [{"role": "system", "content": "\n\n".join(parts)}, *messages]


def _prefilled(messages: list[dict], text: str) -> list[dict]:
    """The conversation with `text` as (the end of) the assistant's reply, which the model continues."""
    if messages and messages[-1]["role"] == "assistant":
        return [*messages[:-1], {"role": "assistant", "content": messages[-1]["content"] + text}]
    return [*messages, {"role": "assistant", "content": text}]


# --- the auto heuristic ------------------------------------------------------------------------------------

_STOPWORDS = frozenset(
    "a an the of for to in on at by with from and or not is are was be been it its this that these those what "
    "which who whom how when where why do does did can could would should will shall may might must i me my you "
    "your we our us they them their he she his her please tell give get set use call tool tools function run "
    "current now today some any all about there here than then just also very much many more most like want need "
    "know let make show find".split()
)


def _words(text: str) -> set[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)  # getWeather -> get Weather
    words = re.findall(r"[a-z0-9]+", spaced.lower())
    # a light stemmer: "cities"/"city", "forecasts"/"forecast" meet halfway
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in _STOPWORDS and len(w) > 1}


def auto_pick(plan: ToolPlan, user_text: str) -> Tool | None:
    """HEURISTIC stand-in for a model's own tool choice under `auto` (see the module docstring)."""
    if plan.choice != "auto" or plan.after_results:
        return None
    asked = _words(user_text)
    best, best_score = None, 0
    for tool in plan.tools:
        score = len(asked & _words(f"{tool.name.replace('_', ' ').replace('-', ' ')} {tool.description}"))
        if score > best_score:
            best, best_score = tool, score
    return best


# --- the turn ----------------------------------------------------------------------------------------------

@dataclass
class _Tally:
    """Usage over the passes of one turn."""

    input_tokens: int = 0
    output_tokens: int = 0

    def add(self, finished: Finished) -> None:
        self.output_tokens += finished.output_tokens


@dataclass(frozen=True)
class TurnModel:
    """What a tool turn needs of the model that runs it (the service supplies it for the call's model)."""

    tokenizer: Any  # the model's Hugging Face tokenizer (the grammars are built over its vocabulary)
    prompt_tokens: Callable[[list[dict]], Awaitable[int]]  # tokens of a conversation's prompt
    # One pass of the model over a conversation, optionally constrained.
    generate: Callable[[list[dict], SamplingParams, TokenConstraint | None], AsyncIterator[Event]]


async def tool_turn(model: TurnModel, plan: ToolPlan, messages: list[dict], last_user_text: str,
                    params: SamplingParams) -> AsyncIterator[Event]:
    """One assistant turn that may call a tool: text deltas and/or one tool call, then `Finished`."""
    problem = await asyncio.to_thread(schema_problem, plan)
    if problem is not None:
        yield Failed(validation(problem))
        return
    prompted = with_tools(messages, plan)
    grammars = await asyncio.to_thread(grammar_tokenizer, model.tokenizer)
    tally = _Tally(input_tokens=await model.prompt_tokens(prompted))
    text = ""
    budget = params.max_new_tokens

    async def run(messages: list[dict], pass_params: SamplingParams, grammar: str | None,
                  constraint: TokenConstraint | None = None) -> AsyncIterator[Event]:
        if grammar is not None:
            constraint = await asyncio.to_thread(GrammarConstraint, grammars, grammar, pass_params.max_new_tokens)
        events = model.generate(messages, pass_params, constraint)
        async with aclosing(events):  # closing a pass stops its generation at once
            async for event in events:
                yield event

    def finished(reason: str, stop: str | None = None) -> Finished:
        return Finished(reason, stop, tally.input_tokens, tally.output_tokens, text)

    # Pass 1: text, unless a call is forced (or the heuristic asks for one).
    tool = auto_pick(plan, last_user_text)
    if plan.choice in ("auto", "none") and tool is None:
        # The call marker always ends the text; it starts a call only where one is allowed. HEURISTIC: right after
        # tool results a small model just copies the call it sees in the history, so there its reply may not
        # open with a tag, and a marker later on ends the answer.
        text_grammar = json_schema_grammar(plan.text_schema) if plan.text_schema is not None else None
        own_stop = CALL_START not in params.stop_sequences and text_grammar is None
        stops = (*params.stop_sequences, CALL_START) if own_stop else params.stop_sequences
        no_tag = FirstTokenBan(grammars.tag_openers) if plan.after_results and text_grammar is None else None
        text_params = replace(params, stop_sequences=stops)
        async with aclosing(run(prompted, text_params, text_grammar, no_tag)) as events:
            async for event in events:
                if isinstance(event, Finished):
                    tally.add(event)
                    text = event.text
                    marker = own_stop and event.stop_reason == STOP_SEQUENCE and event.stop_sequence == CALL_START
                    if not marker:
                        yield finished(event.stop_reason, event.stop_sequence)
                        return
                    if plan.choice != "auto" or plan.after_results:
                        yield finished(END_TURN)
                        return
                else:
                    yield event
                    if isinstance(event, Failed):
                        return
        budget -= tally.output_tokens
    call_prefix = text + CALL_START + '\n{"name":'
    tools = plan.callable_tools()
    # Pass 2: which tool.
    if tool is None and len(tools) == 1:
        tool = tools[0]
    elif tool is None:
        if budget <= 0:
            yield finished(MAX_TOKENS)
            return
        name_params = replace(params, max_new_tokens=budget, stop_sequences=())
        names = choice_grammar([t.name for t in tools])
        async with aclosing(run(_prefilled(prompted, call_prefix), name_params, names)) as events:
            async for event in events:
                if isinstance(event, Failed):
                    yield event
                    return
                if isinstance(event, Finished):
                    tally.add(event)
                    budget -= event.output_tokens
                    if event.stop_reason != END_TURN:
                        yield finished(event.stop_reason)
                        return
                    tool = plan.tool(json.loads(event.text))
    # Pass 3: the input, streamed as it is decoded.
    if budget <= 0:
        yield finished(MAX_TOKENS)
        return
    use_id = plan.new_id()
    prefix = call_prefix + json.dumps(tool.name) + ',"arguments":'
    input_params = replace(params, max_new_tokens=budget, stop_sequences=())
    grammar = json_schema_grammar(tool.schema)
    if plan.choice == "any" and any(name == tool.name for name, _ in plan.answered):
        # This tool was called before: its input is decoded whole first, and a call identical to one already
        # answered is re-sampled (a few seeds), so the loop never asks the same question twice.
        for attempt in range(REPEAT_TRIES):
            tried = input_params if attempt == 0 else replace(input_params, temperature=1.0, top_p=1.0, top_k=0,
                                                             seed=attempt)
            result: Finished | None = None
            async with aclosing(run(_prefilled(prompted, prefix), tried, grammar)) as events:
                async for event in events:
                    if isinstance(event, Failed):
                        yield event
                        return
                    if isinstance(event, Finished):
                        result = event
            if result.stop_reason != END_TURN:
                tally.add(result)
                yield finished(result.stop_reason)
                return
            arguments = json.loads(result.text)
            if not plan.is_answered(tool.name, arguments):
                break
        tally.add(result)  # only the call returned is billed
        yield ToolUseStart(use_id, tool.name)
        yield ToolInputDelta(result.text)
        yield ToolUse(use_id, tool.name, arguments)
        yield finished(TOOL_USE)
        return
    yield ToolUseStart(use_id, tool.name)
    async with aclosing(run(_prefilled(prompted, prefix), input_params, grammar)) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                yield ToolInputDelta(event.text)
            elif isinstance(event, Failed):
                yield event
                return
            elif isinstance(event, Finished):
                tally.add(event)
                if event.stop_reason == END_TURN:
                    yield ToolUse(use_id, tool.name, json.loads(event.text))
                    yield finished(TOOL_USE)
                else:  # the budget ran out before the shortest valid input fitted
                    yield finished(event.stop_reason)
