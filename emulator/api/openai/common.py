"""What Chat Completions and Responses share: which models these paths serve, request validation, the tool plan
(tools, tool choice, structured output) run by tools/turn.py, sampling, ids, and the generations of one request."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TypeVar

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError as InvalidSchema
from pydantic import BaseModel, ValidationError

from ... import families
from ...catalog import Entry
from ...engine.types import Event, Failed, Finished, SamplingParams, TextDelta, ToolInputDelta, ToolUse, ToolUseStart
from ...families.base import TextFamily, natural_budget
from ...families.call import Call
from ...protocol.errors import BedrockError
from ...service import Service
from ...tools.model import Tool, ToolPlan
from ..common import model_failure
from .errors import OpenAIError, from_validation, invalid

# Catalogue families whose models AWS serves on /openai/v1: "all OpenAI models supported in Amazon Bedrock"
# (AWS, "Invoke a model with the OpenAI Chat Completions API"); the gpt-oss ids are AWS's model card's.
SERVED_FAMILIES = ("openai",)
LISTED_IDS = ("openai.gpt-oss-20b-1:0", "openai.gpt-oss-120b-1:0")
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

R = TypeVar("R", bound=BaseModel)


def parse(model: type[R], body: dict) -> R:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise from_validation(exc) from None


def resolve(service: Service, model: str) -> tuple[Entry, TextFamily]:
    """The catalogue entry for a model these paths serve, or OpenAI's error for one they do not."""
    try:
        entry = service.catalog.lookup(model)
    except BedrockError:
        raise OpenAIError(f"The model `{model}` does not exist or you do not have access to it.", "model",
                          "model_not_found", status=404) from None
    if entry.family not in SERVED_FAMILIES:
        # AWS's wording for a model on the wrong OpenAI-compatible route (its Responses API page).
        raise OpenAIError(f"model `{model}` isn't supported on this route", "model", "model_not_supported")
    return entry, families.text_family(entry.family)


def new_id(prefix: str, size: int = 24) -> str:
    return prefix + secrets.token_hex(size)


def call_id() -> str:
    """A tool call id in OpenAI's form: `call_` and 24 letters or digits."""
    return "call_" + "".join(secrets.choice(_ALNUM) for _ in range(24))


# --- tools and structured output ---------------------------------------------------------------------------

@dataclass(frozen=True)
class FunctionSpec:
    name: str
    description: str
    parameters: dict | None
    path: str  # where its parameters sit in the request, e.g. tools[0].function.parameters


def _checked(spec: FunctionSpec) -> Tool:
    schema = spec.parameters if spec.parameters is not None else {"type": "object", "properties": {}}
    try:
        Draft202012Validator.check_schema(schema)
    except InvalidSchema as exc:
        raise invalid(f"Invalid schema for function '{spec.name}': {exc.message}", spec.path,
                      "invalid_function_parameters") from None
    if schema.get("type", "object") != "object":
        raise invalid(f"Invalid schema for function '{spec.name}': schema must be a JSON Schema of 'type: \"object\"', "
                      f"got 'type: \"{schema.get('type')}\"'.", spec.path, "invalid_function_parameters")
    return Tool(spec.name, spec.description, {"type": "object", **schema}, spec.path)


def checked_schema(schema: dict | None, name: str, param: str) -> dict:
    if schema is None:
        raise invalid(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")
    try:
        Draft202012Validator.check_schema(schema)
    except InvalidSchema as exc:
        raise invalid(f"Invalid schema for response_format '{name}': {exc.message}", param, "invalid_json_schema") from None
    return schema


def plan(specs: list[FunctionSpec], choice: str | None, forced: str | None, after_results: bool,
         text_schema: dict | None, text_path: str) -> ToolPlan | None:
    """The turn's ToolPlan (None: plain text). `choice`: auto | none | required | function (then `forced`)."""
    if not specs:
        if choice is not None and choice != "none":
            raise invalid("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                          "tool_choice")
        if text_schema is None:
            return None
        return ToolPlan((), "none", text_schema=text_schema, text_schema_path=text_path)
    tools = tuple(_checked(spec) for spec in specs)
    names = [t.name for t in tools]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise invalid(f"Invalid 'tools': duplicate function name '{duplicate}'.", "tools")
    if forced is not None and forced not in names:
        raise invalid(f"Invalid value for 'tool_choice': function '{forced}' is not among the tools provided.",
                      "tool_choice")
    kind = {"auto": "auto", "none": "none", "required": "any", "function": "tool", None: "auto"}[choice]
    return ToolPlan(tools, kind, forced, after_results, text_schema, new_id=call_id, text_schema_path=text_path)


def mentions_json(texts: list[str]) -> bool:
    return any("json" in text.lower() for text in texts)


# --- sampling ----------------------------------------------------------------------------------------------

def sampling(entry: Entry, max_tokens: int | None, param: str, temperature: float | None, top_p: float | None,
             stop: list[str], seed: int | None) -> SamplingParams:
    limit = entry.max_output_tokens
    if max_tokens is not None and max_tokens > limit:
        raise invalid(f"{param} is too large: {max_tokens}. This model supports at most {limit} completion tokens, "
                      f"whereas you provided {max_tokens}.", param)
    # No limit (or the model's own): the answer ends naturally within the fallback budget, as on Bedrock's paths.
    natural = max_tokens is None or (max_tokens == limit and limit > natural_budget())
    fallback = natural and limit > natural_budget()
    return SamplingParams(
        max_new_tokens=natural_budget() if fallback else (max_tokens or limit),
        natural_end=natural,
        fallback_budget=fallback,
        temperature=1.0 if temperature is None else float(temperature),
        top_p=1.0 if top_p is None else float(top_p),
        stop_sequences=tuple(stop),
        seed=seed,
    )


# --- generations -------------------------------------------------------------------------------------------

async def generations(service: Service, call: Call, params: SamplingParams, n: int = 1
                      ) -> AsyncIterator[tuple[int, Event]]:
    """The events of `n` independent generations for one call, each tagged with its choice index, as they come.
    Closing this iterator stops every generation still running."""
    if n == 1:
        async with aclosing(service.generate(call, params)) as events:
            async for event in events:
                yield 0, event
        return
    queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()

    async def pump(index: int) -> None:
        try:
            async with aclosing(service.generate(call, params)) as events:
                async for event in events:
                    await queue.put((index, event))
        except Exception as exc:  # e.g. --require-fixture-match: that choice fails, as a generation failure would
            await queue.put((index, Failed(exc)))

    tasks = [asyncio.create_task(pump(i)) for i in range(n)]
    try:
        ended = 0
        while ended < n:
            index, event = await queue.get()
            yield index, event
            if isinstance(event, (Finished, Failed)):
                ended += 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class FunctionCallOut:
    call_id: str
    name: str
    arguments: str


@dataclass
class Outcome:
    """One generation, whole: its text, its tool calls (arguments exactly as streamed) and how it ended."""

    text: str = ""
    calls: list[FunctionCallOut] = field(default_factory=list)
    result: Finished | None = None
    _fragments: list[str] = field(default_factory=list)

    def on(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self.text += event.text
        elif isinstance(event, ToolUseStart):
            self._fragments = []
        elif isinstance(event, ToolInputDelta):
            self._fragments.append(event.json)
        elif isinstance(event, ToolUse):
            self.calls.append(FunctionCallOut(event.tool_use_id, event.name, arguments_text(event, self._fragments)))
            self._fragments = []
        elif isinstance(event, Finished):
            self.result = event
        elif isinstance(event, Failed):
            raise model_failure(event.error)


def arguments_text(use: ToolUse, fragments: list[str]) -> str:
    """A call's arguments as the client saw them streamed (or compact JSON for a call that came whole)."""
    streamed = "".join(fragments)
    return streamed or json.dumps(use.input, ensure_ascii=False, separators=(",", ":"))


async def outcomes(service: Service, call: Call, params: SamplingParams, n: int = 1) -> list[Outcome]:
    results = [Outcome() for _ in range(n)]
    async with aclosing(generations(service, call, params, n)) as events:
        async for index, event in events:
            results[index].on(event)
    return results
