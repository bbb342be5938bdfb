"""Which guardrail a model call asks for, and which of its content the guardrail checks.

Converse names it in `guardrailConfig` and narrows the checked content with `guardContent` blocks (AWS's table:
without any guardContent the messages are checked and the system prompt is not; guardContent in the messages
limits the message check to those blocks; guardContent in the system prompt adds those blocks).
InvokeModel names it in the `X-Amzn-Bedrock-Guardrail*` headers; the body's `amazon-bedrock-guardrailConfig`
(removed before the family sees the body) can set `streamProcessingMode` and a `tagSuffix` whose
`<amazon-bedrock-guardrails-guardContent_SUFFIX>` tags narrow the check ("input tagging").
The policies and the stream wrapper live in `emulator/guardrails/request_path.py`.
"""

from __future__ import annotations

import re

import numpy as np
from aiohttp import web

from ..families.call import Call
from ..guardrails.grounding import Embedder, GroundingContext
from ..guardrails.request_path import Guard, GuardSettings
from ..protocol.errors import validation
from ..service import Service

_NATIVE_CONFIG = "amazon-bedrock-guardrailConfig"
_NATIVE_MODES = {"SYNCHRONOUS": "sync", "ASYNCHRONOUS": "async"}


def embedder(service: Service) -> Embedder | None:
    """The local embedding model as a contextual-grounding scorer (None when the catalogue has none)."""
    name = next((n for n, m in service.catalog.spec.local_models.items() if m.kind == "embedding"), None)
    if name is None:
        return None

    async def embed(texts: list[str]) -> np.ndarray:
        return (await service.embedding_model(name).embed(texts, normalize=True)).numpy()

    return embed


def _guard_text(block: dict) -> tuple[str, list[str]] | None:
    text = block.get("guardContent", {}).get("text")
    return (text["text"], text.get("qualifiers") or ["guard_content"]) if text else None


def converse_guard(service: Service, params: dict) -> Guard | None:
    config = params.get("guardrailConfig")
    if not config or not config.get("guardrailIdentifier"):
        return None  # no guardrail named (the emulator has no account-level enforced guardrails)
    if not config.get("guardrailVersion"):
        raise validation("A guardrail version is required when a guardrail identifier is provided.")
    guardrail = service.guardrail(config["guardrailIdentifier"], config["guardrailVersion"])
    checked: list[str] = []
    context = GroundingContext([], [])
    guarded_messages = [g for m in params["messages"] for b in m["content"] if (g := _guard_text(b))]
    guarded_system = [g for b in params.get("system") or [] if (g := _guard_text(b))]
    for text, qualifiers in guarded_system + guarded_messages:
        if "grounding_source" in qualifiers:
            context.sources.append(text)
        if "query" in qualifiers:
            context.queries.append(text)
        if {"guard_content", "query"} & set(qualifiers):
            checked.append(text)
    if not guarded_messages:
        checked += [b["text"] for m in params["messages"] for b in m["content"] if "text" in b]
    settings = GuardSettings(config["guardrailIdentifier"], config["guardrailVersion"],
                             config.get("trace", "disabled"), config.get("streamProcessingMode", "sync"))
    return Guard(guardrail, settings, checked, context, embedder(service))


def native_guard(request: web.Request, service: Service, body: dict) -> Guard | None:
    """The guardrail InvokeModel's headers ask for; takes `amazon-bedrock-guardrailConfig` out of `body`."""
    identifier = request.headers.get("X-Amzn-Bedrock-GuardrailIdentifier")
    version = request.headers.get("X-Amzn-Bedrock-GuardrailVersion")
    config = body.pop(_NATIVE_CONFIG, None)
    if not identifier:
        if config is not None:
            raise validation(f"{_NATIVE_CONFIG} is only allowed when a guardrail is specified "
                             "(X-Amzn-Bedrock-GuardrailIdentifier and X-Amzn-Bedrock-GuardrailVersion).")
        return None
    if not version:
        raise validation("A guardrail version is required when a guardrail identifier is provided.")
    if config is not None and not isinstance(config, dict):
        raise validation(f"{_NATIVE_CONFIG} must be a JSON object.")
    config = config or {}
    mode = config.get("streamProcessingMode", "SYNCHRONOUS")
    if mode not in _NATIVE_MODES:
        raise validation(f"streamProcessingMode must be one of SYNCHRONOUS, ASYNCHRONOUS (got {mode!r}).")
    guardrail = service.guardrail(identifier, version)
    trace = request.headers.get("X-Amzn-Bedrock-Trace", "DISABLED").lower()
    settings = GuardSettings(identifier, version, trace, _NATIVE_MODES[mode], native=True, tag_suffix=config.get("tagSuffix"))
    return Guard(guardrail, settings, [])


def native_input(guard: Guard, call: Call, generations: int = 1) -> None:
    """The prompt text the guardrail checks: tagged sections when input tags are used, else all of it."""
    if generations > 1:
        raise validation("When you use a guardrail, you can only request one generation.")
    texts = [call.prompt] if call.prompt is not None else [m["content"] for m in call.messages]
    suffix = guard.settings.tag_suffix
    if suffix:
        tag = re.escape(f"amazon-bedrock-guardrails-guardContent_{suffix}")
        tagged = [m.group(1) for text in texts for m in re.finditer(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL)]
        if tagged:
            texts = tagged
    guard.input_texts = texts
