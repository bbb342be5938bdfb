"""Converse and ConverseStream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from aiohttp import web

from ..chat.conversation import conversation
from ..engine.types import Event, Failed, Finished
from ..families.call import Call
from ..protocol.errors import BedrockError
from ..protocol.reply import JsonReply, StreamReply
from ..protocol.streaming import STREAM_TAP, event_stream
from ..service import SERVICE, Service
from ..tools.blocks import ReplyBlocks, converse_events
from ..tools.checks import tool_plan
from .common import Stopwatch, json_response, model_failure, streamed
from .content_rules import cache_usage, check_media
from .converse_input import check_options, check_pointers, response_fields
from .guarded import converse_guard
from .registry import operation


def _usage(result: Finished, params: dict) -> dict:
    return {
        "inputTokens": result.input_tokens,
        "outputTokens": result.output_tokens,
        "totalTokens": result.input_tokens + result.output_tokens,
        **cache_usage(params),
    }


def _echoed(params: dict) -> dict:
    """performanceConfig and serviceTier come back as the caller sent them."""
    return {key: params[key] for key in ("performanceConfig", "serviceTier") if key in params}


def _prepare(request: web.Request, operation_name: str, params: dict) -> tuple[Service, Call, dict, object]:
    service: Service = request.app[SERVICE]
    additional = params.get("additionalModelRequestFields")
    if additional is not None and not isinstance(additional, dict):  # a Document: any JSON passes the shape check
        raise BedrockError(
            "ValidationException", "The additionalModelRequestFields value must be a JSON object. Reformat it and try again."
        )
    entry, family = service.resolve_text(params["modelId"])
    check_options(params)
    messages = conversation(params)
    check_media(params, family.media)
    tools = tool_plan(params, family.tool_choices)
    check_pointers(params.get("additionalModelResponseFieldPaths"))
    native = family.converse_native(params.get("inferenceConfig") or {}, params.get("additionalModelRequestFields"))
    sampling = family.sampling(native, entry)
    call = Call(operation_name, params["modelId"], entry, family, messages, tools=tools, guard=converse_guard(service, params))
    return service, call, params, sampling


@operation("Converse")
async def converse(request: web.Request, params: dict) -> JsonReply:
    clock = Stopwatch()
    service, call, params, sampling = _prepare(request, "Converse", params)
    result: Finished | None = None
    blocks = ReplyBlocks()
    # aclosing: however the handler ends (an error, or a client that went away), the generation stops now.
    async with aclosing(service.generate(call, sampling)) as events:
        async for event in events:
            if isinstance(event, Failed):
                raise model_failure(event.error)
            if isinstance(event, Finished):
                result = event
            blocks.on(event)
    assert result is not None
    # No text, no text block: Bedrock answers an empty generation (e.g. a stop sequence first) with `content: []`.
    blocks.finish()
    reply = {
        "output": {"message": {"role": "assistant", "content": blocks.content}},
        "stopReason": result.stop_reason,
        "usage": _usage(result, params),
        "metrics": {"latencyMs": clock.ms},
        **_echoed(params),
        **(call.guard.converse_fields() if call.guard else {}),
    }
    if pointers := params.get("additionalModelResponseFieldPaths"):  # the native body only when asked for (ids cost)
        reply["additionalModelResponseFields"] = response_fields(call.family.native_response(result, call.model_id), pointers)
    return json_response(reply)


@operation("ConverseStream")
async def converse_stream(request: web.Request, params: dict) -> StreamReply:
    clock = Stopwatch()
    service, call, params, sampling = _prepare(request, "ConverseStream", params)
    return await event_stream(_stream_events(service.generate(call, sampling), call, params, clock), tap=request.get(STREAM_TAP))


async def _stream_events(
    generation: AsyncIterator[Event], call: Call, params: dict, clock: Stopwatch
) -> AsyncIterator[tuple[str, dict]]:
    # aclosing: however the stream ends (an error, or a client that went away), the generation stops now.
    async with aclosing(generation):
        blocks = ReplyBlocks()  # an empty generation has no block, so no contentBlockStop either
        started = False
        # A failure before the first event is an ordinary HTTP error; after it, a frame of ConverseStream's union
        # (which has no modelTimeoutException member).
        async for event in streamed(generation, timeout_member=False):
            if not started:
                started = True
                yield "messageStart", {"role": "assistant"}
            if isinstance(event, Finished):
                for name, payload in converse_events(blocks.finish()):
                    yield name, payload
                stop = {"stopReason": event.stop_reason}
                if pointers := params.get("additionalModelResponseFieldPaths"):  # the native body only when asked for
                    stop["additionalModelResponseFields"] = response_fields(
                        call.family.native_response(event, call.model_id), pointers
                    )
                yield "messageStop", stop
                guard = call.guard.converse_fields() if call.guard else {}
                yield "metadata", {"usage": _usage(event, params), "metrics": {"latencyMs": clock.ms}, **_echoed(params), **guard}
                return
            for name, payload in converse_events(blocks.on(event)):
                yield name, payload
