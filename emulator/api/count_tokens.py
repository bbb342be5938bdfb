"""CountTokens: the input tokens a Converse or InvokeModel request would be billed, counted the same way.

Both forms build the same `Call` their generating operation builds and count it with `Service.input_tokens` (the
model's tokenizer and chat template, or the inference engine's own count), so a count always equals the
`inputTokens` that request reports.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from .. import families
from ..chat.conversation import conversation
from ..engine.remote import RemoteEmbeddingModel
from ..families.base import TextFamily
from ..families.call import Call
from ..families.embeddings import EmbeddingFamily
from ..protocol.errors import validation
from ..protocol.reply import JsonReply
from ..protocol.shapes import decode_blob
from ..service import SERVICE, Service
from ..tools.checks import tool_plan
from .common import json_response
from .invoke import native_body, text_call
from .registry import operation


@operation("CountTokens")
async def count_tokens(request: web.Request, params: dict) -> JsonReply:
    service: Service = request.app[SERVICE]
    model_id = params["modelId"]
    entry = service.catalog.lookup(model_id)
    family = families.get(entry.family)
    source = params["input"]
    if "converse" in source:
        text_family = families.text_family(entry.family)
        messages = conversation(source["converse"])
        # A tool turn is billed for the conversation with its tools (Service.input_tokens counts them).
        call = Call("CountTokens", model_id, entry, text_family, messages, tools=tool_plan(source["converse"]))
        return json_response({"inputTokens": await service.input_tokens(call)})
    body = native_body(decode_blob(source["invokeModel"]["body"]))
    if isinstance(family, TextFamily):
        call, _ = text_call(service, "CountTokens", model_id, entry, family, body, streaming=False)
        return json_response({"inputTokens": await service.input_tokens(call)})
    if isinstance(family, EmbeddingFamily):
        family.validate(body)
        texts = family.request(body, entry).texts
        model = service.embedding_model(service.catalog.require_local(entry))
        if isinstance(model, RemoteEmbeddingModel):
            return json_response({"inputTokens": sum((await model.embed_counted(texts))[1])})
        counts = await asyncio.to_thread(lambda: [model.count_tokens(text) for text in texts])
        return json_response({"inputTokens": sum(counts)})
    raise validation("The provided model doesn't support counting tokens.")
