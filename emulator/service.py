"""The emulator's state and the one path every operation takes to the model.

API modules resolve a model id through `Service.resolve` and get their tokens from `Service.generate`; that
single seam is where scripted responses, fault injection and the invocation log attach, so each applies to every
operation and family alike.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from aiohttp import web

from . import families, testing
from .catalog import Catalog, Entry
from .engine.pool import ModelPool
from .engine.remote import RemoteTextEngine
from .engine.scheduler import TextEngine
from .engine.types import Event, GenerationRequest, SamplingParams, TokenConstraint
from .families.base import TextFamily
from .guardrails.policies import Guardrail, resolve_identifier
from .guardrails.request_path import Guard
from .guardrails.store import GuardrailStore
from .lifecycle import DEFAULT_MAX_QUEUE, Admission, Shutdown
from .protocol.errors import BedrockError, validation
from .tooluse import ToolPlan, tool_turn, with_tools


@dataclass
class Call:
    """What a request asks for, in terms every operation shares (used to match scripted responses and faults)."""

    operation: str
    model_id: str
    entry: Entry
    family: TextFamily
    messages: list[dict] = field(default_factory=list)  # chat messages: {"role", "content": str}
    prompt: str | None = None  # a raw prompt (native completion bodies) instead of messages
    tools: ToolPlan | None = None  # tools the turn may call (tooluse.py runs such turns)
    guard: Guard | None = None  # the request's guardrail: checks the input before, the output after generation

    @property
    def last_user_text(self) -> str:
        if self.prompt is not None:
            return self.prompt
        users = [m["content"] for m in self.messages if m["role"] == "user"]
        return users[-1] if users else ""

    @property
    def turn_index(self) -> int:
        return sum(1 for m in self.messages if m["role"] == "user")


class Service:
    def __init__(self, catalog: Catalog, pool: ModelPool, guardrails: dict[str, Guardrail] | None = None,
                 max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self.catalog = catalog
        self.pool = pool
        self.guardrails = guardrails or {}
        self.created_guardrails = GuardrailStore()  # the control plane's CreateGuardrail ...
        self.admission = Admission(max_queue)  # bounded queue per model: ThrottlingException beyond it
        self.shutdown = Shutdown()  # ends in-flight generations with an error event when the server stops

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
        return self.pool.text_engine(self.catalog.require_local(entry))

    def remote_for(self, entry: Entry) -> RemoteTextEngine | None:
        """The inference engine answering this entry's model, if an engine does (engine/remote.py)."""
        return self.pool.remote_text.get(entry.local) if entry.local else None

    async def input_tokens(self, call: Call) -> int:
        """The input tokens a generation for `call` is billed (CountTokens answers this)."""
        remote = self.remote_for(call.entry)
        if remote is not None:
            return await remote.count_input(call)
        if call.tools is not None:  # the local model reads tools in its system prompt (tooluse.py)
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
        events = testing.around_generation(self, call, lambda: self._model_events(call, params))
        guarded = call.guard.events(events) if call.guard is not None else events
        return self.shutdown.interruptible(guarded)

    async def _model_events(self, call: Call, params: SamplingParams) -> AsyncIterator[Event]:
        remote = self.remote_for(call.entry)
        if remote is not None:  # the engine takes the tools itself, as OpenAI tools
            events = remote.events(call, params)
        elif call.tools is not None:
            events = tool_turn(self, call, params)
        else:
            events = self.model_events(call, params)
        async with aclosing(events):
            async for event in events:
                yield event

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


SERVICE = web.AppKey("service", Service)
