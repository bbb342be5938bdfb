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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

from ..engine.constrained import (FirstTokenBan, GrammarConstraint, SchemaError, choice_grammar, grammar_tokenizer,
                                  json_schema_grammar)
from ..engine.types import (END_TURN, MAX_TOKENS, STOP_SEQUENCE, TOOL_USE, Event, Failed, Finished, SamplingParams,
                            TextDelta, TokenConstraint, ToolInputDelta, ToolUse, ToolUseStart)
from ..protocol.errors import validation
from .markup import CALL_START, with_tools
from .model import Tool, ToolPlan

REPEAT_TRIES = 4  # samples of a repeated tool's input before an identical call is accepted (see pass 3)


def schema_problem(plan: ToolPlan) -> str | None:
    """Why the grammar engine cannot follow one of the turn's schemas, or None. Compiling is cached but blocking.

    Checked when a turn runs, not when a request is read: Bedrock accepts these schemas, so only generating
    with them (not e.g. CountTokens) is something the emulator cannot do."""
    for i, tool in enumerate(plan.tools):
        try:
            json_schema_grammar(tool.schema)
        except SchemaError as exc:
            where = tool.schema_path or f"tools.{i}"
            return (f"The emulator cannot constrain tool input to the schema at {where}: {exc}. "
                    "Remove or rewrite that part of the schema and try again.")
    if plan.text_schema is not None:
        try:
            json_schema_grammar(plan.text_schema)
        except SchemaError as exc:
            return f"The emulator cannot constrain the answer to the schema at {plan.text_schema_path}: {exc}."
    return None


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

    async def outcome(messages: list[dict], pass_params: SamplingParams, grammar: str) -> Failed | Finished | None:
        """A whole pass's end, its text not streamed: its `Finished`, or the `Failed` that cut it short."""
        result = None
        async with aclosing(run(messages, pass_params, grammar)) as events:
            async for event in events:
                if isinstance(event, Failed):
                    return event
                if isinstance(event, Finished):
                    result = event
        return result

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
        named = await outcome(_prefilled(prompted, call_prefix), name_params, names)
        if isinstance(named, Failed):
            yield named
            return
        tally.add(named)
        budget -= named.output_tokens
        if named.stop_reason != END_TURN:
            yield finished(named.stop_reason)
            return
        tool = plan.tool(json.loads(named.text))
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
            result = await outcome(_prefilled(prompted, prefix), tried, grammar)
            if isinstance(result, Failed):
                yield result
                return
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
