"""The emulator's state and the one path every operation takes to the model.

API modules resolve a model id through `Service.resolve` and get their tokens from `Service.generate`; that
single seam is where scripted responses, fault injection and the invocation log attach, so each applies to every
operation and family alike.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import replace

from aiohttp import web

from . import families
from .catalog import Catalog, Entry
from .engine.embeddings import EmbeddingModel
from .engine.pool import ENGINE_SERVED, LOAD_FAILED, WRONG_KIND, ModelPool, ModelUnavailable
from .engine.remote import RemoteEmbeddingModel, RemoteTextEngine
from .engine.scheduler import TextEngine
from .engine.types import Event, GenerationRequest, SamplingParams, TokenConstraint
from .families.base import TextFamily
from .families.call import Call
from .guardrails.policies import Guardrail, resolve_identifier
from .guardrails.store import GuardrailStore
from .lifecycle import DEFAULT_MAX_QUEUE, Admission, Shutdown
from .protocol.errors import BedrockError, unsupported_model, validation
from .tools.markup import with_tools
from .tools.turn import TurnModel, tool_turn


class Service:
    def __init__(self, catalog: Catalog, pool: ModelPool, guardrails: dict[str, Guardrail] | None = None,
                 max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self.catalog = catalog
        self.pool = pool
        self.guardrails = guardrails or {}
        self.created_guardrails = GuardrailStore()  # the control plane's CreateGuardrail ...
        self.admission = Admission(max_queue)  # bounded queue per model: ThrottlingException beyond it
        self.shutdown = Shutdown()  # ends in-flight generations with an error event when the server stops
        # The testing seam: the test kit (testing/, which sits above this module) installs its scripted responses,
        # faults and invocation log here; without it a call gets the model's events as they are.
        self.around_generation: AroundGeneration = _as_is

    def guardrail(self, identifier: str, version: str) -> Guardrail:
        """A guardrail by id or ARN: from the guardrails file (every version shares its policies), else one created
        through the control plane (DRAFT or one of its numbered versions)."""
        found = self.guardrails.get(resolve_identifier(identifier))
        if found is not None:
            return found
        created = self.created_guardrails.find(identifier)
        if created is not None and (version == "DRAFT" or version in created.versions):
            return created.version(version).policies
        raise BedrockError(
            "ResourceNotFoundException",
            f"The guardrail identifier or version provided in the request does not exist: {identifier} ({version}).",
        )

    def resolve_text(self, model_id: str) -> tuple[Entry, TextFamily]:
        entry = self.catalog.lookup(model_id)
        return entry, families.text_family(entry.family)

    def engine_for(self, entry: Entry) -> TextEngine:
        try:
            return self.pool.text_engine(self.catalog.require_local(entry))
        except ModelUnavailable as exc:
            raise _unavailable(exc, "text or chat") from None

    def embedding_model(self, name: str) -> EmbeddingModel | RemoteEmbeddingModel:
        """The embedding model the catalogue's local model `name` runs on."""
        try:
            return self.pool.embedding_model(name)
        except ModelUnavailable as exc:
            raise _unavailable(exc, "embedding") from None

    def remote_for(self, entry: Entry) -> RemoteTextEngine | None:
        """The inference engine answering this entry's model, if an engine does (engine/remote.py)."""
        return self.pool.remote_text.get(entry.local) if entry.local else None

    async def input_tokens(self, call: Call) -> int:
        """The input tokens a generation for `call` is billed (CountTokens answers this)."""
        remote = self.remote_for(call.entry)
        if remote is not None:
            return await remote.count_input(call)
        if call.tools is not None:  # the local model reads tools in its system prompt (tools/markup.py)
            call = replace(call, tools=None, messages=with_tools(call.messages, call.tools))
        return len(await self.prompt_ids(call))

    async def prompt_ids(self, call: Call) -> tuple[int, ...]:
        """Tokenize the call's prompt with the model's own chat template (long prompts off the event loop)."""
        model = self.engine_for(call.entry).model
        # No token is longer than the longest vocabulary entry, so a prompt with more characters than the context
        # holds tokens of that length cannot fit: refused at once rather than after tokenising megabytes.
        characters = len(call.prompt) if call.prompt is not None else sum(len(m["content"]) for m in call.messages)
        if characters > model.context_length and \
                characters > model.context_length * await asyncio.to_thread(_longest_token, model.tokenizer):
            raise validation("Input is too long for requested model.")
        if call.prompt is not None:
            ids = await model.prompt_ids(None, call.prompt)
        else:
            continue_final = bool(call.messages) and call.messages[-1]["role"] == "assistant"
            ids = await model.prompt_ids(call.messages, continue_final=continue_final)
        if len(ids) >= model.context_length:
            raise validation("Input is too long for requested model.")
        return ids

    def generate(self, call: Call, params: SamplingParams) -> AsyncIterator[Event]:
        """Stream the events of one generation for `call`: a test's scripted response, faults and log apply here.
        Closing the iterator (`contextlib.aclosing`) stops the generation at once."""
        events = self.around_generation(self, call, lambda: self._answer(call, params))
        guarded = call.guard.events(events) if call.guard is not None else events
        return self.shutdown.interruptible(guarded)

    async def _answer(self, call: Call, params: SamplingParams) -> AsyncIterator[Event]:
        """The call's events from whatever answers it: an inference engine, a tool-aware turn, or one pass."""
        remote = self.remote_for(call.entry)
        if remote is not None:  # the engine takes the tools itself, as OpenAI tools
            events = remote.events(call, params)
        elif call.tools is not None:
            events = tool_turn(self._turn_model(call), call.tools, call.messages, call.last_user_text, params)
        else:
            events = self.model_events(call, params)
        async with aclosing(events):
            async for event in events:
                yield event

    def _turn_model(self, call: Call) -> TurnModel:
        """The call's local model as a tool turn sees it: each pass is a call of its own without tools."""
        bare = replace(call, tools=None)

        async def prompt_tokens(messages: list[dict]) -> int:
            return len(await self.prompt_ids(replace(bare, messages=messages)))

        def generate(messages: list[dict], params: SamplingParams, constraint: TokenConstraint | None
                     ) -> AsyncIterator[Event]:
            return self.model_events(replace(bare, messages=messages), params, constraint)

        return TurnModel(self.engine_for(call.entry).model.tokenizer, prompt_tokens, generate)

    async def model_events(
        self, call: Call, params: SamplingParams, constraint: TokenConstraint | None = None
    ) -> AsyncIterator[Event]:
        """One pass of the model over the call's prompt, optionally constrained (e.g. to a JSON schema)."""
        engine = self.engine_for(call.entry)
        if constraint is None and (call.prompt is not None or call.family.completes_text):
            params = replace(params, require_text=True)  # a completion body always gets a continuation
        with self.admission.slot(self.catalog.require_local(call.entry)):
            request = GenerationRequest(await self.prompt_ids(call), params, constraint)
            async for event in engine.stream(request):
                yield event


@functools.lru_cache(maxsize=8)
def _longest_token(tokenizer) -> int:
    """Characters in the longest vocabulary entry (byte-level entries spell one character per byte, so this
    bounds the characters any token decodes to)."""
    return max((len(token) for token in tokenizer.get_vocab()), default=1)


def _unavailable(exc: ModelUnavailable, kind: str) -> BedrockError:
    """A model the pool cannot hand out, in Bedrock's terms."""
    if exc.reason == WRONG_KIND:
        return unsupported_model(kind)
    if exc.reason == LOAD_FAILED:
        return BedrockError("ModelErrorException", f"The local model failed to load: {exc.detail}")
    if exc.reason == ENGINE_SERVED:
        return BedrockError("ModelNotReadyException", exc.detail)
    return BedrockError("ModelNotReadyException")  # still loading


def _as_is(service: Service, call: Call, model_events: Callable[[], AsyncIterator[Event]]) -> AsyncIterator[Event]:
    return model_events()


# (service, call, the model's events) -> the events the caller gets
AroundGeneration = Callable[[Service, Call, Callable[[], AsyncIterator[Event]]], AsyncIterator[Event]]

SERVICE = web.AppKey("service", Service)
