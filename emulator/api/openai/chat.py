"""`POST /openai/v1/chat/completions`: OpenAI's Create chat completion, answered by the local model."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing

from aiohttp import web

from ...chat.prompts import openai_messages
from ...engine.types import (CONTEXT_EXCEEDED, END_TURN, MAX_TOKENS, STOP_SEQUENCE, TOOL_USE, Failed, Finished,
                             TextDelta, ToolInputDelta, ToolUse, ToolUseStart)
from ...families.call import Call
from ...service import SERVICE, Service
from ..common import json_response, model_failure
from . import common
from .errors import error_body, invalid
from .protocol import (ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage, Choice, ChunkChoice,
                       ChunkToolCall, Delta, ReplyFunction, ReplyMessage, ReplyToolCall, Usage, dump)
from .sse import SSEWriter

OPERATION = "OpenAIChatCompletions"
FINISH = {END_TURN: "stop", STOP_SEQUENCE: "stop", MAX_TOKENS: "length", CONTEXT_EXCEEDED: "length",
          TOOL_USE: "tool_calls", "guardrail_intervened": "content_filter", "content_filtered": "content_filter"}


def _unanswered(pending: dict[str, int]) -> Exception:
    return invalid("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                   "'tool_call_id'. The following tool_call_ids did not have response messages: " + ", ".join(pending),
                   f"messages.[{next(iter(pending.values()))}].role", None)


def _check_tool_turns(messages: list[ChatMessage]) -> None:
    """OpenAI's rules: tool messages answer the tool calls of the assistant message just before them, all of them."""
    pending: dict[str, int] = {}  # unanswered call id -> index of the assistant message that made it
    answering = False  # inside the run of tool messages after an assistant message with tool calls
    for i, message in enumerate(messages):
        if message.role == "tool":
            if not answering:
                raise invalid("Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                              "message with 'tool_calls'.", f"messages.[{i}].role", None)
            if message.tool_call_id is None:
                param = f"messages[{i}].tool_call_id"
                raise invalid(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")
            if message.tool_call_id not in pending:
                raise invalid(f"Invalid parameter: 'tool_call_id' of '{message.tool_call_id}' not found in "
                              "'tool_calls' of previous message.", f"messages.[{i}].tool_call_id", None)
            del pending[message.tool_call_id]
            continue
        if pending:
            raise _unanswered(pending)
        answering = message.role == "assistant" and bool(message.tool_calls)
        pending = {call.id: i for call in message.tool_calls or []} if answering else {}
    if pending:
        raise _unanswered(pending)


def _texts(messages: list[ChatMessage]) -> list[str]:
    out = []
    for message in messages:
        if isinstance(message.content, str):
            out.append(message.content)
        else:
            out += [part.text for part in message.content or [] if part.text]
    return out


def _tool_plan(req: ChatCompletionRequest):
    text_schema = None
    fmt = req.response_format
    if fmt is not None and fmt.type == "json_object":
        if not common.mentions_json(_texts(req.messages)):
            raise invalid("'messages' must contain the word 'json' in some form, to use 'response_format' of type "
                          "'json_object'.", "messages", None)
        text_schema = {"type": "object"}
    elif fmt is not None and fmt.type == "json_schema":
        if fmt.json_schema is None:
            raise invalid("Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema",
                          "missing_required_parameter")
        text_schema = common.checked_schema(fmt.json_schema.schema_, fmt.json_schema.name,
                                            "response_format.json_schema.schema")
    specs = [common.FunctionSpec(t.function.name, t.function.description or "", t.function.parameters,
                                 f"tools[{i}].function.parameters") for i, t in enumerate(req.tools or [])]
    choice, forced = req.tool_choice, None
    if choice is not None and not isinstance(choice, str):
        choice, forced = "function", choice.function.name
    after_results = req.messages[-1].role == "tool"
    return common.plan(specs, choice, forced, after_results, text_schema, "response_format.json_schema.schema")


def _prepare(service: Service, body: dict) -> tuple[ChatCompletionRequest, Call, object]:
    req = common.parse(ChatCompletionRequest, body)
    entry, family = common.resolve(service, req.model)
    if req.stream_options is not None and not req.stream:
        raise invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options",
                      None)
    _check_tool_turns(req.messages)
    tools = _tool_plan(req)
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stop) > 4:
        raise invalid(f"Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array "
                      f"with length {len(stop)} instead.", "stop", "array_above_max_length")
    param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
    params = common.sampling(entry, req.max_completion_tokens or req.max_tokens, param, req.temperature, req.top_p,
                             stop, req.seed)
    messages = openai_messages([m.model_dump(mode="json", exclude_none=True) for m in req.messages])
    return req, Call(OPERATION, req.model, entry, family, messages, tools=tools), params


def _finish_reason(outcome: common.Outcome) -> str:
    return "tool_calls" if outcome.calls else FINISH.get(outcome.result.stop_reason, "stop")


async def create(request: web.Request, body: dict) -> web.StreamResponse:
    service: Service = request.app[SERVICE]
    # Parsing, conversation rendering and the tool plan take time that grows with the body: off the event loop.
    req, call, params = await asyncio.to_thread(_prepare, service, body)
    n = req.n or 1
    completion_id, created = common.new_id("chatcmpl-", 16), int(time.time())
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return await _stream(request, service, call, params, n, completion_id, created, include_usage)
    outcomes = await common.outcomes(service, call, params, n)
    choices = []
    for i, outcome in enumerate(outcomes):
        calls = [ReplyToolCall(id=c.call_id, function=ReplyFunction(name=c.name, arguments=c.arguments))
                 for c in outcome.calls]
        message = ReplyMessage(content=outcome.text or (None if calls else ""), tool_calls=calls or None)
        choices.append(Choice(index=i, message=message, finish_reason=_finish_reason(outcome)))
    usage = Usage.of(outcomes[0].result.input_tokens, sum(o.result.output_tokens for o in outcomes))
    reply = ChatCompletion(id=completion_id, created=created, model=req.model, choices=choices, usage=usage)
    return json_response(dump(reply))


class _Choices:
    """Per choice: which tool call is open (its index in `tool_calls`) and how many it has made."""

    def __init__(self, n: int) -> None:
        self.calls = [0] * n
        self.open: list[str | None] = [None] * n


async def _stream(request: web.Request, service: Service, call: Call, params, n: int, completion_id: str,
                  created: int, include_usage: bool) -> web.StreamResponse:
    def chunk(choices: list[ChunkChoice], usage: Usage | None = None) -> dict:
        return dump(ChatCompletionChunk(id=completion_id, created=created, model=call.model_id, choices=choices,
                                        usage=usage))

    def tool_delta(index: int, call_index: int, **fields) -> dict:
        return chunk([ChunkChoice(index=index, delta=Delta(tool_calls=[ChunkToolCall(index=call_index, **fields)]))])

    async with aclosing(common.generations(service, call, params, n)) as events:
        # Everything that can fail before the first token is still an ordinary HTTP error.
        index, event = await anext(events)
        if isinstance(event, Failed):
            raise model_failure(event.error)
        sse = SSEWriter(request)
        sse.error_event = lambda error: ({"error": error_body(error)}, None)
        for i in range(n):
            await sse.send(chunk([ChunkChoice(index=i, delta=Delta(role="assistant", content=""))]))
        state, ended, input_tokens, output_tokens = _Choices(n), 0, 0, 0
        while True:
            if isinstance(event, Failed):
                raise model_failure(event.error)  # written into the stream by the dispatcher
            if isinstance(event, TextDelta):
                await sse.send(chunk([ChunkChoice(index=index, delta=Delta(content=event.text))]))
            elif isinstance(event, ToolUseStart):
                state.open[index] = event.tool_use_id
                await sse.send(tool_delta(index, state.calls[index], id=event.tool_use_id, type="function",
                                          function={"name": event.name, "arguments": ""}))
            elif isinstance(event, ToolInputDelta):
                await sse.send(tool_delta(index, state.calls[index], function={"arguments": event.json}))
            elif isinstance(event, ToolUse):
                if state.open[index] != event.tool_use_id:  # a call that came whole
                    await sse.send(tool_delta(index, state.calls[index], id=event.tool_use_id, type="function",
                                              function={"name": event.name,
                                                        "arguments": common.arguments_text(event, [])}))
                state.open[index] = None
                state.calls[index] += 1
            elif isinstance(event, Finished):
                reason = "tool_calls" if state.calls[index] else FINISH.get(event.stop_reason, "stop")
                await sse.send(chunk([ChunkChoice(index=index, delta=Delta(), finish_reason=reason)]))
                input_tokens = event.input_tokens
                output_tokens += event.output_tokens
                ended += 1
                if ended == n:
                    break
            index, event = await anext(events)
    if include_usage:
        await sse.send(chunk([], Usage.of(input_tokens, output_tokens)))
    await sse.done()
    return await sse.finish()
