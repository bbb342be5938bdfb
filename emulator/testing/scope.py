"""What rules, faults and rate limits share: which operations and model ids they apply to, and how a schema
error in a user's file or admin request is reported (one readable line per problem, never a traceback)."""

from __future__ import annotations

import fnmatch
from functools import lru_cache
from typing import Literal

from pydantic import ValidationError

from ..catalog import base_model_id
from ..protocol.operations import GENERATING, OPERATIONS
from ..protocol.shapes import service_model

GeneratingOperation = Literal[GENERATING]  # type: ignore[valid-type]  (a rule file names one of these)


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
    return frozenset(shape.name for shape in service_model().operation_model(_bedrock(operation)).error_shapes)


@lru_cache(maxsize=None)
def stream_exceptions(operation: str) -> frozenset[str]:
    """Exception names (PascalCase) that may appear inside `operation`'s event stream."""
    union = service_model().operation_model(_bedrock(operation)).get_event_stream_output()
    return frozenset(
        member[0].upper() + member[1:] for member, shape in union.members.items() if shape.metadata.get("exception")
    )


@lru_cache(maxsize=None)
def extra_members(code: str) -> frozenset[str]:
    """Modeled members of an exception beyond `message` (e.g. ModelErrorException's originalStatusCode)."""
    return frozenset(service_model().shape_for(code).members) - {"message"}


def all_operations() -> tuple[str, ...]:
    """Every operation a fault may name: the service model's, and the registry's others (the OpenAI paths)."""
    return (*service_model().operation_names, *(name for name, op in OPERATIONS.items() if not op.bedrock))


def _bedrock(operation: str) -> str:
    """The Bedrock operation whose errors `operation` may answer with (itself, or the one it fails like)."""
    line = OPERATIONS.get(operation)
    return line.fails_like if line is not None and line.fails_like else operation


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
