"""The JSON-schema subset Bedrock's native model bodies are checked against, with its validator's wording.

Bedrock validates each InvokeModel body with an everit JSON-schema validator and reports every violation,
concatenated, as `Malformed input request: #: required key [max_tokens] not found#/top_p: 2 is not less or
equal to 1, please reformat your input and try again.` Order: required keys, extraneous keys, then members.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..protocol.bounds import quoted
from ..protocol.errors import malformed_native

# JSON type name -> the Java class name everit prints.
_TYPE_NAMES = {
    "string": "String",
    "integer": "Integer",
    "number": "Number",
    "boolean": "Boolean",
    "array": "JSONArray",
    "object": "JSONObject",
}


def _found(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "BigDecimal"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "JSONArray"
    return "JSONObject"


def _is(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":  # integral floats (`5.0`) are accepted, as Jackson-backed validators do
        return not isinstance(value, bool) and (isinstance(value, int) or (isinstance(value, float) and value.is_integer()))
    if kind == "number":
        return not isinstance(value, bool) and isinstance(value, (int, float))
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


def number_text(value: float) -> str:
    """Numbers as the validator prints them: `1`, `0.99`, `1.5`."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() and abs(value) < 1e15 else str(value)


@dataclass(frozen=True)
class Spec:
    """One node of a schema. `types` empty means any JSON value."""

    types: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple | None = None
    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    items: "Spec | None" = None
    min_items: int | None = None
    max_items: int | None = None
    properties: dict[str, "Spec"] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    closed: bool = False  # unknown object keys are "extraneous"


def AnyValue() -> Spec:
    return Spec()


def Str(enum: tuple | None = None, pattern: str | None = None, min_length: int | None = None,
        max_length: int | None = None) -> Spec:
    return Spec(("string",), enum=enum, pattern=pattern, min_length=min_length, max_length=max_length)


def Int(minimum: float | None = None, maximum: float | None = None, enum: tuple | None = None) -> Spec:
    return Spec(("integer",), minimum=minimum, maximum=maximum, enum=enum)


def Num(minimum: float | None = None, maximum: float | None = None) -> Spec:
    return Spec(("number",), minimum=minimum, maximum=maximum)


def Bool() -> Spec:
    return Spec(("boolean",))


def Arr(items: Spec | None = None, min_items: int | None = None, max_items: int | None = None) -> Spec:
    return Spec(("array",), items=items, min_items=min_items, max_items=max_items)


def Obj(properties: dict[str, Spec] | None = None, required: tuple[str, ...] = (), closed: bool = True) -> Spec:
    return Spec(("object",), properties=properties or {}, required=required, closed=closed)


def OneOf(*types: str) -> Spec:
    """A value of any of the named JSON types (e.g. Anthropic's `system`: string or block list)."""
    return Spec(tuple(types))


@lru_cache(maxsize=None)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _pointer(path: tuple) -> str:
    return "#" + "".join(f"/{part}" for part in path)


def violations(spec: Spec, value: Any, path: tuple = (), require: bool = True) -> list[str]:
    """Every violation of `spec` by `value`. `require=False` skips required-key checks (partial bodies)."""
    out: list[str] = []
    # The pointer is only built for a message: a valid body (the usual one) never pays for it.
    if spec.types:  # none: any JSON value
        for kind in spec.types:
            if _is(kind, value):
                break
        else:
            names = [_TYPE_NAMES[kind] for kind in spec.types]
            expected = names[0] if len(names) == 1 else f"one of [{', '.join(names)}]"
            return [f"{_pointer(path)}: expected type: {expected}, found: {_found(value)}"]
    if spec.enum is not None and value not in spec.enum:
        shown = number_text(value) if isinstance(value, float) else quoted(value)
        out.append(f"{_pointer(path)}: {shown} is not a valid enum value")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if spec.minimum is not None and value < spec.minimum:
            out.append(f"{_pointer(path)}: {number_text(value)} is not greater or equal to {number_text(spec.minimum)}")
        if spec.maximum is not None and value > spec.maximum:
            out.append(f"{_pointer(path)}: {number_text(value)} is not less or equal to {number_text(spec.maximum)}")
    elif isinstance(value, str):
        if spec.min_length is not None and len(value) < spec.min_length:
            out.append(f"{_pointer(path)}: expected minLength: {spec.min_length}, actual: {len(value)}")
        if spec.max_length is not None and len(value) > spec.max_length:
            out.append(f"{_pointer(path)}: expected maxLength: {spec.max_length}, actual: {len(value)}")
        if spec.pattern is not None and not _regex(spec.pattern).search(value):
            out.append(f"{_pointer(path)}: string [{quoted(value)}] does not match pattern {spec.pattern}")
    elif isinstance(value, list):
        if spec.min_items is not None and len(value) < spec.min_items:
            out.append(f"{_pointer(path)}: expected minimum item count: {spec.min_items}, found: {len(value)}")
        if spec.max_items is not None and len(value) > spec.max_items:
            out.append(f"{_pointer(path)}: expected maximum item count: {spec.max_items}, found: {len(value)}")
        if spec.items is not None:
            for i, item in enumerate(value):
                out += violations(spec.items, item, (*path, i), require)
    elif isinstance(value, dict) and "object" in spec.types:
        if require:
            out += [f"{_pointer(path)}: required key [{key}] not found" for key in spec.required if key not in value]
        properties = spec.properties
        if spec.closed:
            out += [f"{_pointer(path)}: extraneous key [{key}] is not permitted" for key in value if key not in properties]
        present = [key for key in value if key in properties]
        if len(present) > 1:  # in the schema's order (a body usually sets far fewer keys than the schema has)
            present = [key for key in properties if key in value]
        for key in present:
            out += violations(properties[key], value[key], (*path, key), require)
    return out


def check(spec: Spec, body: Any, require: bool = True) -> None:
    """Raise Bedrock's `Malformed input request` ValidationException listing every violation."""
    check_at(spec, body, (), require)


def check_at(spec: Spec, value: Any, path: tuple, require: bool = True) -> None:
    """`check` for a value found at `path` inside the body (pointers in the message start there)."""
    found = violations(spec, value, path, require)
    if found:
        raise malformed_native("".join(found))
