"""InvokeModel and InvokeModelWithResponseStream: each family's native body in, its native reply out.

Text families generate through `Service.generate` (the seam scripted responses and faults hook into); each
`TextDelta` is written as a native chunk the moment it is produced, and Bedrock's
`amazon-bedrock-invocationMetrics` rides on the last chunk. Embedding and image families answer InvokeModel only.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from dataclasses import replace

from aiohttp import web

from .. import families
from ..catalog import Entry
from ..engine.remote import RemoteEmbeddingModel
from ..engine.types import Event, Failed, Finished, SamplingParams, TextDelta, ToolInputDelta, ToolUse, ToolUseStart
from ..families.base import Family, NativeRequest, TextFamily
from ..families.call import Call
from ..families.embeddings import Embedded, EmbeddingFamily
from ..families.images import ImageFamily
from ..guardrails.request_path import Guard
from ..protocol import bounds
from ..protocol.errors import malformed_native, validation
from ..protocol.reply import JsonReply, StreamReply
from ..protocol.streaming import STREAM_TAP, event_stream
from ..service import SERVICE, Service
from .common import Stopwatch, json_response, model_failure, streamed
from .converse_input import check_project
from .guarded import native_guard, native_input
from .registry import operation

log = logging.getLogger("emulator.invoke")

# Media types that mean "JSON" on the way in (clients send none, JSON, octet-stream or a wildcard) and out.
_BODY_TYPES = {"application/json", "application/octet-stream", "*/*", "application/*"}
_ECHOED = ("X-Amzn-Bedrock-PerformanceConfig-Latency", "X-Amzn-Bedrock-Service-Tier")


def _media_types(value: str) -> list[str]:
    return [part.split(";")[0].strip().lower() for part in value.split(",") if part.strip()]


def check_envelope(params: dict) -> None:
    """What the service model cannot say about the header members: the project, the body's media types."""
    check_project(params.get("projectIdentifier"), params["modelId"])
    content_type = params.get("contentType")
    if content_type and not set(_media_types(content_type)) & _BODY_TYPES:
        raise validation("The provided Content Type is invalid or not supported for this model")
    accept = params.get("accept")
    if accept and not set(_media_types(accept)) & _BODY_TYPES:
        raise validation("The provided Accept Type is invalid or not supported for this model")


def native_body(raw: bytes) -> dict:
    """The model's JSON body; anything else is the validator's `Malformed input request`."""
    try:
        body = bounds.loads(raw)
    except bounds.UnsafeJson as exc:
        raise malformed_native(f"#: the request body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        found = "JSONArray" if isinstance(body, list) else type(body).__name__
        raise malformed_native(f"#: expected type: JSONObject, found: {found}")
    return body


def text_call(
    service: Service, operation_name: str, model_id: str, entry: Entry, family: TextFamily, body: dict, streaming: bool
) -> tuple[Call, SamplingParams]:
    """Validate a text family's native body and build the generation call it asks for."""
    try:
        family = family.variant(body, model_id)
        body = family.canonical(body)
        family.validate(body)
        family.check_invocation(body, model_id, streaming)
        if streaming and family.choices(body) > 1:
            raise validation("The emulator streams one generation per request; ask for a single generation to stream.")
        prompt = family.prompt(body)
        params = family.sampling(body, entry)
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, OverflowError) as exc:
        # A body the family's schema let through but its reader cannot take: malformed input, never a 500.
        log.warning("native %s body refused by its reader: %r", family.name, exc)
        raise malformed_native("#: the body does not fit the model's request format") from None
    return Call(operation_name, model_id, entry, family, prompt.messages, prompt.text, family.tool_plan(body)), params


def _headers(request: web.Request, extra: dict[str, int]) -> dict[str, str]:
    headers = {name: request.headers[name] for name in _ECHOED if name in request.headers}
    return {**headers, **{name: str(value) for name, value in extra.items()}}


def _token_headers(input_tokens: int, output_tokens: int, latency_ms: int, family: TextFamily | None = None) -> dict:
    headers = {
        "X-Amzn-Bedrock-Input-Token-Count": input_tokens,
        "X-Amzn-Bedrock-Output-Token-Count": output_tokens,
        "X-Amzn-Bedrock-Invocation-Latency": latency_ms,
    }
    if family is not None and "cacheReadInputTokenCount" in family.metrics_extra:
        headers["X-Amzn-Bedrock-Cache-Read-Input-Token-Count"] = family.metrics_extra["cacheReadInputTokenCount"]
        headers["X-Amzn-Bedrock-Cache-Write-Input-Token-Count"] = family.metrics_extra["cacheWriteInputTokenCount"]
    return headers


async def _finished(service: Service, call: Call, params: SamplingParams) -> Finished:
    uses: list[ToolUse] = []
    async with aclosing(service.generate(call, params)) as events:
        async for event in events:
            if isinstance(event, Failed):
                raise model_failure(event.error)
            if isinstance(event, ToolUse):
                uses.append(event)
            if isinstance(event, Finished):
                return replace(event, tool_uses=tuple(uses))
    raise model_failure(RuntimeError("generation ended without a result"))


async def _resolve(request: web.Request, params: dict, operation_name: str) -> tuple[Service, str, Entry, Family, dict]:
    service: Service = request.app[SERVICE]
    check_envelope(params)
    entry = service.catalog.lookup(params["modelId"])
    family = families.get(entry.family)
    if operation_name == "InvokeModelWithResponseStream" and not family.streams:
        raise validation("The model is unsupported for streaming.")
    body = native_body(await request.read())
    return service, params["modelId"], entry, family, body


@operation("InvokeModel")
async def invoke_model(request: web.Request, params: dict) -> JsonReply:
    clock = Stopwatch()
    service, model_id, entry, family, body = await _resolve(request, params, "InvokeModel")
    guard = native_guard(request, service, body)
    reply, headers = await invoke_native(service, model_id, entry, family, body, request["request_id"], clock, guard)
    return json_response(reply, _headers(request, headers))


async def invoke_native(
    service: Service, model_id: str, entry: Entry, family: Family, body: dict, request_id: str, clock: Stopwatch,
    guard: Guard | None = None,
) -> tuple[dict, dict[str, int]]:
    """One native body answered whole: the reply body and its token/latency headers (InvokeModel, async jobs)."""
    if isinstance(family, EmbeddingFamily):
        reply, input_tokens = await _embed(service, request_id, entry, family, body)
        return reply, _token_headers(input_tokens, 0, clock.ms)
    if isinstance(family, ImageFamily):
        family.validate(body)
        reply = await asyncio.to_thread(family.render, body)  # PNG encoding is CPU work: off the loop
        return reply, {"X-Amzn-Bedrock-Invocation-Latency": clock.ms}
    assert isinstance(family, TextFamily)
    call, params = text_call(service, "InvokeModel", model_id, entry, family, body, streaming=False)
    count = call.family.choices(body)
    if guard is not None:
        native_input(guard, call, count)
        call.guard = guard
    results = await asyncio.gather(*(_finished(service, call, params) for _ in range(count)))
    answered = NativeRequest(model_id, body, request_id, input_tokens=results[0].input_tokens, latency_ms=clock.ms)
    reply = call.family.native_responses(list(results), model_id, answered)
    if guard is not None:
        reply.update(guard.native_fields())
    output_tokens = sum(r.output_tokens for r in results)
    return reply, _token_headers(results[0].input_tokens, output_tokens, clock.ms, call.family)


async def _embed(service: Service, request_id: str, entry: Entry, family: EmbeddingFamily, body: dict) -> tuple[dict, int]:
    family.validate(body)
    wanted = family.request(body, entry)
    model = service.embedding_model(service.catalog.require_local(entry))
    if isinstance(model, RemoteEmbeddingModel):  # the engine counts and embeds in one request per text
        native, counts = await model.embed_counted(wanted.texts)
        family.check_lengths(wanted, counts, model.window)
        return family.reply(wanted, Embedded(native, counts), request_id), sum(counts)
    counts = await asyncio.to_thread(lambda: [model.count_tokens(text) for text in wanted.texts])
    family.check_lengths(wanted, counts, model.window)
    vectors = await model.embed(wanted.texts, normalize=False, keep=wanted.keep)
    # Projection (a QR decomposition the first time a size is asked for) and quantisation: off the loop too.
    reply = await asyncio.to_thread(family.reply, wanted, Embedded(vectors.numpy(), counts), request_id)
    return reply, sum(counts)


class _NativeChunks:
    """A family's native chunks as `chunk` events, with Bedrock's metrics merged into the last one."""

    def __init__(self, family: TextFamily, request: NativeRequest, clock: Stopwatch, guard: Guard | None = None) -> None:
        self.family = family
        self.guard = guard
        self.request = request
        self.clock = clock
        self.first_byte_ms: int | None = None

    def events(self, chunks: list[dict], metrics: dict | None = None) -> Iterator[tuple[str, dict]]:
        for i, chunk in enumerate(chunks):
            if metrics is not None and i == len(chunks) - 1:
                chunk = {**chunk, "amazon-bedrock-invocationMetrics": metrics}
            if self.guard is not None:  # the action on every chunk, the trace on the last
                chunk = {**chunk, **self.guard.chunk_fields(metrics is not None and i == len(chunks) - 1)}
            if self.first_byte_ms is None:
                self.first_byte_ms = self.clock.ms
            data = json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode()
            yield "chunk", {"bytes": base64.b64encode(data).decode()}

    def start(self) -> Iterator[tuple[str, dict]]:
        return self.events(self.family.stream_start(self.request))

    def delta(self, text: str) -> Iterator[tuple[str, dict]]:
        yield from self.events(self.family.stream_delta(self.request, text))
        self.request.deltas += 1

    def end(self, result: Finished) -> Iterator[tuple[str, dict]]:
        metrics = {
            "inputTokenCount": result.input_tokens,
            "outputTokenCount": result.output_tokens,
            "invocationLatency": self.clock.ms,
            "firstByteLatency": self.first_byte_ms if self.first_byte_ms is not None else self.clock.ms,
            **self.family.metrics_extra,
        }
        return self.events(self.family.stream_end(self.request, result), metrics)


@operation("InvokeModelWithResponseStream")
async def invoke_model_with_response_stream(request: web.Request, params: dict) -> StreamReply:
    clock = Stopwatch()
    operation_name = "InvokeModelWithResponseStream"
    service, model_id, entry, family, body = await _resolve(request, params, operation_name)
    assert isinstance(family, TextFamily)  # every non-text family answers `streams = False` above
    guard = native_guard(request, service, body)
    call, params = text_call(service, operation_name, model_id, entry, family, body, streaming=True)
    if guard is not None:
        native_input(guard, call)
        call.guard = guard
    answered = NativeRequest(model_id, body, request["request_id"], input_tokens=await service.input_tokens(call))
    native = _NativeChunks(call.family, answered, clock, guard)
    headers = _headers(request, {"X-Amzn-Bedrock-Content-Type": "application/json"})
    events = _native_events(service.generate(call, params), call, native)
    return await event_stream(events, headers, tap=request.get(STREAM_TAP))


async def _native_events(generation: AsyncIterator[Event], call: Call, native: _NativeChunks) -> AsyncIterator[tuple[str, dict]]:
    uses: list[ToolUse] = []
    # aclosing: however the stream ends (an error, or a client that went away), the generation stops now.
    async with aclosing(generation):
        started = False
        async for event in streamed(generation):  # a failure before the first event is an ordinary HTTP error
            if not started:
                started = True
                for item in native.start():
                    yield item
            if isinstance(event, TextDelta):
                for item in native.delta(event.text):
                    yield item
            elif isinstance(event, (ToolUseStart, ToolInputDelta, ToolUse)):
                if isinstance(event, ToolUse):
                    uses.append(event)
                for item in native.events(call.family.stream_tool(native.request, event)):
                    yield item
            elif isinstance(event, Finished):
                for item in native.end(replace(event, tool_uses=tuple(uses))):
                    yield item
                return
