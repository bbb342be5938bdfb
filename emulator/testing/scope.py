"""What rules, faults and rate limits share: which operations and model ids they apply to, and how a schema
error in a user's file or admin request is reported (one readable line per problem, never a traceback)."""

from __future__ import annotations

import fnmatch
from functools import lru_cache
from typing import Literal

from pydantic import ValidationError

from ..catalog import base_model_id
from ..protocol.shapes import service_model

# Operations that generate text through `Service.generate`, so scripted responses can answer them.
GENERATING = ("Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream",
              "InvokeModelWithBidirectionalStream", "OpenAIChatCompletions", "OpenAIResponses")
GeneratingOperation = Literal["Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream",
                              "InvokeModelWithBidirectionalStream", "OpenAIChatCompletions", "OpenAIResponses"]
STREAMING = ("ConverseStream", "InvokeModelWithResponseStream", "InvokeModelWithBidirectionalStream",
             "OpenAIChatCompletions", "OpenAIResponses")
_STREAM_UNION = {"ConverseStream": "ConverseStreamOutput", "InvokeModelWithResponseStream": "ResponseStream",
                 "InvokeModelWithBidirectionalStream": "InvokeModelWithBidirectionalStreamOutput"}
# The OpenAI-compatible paths (api/openai) are not in the service model: they can fail as InvokeModel and its
# stream can (errors go out in OpenAI's JSON shape there, in-stream ones as an SSE error event).
_LIKE = {"OpenAIChatCompletions": "InvokeModelWithResponseStream", "OpenAIResponses": "InvokeModelWithResponseStream"}


def model_matches(pattern: str | None, model_id: str | None) -> bool:
    """A glob over the model id as sent or its base id (`us.`/`global.` profiles and ARNs stripped), like the catalog."""
    if pattern is None:
        return True
    if model_id is None:
        return False
    return fnmatch.fnmatchcase(model_id, pattern) or fnmatch.fnmatchcase(base_model_id(model_id), pattern)


def as_list(value: str | list[str] | None) -> list[str] | None:
    if value is None or isinstance(value, list):
        return value
    return [value]


@lru_cache(maxsize=None)
def operation_errors(operation: str) -> frozenset[str]:
    """The exceptions the service model lets `operation` return."""
    operation = _LIKE.get(operation, operation)
    return frozenset(shape.name for shape in service_model().operation_model(operation).error_shapes)


@lru_cache(maxsize=None)
def stream_exceptions(operation: str) -> frozenset[str]:
    """Exception names (PascalCase) that may appear inside `operation`'s event stream."""
    union = service_model().shape_for(_STREAM_UNION[_LIKE.get(operation, operation)])
    return frozenset(
        member[0].upper() + member[1:] for member, shape in union.members.items() if shape.metadata.get("exception")
    )


@lru_cache(maxsize=None)
def extra_members(code: str) -> frozenset[str]:
    """Modeled members of an exception beyond `message` (e.g. ModelErrorException's originalStatusCode)."""
    return frozenset(service_model().shape_for(code).members) - {"message"}


def all_operations() -> tuple[str, ...]:
    return (*service_model().operation_names, *_LIKE)


def describe(error: ValidationError, where: str = "") -> str:
    """Pydantic's errors as `where: rules.0.respond.stop_reason: Input should be ...` lines."""
    lines = []
    for item in error.errors(include_url=False):
        loc = ".".join(str(part) for part in item["loc"])
        lines.append(f"{where + ': ' if where else ''}{loc + ': ' if loc else ''}{item['msg']}")
    return "\n".join(lines)


def error_code(value: object) -> object:
    """Accept an exception by its name (`ThrottlingException`) or its stream member (`throttlingException`)."""
    from ..protocol.errors import MODELED

    if not isinstance(value, str):
        return value
    name = value[:1].upper() + value[1:]
    if name not in MODELED:
        raise ValueError(f"unknown exception {value!r}; use one of: {', '.join(sorted(MODELED))}")
    return name
