"""`POST /openai/v1/responses`: OpenAI's Create a model response, stateless, as on bedrock-runtime.

AWS: on bedrock-runtime "requests are always synchronous, server-side tools aren't available" (Responses API
page). The emulator keeps nothing between requests, so `previous_response_id` gets OpenAI's "not found" error,
`background` and `conversation` are refused, and the reply says `store: false`.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing

from aiohttp import web

from ...chat.prompts import openai_messages
from ...engine.types import (CONTEXT_EXCEEDED, MAX_TOKENS, Failed, Finished, TextDelta, ToolInputDelta, ToolUse,
                             ToolUseStart)
from ...families.call import Call
from ...service import SERVICE, Service
from ..common import json_response, model_failure
from . import common
from .errors import OpenAIError, error_body, invalid
from .protocol import FunctionCallItem, MessageItem, OutputText, ResponseObject, ResponsesRequest, ResponseUsage, dump
from .sse import SSEWriter

OPERATION = "OpenAIResponses"
_INCOMPLETE = {MAX_TOKENS: "max_output_tokens", CONTEXT_EXCEEDED: "max_output_tokens",
               "guardrail_intervened": "content_filter", "content_filtered": "content_filter"}
_ROLES = ("user", "system", "developer", "assistant")


def _missing(param: str) -> OpenAIError:
    return invalid(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _text_of(content, param: str) -> list[dict]:
    """A message's content (a string or input/output parts) as Chat Completions parts."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise invalid(f"Invalid type for '{param}': expected a string or an array of content parts.", param,
                      "invalid_type")
    parts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            if not isinstance(part.get("text"), str):
                raise _missing(f"{param}[{j}].text")
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal":
            parts.append({"type": "text", "text": str(part.get("refusal", ""))})
        elif kind == "input_image":
            parts.append({"type": "image_url", "image_url": {"url": part.get("image_url") or part.get("file_id")}})
        elif kind == "input_file":
            parts.append({"type": "text", "text": f"[file {part.get('filename') or part.get('file_id') or ''}]".strip()})
        else:
            raise invalid(f"Invalid value: '{kind}'. Supported values are: 'input_text', 'input_image', "
                          "'input_file', 'output_text' and 'refusal'.", f"{param}[{j}].type")
    return parts


def chat_messages(req: ResponsesRequest) -> list[dict]:
    """`instructions` and `input` as Chat Completions messages (tool calls and their outputs included)."""
    messages: list[dict] = []
    if req.instructions:
        messages.append({"role": "developer", "content": req.instructions})
    items = [{"role": "user", "content": req.input}] if isinstance(req.input, str) else req.input or []
    called: set[str] = set()
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            if item.get("role") not in _ROLES:
                raise invalid(f"Invalid value: '{item.get('role')}'. Supported values are: 'user', 'system', "
                              "'developer' and 'assistant'.", f"{where}.role")
            if "content" not in item:
                raise _missing(f"{where}.content")
            messages.append({"role": item["role"], "content": _text_of(item["content"], f"{where}.content")})
        elif kind == "function_call":
            for key in ("call_id", "name", "arguments"):
                if not isinstance(item.get(key), str):
                    raise _missing(f"{where}.{key}")
            tool_call = {"id": item["call_id"], "type": "function",
                         "function": {"name": item["name"], "arguments": item["arguments"]}}
            called.add(item["call_id"])
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(tool_call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [tool_call]})
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise _missing(f"{where}.call_id")
            if item["call_id"] not in called:
                raise invalid(f"No tool call found for function call output with call_id {item['call_id']}.", "input")
            output = item.get("output", "")
            text = output if isinstance(output, str) else "\n".join(
                p["text"] for p in _text_of(output, f"{where}.output") if p["type"] == "text")
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
        elif kind == "reasoning":
            continue  # the local model has no reasoning to continue
        elif kind == "item_reference":
            raise invalid("Item references need stored responses, and this endpoint stores none: send the item "
                          "itself.", f"{where}.type")
        else:
            raise invalid(f"Invalid value: '{kind}'. Supported values are: 'message', 'function_call', "
                          "'function_call_output' and 'reasoning'.", f"{where}.type")
    if not any(m["role"] in ("user", "tool") for m in messages):
        raise _missing("input")
    return messages


def _tool_plan(req: ResponsesRequest, messages: list[dict]):
    specs = []
    for i, tool in enumerate(req.tools or []):
        if tool.get("type") != "function":
            raise invalid(f"Tool type '{tool.get('type')}' isn't supported here: server-side tools aren't available "
                          "on the bedrock-runtime endpoint.", f"tools[{i}].type", "unsupported_value")
        if not isinstance(tool.get("name"), str):
            raise _missing(f"tools[{i}].name")
        specs.append(common.FunctionSpec(tool["name"], tool.get("description") or "", tool.get("parameters"),
                                         f"tools[{i}].parameters"))
    choice, forced = req.tool_choice, None
    if isinstance(choice, dict):
        if choice.get("type") != "function" or not isinstance(choice.get("name"), str):
            raise invalid("Invalid value for 'tool_choice': only 'auto', 'none', 'required' and "
                          "{\"type\": \"function\", \"name\": ...} are supported here.", "tool_choice")
        choice, forced = "function", choice["name"]
    text_schema = None
    fmt = req.text.format if req.text is not None else None
    if fmt is not None and fmt.type == "json_object":
        texts = [p["text"] for m in messages for p in (m["content"] if isinstance(m["content"], list) else
                 [{"text": m["content"] or ""}]) if p.get("text")]
        if not common.mentions_json(texts):
            raise invalid("Response input messages must contain the word 'json' in some form to use 'text.format' "
                          "of type 'json_object'.", "input", None)
        text_schema = {"type": "object"}
    elif fmt is not None and fmt.type == "json_schema":
        if fmt.name is None:
            raise _missing("text.format.name")
        text_schema = common.checked_schema(fmt.schema_, fmt.name, "text.format.schema")
    after_results = bool(messages) and messages[-1]["role"] == "tool"
    return common.plan(specs, choice, forced, after_results, text_schema, "text.format.schema")


def _prepare(service: Service, body: dict) -> tuple[ResponsesRequest, Call, object]:
    req = common.parse(ResponsesRequest, body)
    if req.previous_response_id is not None:
        raise invalid(f"Previous response with id '{req.previous_response_id}' not found.", "previous_response_id",
                      "previous_response_not_found")
    if req.background:
        raise invalid("Background mode isn't available on the bedrock-runtime endpoint: requests are always "
                      "synchronous.", "background", "unsupported_value")
    if req.conversation is not None:
        raise invalid("Conversations need stored state, and this endpoint stores none: send the whole conversation "
                      "in 'input'.", "conversation", "unsupported_parameter")
    entry, family = common.resolve(service, req.model)
    chat = chat_messages(req)
    tools = _tool_plan(req, chat)
    params = common.sampling(entry, req.max_output_tokens, "max_output_tokens", req.temperature, req.top_p, [], None)
    return req, Call(OPERATION, req.model, entry, family, openai_messages(chat), tools=tools), params


class _Reply:
    """The response object as it grows (the stream's snapshots and the final reply are the same object)."""

    def __init__(self, req: ResponsesRequest, body: dict) -> None:
        tools = [{"type": "function", "name": t["name"], "description": t.get("description"),
                  "parameters": t.get("parameters"), "strict": t.get("strict", True)} for t in req.tools or []]
        self.object = ResponseObject(
            id=common.new_id("resp_"), created_at=int(time.time()), status="in_progress",
            instructions=req.instructions, max_output_tokens=req.max_output_tokens, model=req.model,
            parallel_tool_calls=True if req.parallel_tool_calls is None else req.parallel_tool_calls,
            reasoning={"effort": req.reasoning.effort if req.reasoning else None,
                       "summary": req.reasoning.summary if req.reasoning else None},
            temperature=1.0 if req.temperature is None else req.temperature,
            top_p=1.0 if req.top_p is None else req.top_p,
            text=body.get("text") or {"format": {"type": "text"}},
            tool_choice=req.tool_choice if req.tool_choice is not None else "auto", tools=tools,
            truncation=req.truncation or "disabled", user=req.user, metadata=req.metadata or {})
        if isinstance(self.object.text, dict) and "format" not in self.object.text:
            self.object.text = {**self.object.text, "format": {"type": "text"}}

    def finish(self, result: Finished) -> None:
        reason = _INCOMPLETE.get(result.stop_reason)
        self.object.status = "incomplete" if reason else "completed"
        self.object.incomplete_details = {"reason": reason} if reason else None
        self.object.usage = ResponseUsage.of(result.input_tokens, result.output_tokens)

    @property
    def done_status(self) -> str:
        return "incomplete" if self.object.status == "incomplete" else "completed"


async def create(request: web.Request, body: dict) -> web.StreamResponse:
    service: Service = request.app[SERVICE]
    # Parsing, conversation rendering and the tool plan take time that grows with the body: off the event loop.
    req, call, params = await asyncio.to_thread(_prepare, service, body)
    reply = _Reply(req, body)
    if req.stream:
        return await _stream(request, service, call, params, reply)
    [outcome] = await common.outcomes(service, call, params)
    reply.finish(outcome.result)
    status = reply.done_status
    if outcome.text or not outcome.calls:
        reply.object.output.append(MessageItem(id=common.new_id("msg_"), status=status,
                                               content=[OutputText(text=outcome.text)]))
    for c in outcome.calls:
        reply.object.output.append(FunctionCallItem(id=common.new_id("fc_"), call_id=c.call_id, name=c.name,
                                                    arguments=c.arguments, status="completed"))
    return json_response(dump(reply.object))


async def _stream(request: web.Request, service: Service, call: Call, params, reply: _Reply) -> web.StreamResponse:
    sequence = 0

    async def send(kind: str, **fields) -> None:
        nonlocal sequence
        await sse.send({"type": kind, **fields, "sequence_number": sequence}, kind)
        sequence += 1

    def snapshot() -> dict:
        return dump(reply.object)

    async with aclosing(service.generate(call, params)) as events:
        event = await anext(events)
        if isinstance(event, Failed):  # before the first event, a failure is an ordinary HTTP error
            raise model_failure(event.error)
        sse = SSEWriter(request)

        def error_event(error) -> tuple[dict, str]:
            nonlocal sequence
            body = error_body(error)
            payload = {"type": "error", "code": body["code"], "message": body["message"], "param": body["param"],
                       "sequence_number": sequence}
            sequence += 1
            return payload, "error"

        sse.error_event = error_event
        await send("response.created", response=snapshot())
        await send("response.in_progress", response=snapshot())
        text_item: MessageItem | None = None
        call_item: FunctionCallItem | None = None

        async def close_text(status: str) -> None:
            nonlocal text_item
            if text_item is None:
                return
            index = reply.object.output.index(text_item)
            part = text_item.content[0]
            await send("response.output_text.done", item_id=text_item.id, output_index=index, content_index=0,
                       text=part.text, logprobs=[])
            await send("response.content_part.done", item_id=text_item.id, output_index=index, content_index=0,
                       part=dump(part))
            text_item.status = status
            await send("response.output_item.done", output_index=index, item=dump(text_item))
            text_item = None

        while True:
            if isinstance(event, Failed):
                raise model_failure(event.error)  # written into the stream by the dispatcher
            if isinstance(event, TextDelta):
                if text_item is None:
                    text_item = MessageItem(id=common.new_id("msg_"), status="in_progress", content=[])
                    reply.object.output.append(text_item)
                    index = len(reply.object.output) - 1
                    await send("response.output_item.added", output_index=index, item=dump(text_item))
                    text_item.content.append(OutputText(text=""))
                    await send("response.content_part.added", item_id=text_item.id, output_index=index,
                               content_index=0, part=dump(text_item.content[0]))
                text_item.content[0].text += event.text
                await send("response.output_text.delta", item_id=text_item.id,
                           output_index=reply.object.output.index(text_item), content_index=0, delta=event.text,
                           logprobs=[])
            elif isinstance(event, (ToolUseStart, ToolUse)) and (call_item is None
                                                                 or call_item.call_id != event.tool_use_id):
                await close_text("completed")
                call_item = FunctionCallItem(id=common.new_id("fc_"), call_id=event.tool_use_id, name=event.name,
                                             arguments="", status="in_progress")
                reply.object.output.append(call_item)
                await send("response.output_item.added", output_index=len(reply.object.output) - 1,
                           item=dump(call_item))
                if isinstance(event, ToolUse):  # a call that came whole: its arguments in one delta
                    await _arguments(send, reply, call_item, common.arguments_text(event, []))
            if isinstance(event, ToolInputDelta) and call_item is not None:
                await _arguments(send, reply, call_item, event.json)
            elif isinstance(event, ToolUse) and call_item is not None:
                index = reply.object.output.index(call_item)
                await send("response.function_call_arguments.done", item_id=call_item.id, output_index=index,
                           name=call_item.name, arguments=call_item.arguments)
                call_item.status = "completed"
                await send("response.output_item.done", output_index=index, item=dump(call_item))
            elif isinstance(event, Finished):
                reply.finish(event)
                if text_item is None and not reply.object.output:  # an empty answer is still one (empty) message
                    text_item = MessageItem(id=common.new_id("msg_"), status="in_progress", content=[OutputText(text="")])
                    reply.object.output.append(text_item)
                    await send("response.output_item.added", output_index=0,
                               item=dump(text_item.model_copy(update={"content": []})))
                    await send("response.content_part.added", item_id=text_item.id, output_index=0, content_index=0,
                               part=dump(text_item.content[0]))
                await close_text(reply.done_status)
                kind = "response.incomplete" if reply.object.status == "incomplete" else "response.completed"
                await send(kind, response=snapshot())
                return await sse.finish()
            event = await anext(events)


async def _arguments(send, reply: _Reply, item: FunctionCallItem, fragment: str) -> None:
    item.arguments += fragment
    await send("response.function_call_arguments.delta", item_id=item.id,
               output_index=reply.object.output.index(item), delta=fragment)

