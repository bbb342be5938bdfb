"""Request validation driven by botocore's Bedrock Runtime service model.

The model is the source of truth for required members, lengths, ranges, `re.fullmatch` patterns, enums and
"exactly one member" unions. Messages follow the Coral style real Bedrock uses:
`1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint: ...`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from functools import lru_cache

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

from . import bounds
from .errors import BedrockError, validation


@lru_cache(maxsize=1)
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("bedrock-runtime")


def operation(name: str) -> OperationModel:
    return service_model().operation_model(name)


@lru_cache(maxsize=None)
def _pattern(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list)):
        return "..."
    # Coral quotes the value; a whole over-long id still fits, a 20 MB text is cut (bounds.MAX_CORAL_QUOTED).
    return bounds.quoted(value, bounds.MAX_CORAL_QUOTED)


# A check: (value, path, errors) -> None, appending Coral-style messages. Each shape is compiled once into nested
# closures (its constraints read from the service model once), so a request costs no walk over botocore's model.
Check = Callable[[object, str, list], None]


def _message(shape: Shape, path: str, constraint: str, value: object) -> str:
    shown = "" if shape.metadata.get("sensitive") else f" '{_shown(value)}'"
    if value is None:
        shown = " null"
    return f"Value{shown} at '{path}' failed to satisfy constraint: Member must {constraint}"


class _Compiler:
    """Compiles the shapes reachable from one root; shapes are named uniquely within a service, and a recursive
    reference goes through the cell of a shape still being compiled."""

    def __init__(self) -> None:
        self.cells: dict[str, list[Check]] = {}

    def compile(self, shape: Shape) -> Check:
        cell = self.cells.get(shape.name)
        if cell is None:
            cell = self.cells[shape.name] = []
            cell.append(self._build(shape))
        if cell:
            return cell[0]
        return lambda value, path, errors: cell[0](value, path, errors)  # recursion: bound once compiled

    def _build(self, shape: Shape) -> Check:
        def null(value: object, path: str, errors: list) -> bool:
            """A JSON null inside a list or map (absent structure members are never checked)."""
            errors.append(_message(shape, path, "not be null", None))
            return True

        kind = shape.type_name
        if kind == "structure":
            return self._structure(shape)
        if kind == "list":
            return self._list(shape)
        if kind == "map":
            return self._map(shape)
        length = _length_check(shape)
        if kind == "string":
            pattern = shape.metadata.get("pattern")
            regex = _pattern(pattern) if pattern is not None else None
            enum = shape.enum
            enum_set = frozenset(enum)

            def check_string(value, path, errors):
                if value is None:
                    return null(value, path, errors)
                if not isinstance(value, str):
                    return errors.append(_message(shape, path, "be a string", value))
                if length:
                    length(value, len(value), path, errors)
                if regex is not None and not regex.fullmatch(value):
                    errors.append(_message(shape, path, f"satisfy regular expression pattern: {pattern}", value))
                if enum and value not in enum_set:
                    errors.append(_message(shape, path, f"satisfy enum value set: [{', '.join(enum)}]", value))
            return check_string
        if kind in ("integer", "long", "float", "double"):
            integer = kind in ("integer", "long")
            accepted = int if integer else (int, float)
            wrong = "be an integer" if integer else "be a number"
            bounds = _range_check(shape)

            def check_number(value, path, errors):
                if value is None:
                    return null(value, path, errors)
                if not isinstance(value, accepted) or isinstance(value, bool):
                    return errors.append(_message(shape, path, wrong, value))
                if bounds:
                    bounds(value, path, errors)
            return check_number
        if kind == "boolean":
            def check_boolean(value, path, errors):
                if value is None:
                    return null(value, path, errors)
                if not isinstance(value, bool):
                    errors.append(_message(shape, path, "be a boolean", value))
            return check_boolean
        if kind == "blob":
            def check_blob(value, path, errors):
                if value is None:
                    return null(value, path, errors)
                if isinstance(value, (bytes, bytearray)):
                    return length and length(value, len(value), path, errors)
                if not isinstance(value, str):
                    return errors.append(_message(shape, path, "be base64-encoded binary data", value))
                try:
                    raw = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    return errors.append(_message(shape, path, "be base64-encoded binary data", "..."))
                if length:
                    length(raw, len(raw), path, errors)
            return check_blob
        if kind == "timestamp":
            def check_timestamp(value, path, errors):
                if value is None:
                    return null(value, path, errors)
                if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                    errors.append(_message(shape, path, "be a timestamp", value))
            return check_timestamp

        def check_other(value, path, errors):
            if value is None:
                null(value, path, errors)
        return check_other

    def _structure(self, shape: Shape) -> Check:
        if shape.is_document_type:
            def check_document(value, path, errors):
                if value is None:
                    errors.append(_message(shape, path, "not be null", None))
            return check_document
        # The service model's member order, so a request with several errors always lists them the same way.
        members = {name: (i, self.compile(member)) for i, (name, member) in enumerate(shape.members.items())}
        required = [(name, shape.members[name]) for name in shape.required_members]
        union = bool(shape.metadata.get("union"))

        def check_structure(value, path, errors):
            if value is None:
                return errors.append(_message(shape, path, "not be null", None))
            if not isinstance(value, dict):
                return errors.append(_message(shape, path, "be a structure", value))
            prefix = f"{path}." if path else ""
            for name, member in required:
                if value.get(name) is None:
                    errors.append(_message(member, prefix + name, "not be null", None))
            present = []  # (member index, name, value, check): a body sets few of a shape's members
            for name, item in value.items():
                member = members.get(name)
                if member is not None and item is not None:
                    present.append((member[0], name, item, member[1]))
            if len(present) > 1:
                present.sort()  # by member index alone: the indexes are unique, so no value is ever compared
            for _, name, item, check in present:
                check(item, prefix + name, errors)
            if union and len(present) != 1:
                errors.append(
                    f"Value at '{path or shape.name}' failed to satisfy constraint: Member must have exactly one member set"
                )
        return check_structure

    def _list(self, shape: Shape) -> Check:
        length = _length_check(shape)
        item_check = self.compile(shape.member)

        def check_list(value, path, errors):
            if value is None:
                return errors.append(_message(shape, path, "not be null", None))
            if not isinstance(value, list):
                return errors.append(_message(shape, path, "be a list", value))
            if length:
                length(value, len(value), path, errors)
            for i, item in enumerate(value):
                item_check(item, f"{path}.{i + 1}.member", errors)
        return check_list

    def _map(self, shape: Shape) -> Check:
        length = _length_check(shape)
        key_check, value_check = self.compile(shape.key), self.compile(shape.value)

        def check_map(value, path, errors):
            if value is None:
                return errors.append(_message(shape, path, "not be null", None))
            if not isinstance(value, dict):
                return errors.append(_message(shape, path, "be a map", value))
            if length:
                length(value, len(value), path, errors)
            for key, item in value.items():
                key_check(key, f"{path}.{key}.key", errors)
                value_check(item, f"{path}.{key}.value", errors)
        return check_map


def _length_check(shape: Shape):
    lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
    if lo is None and hi is None:
        return None

    def length(value, size, path, errors):
        if lo is not None and size < lo:
            errors.append(_message(shape, path, f"have length greater than or equal to {lo}", value))
        if hi is not None and size > hi:
            errors.append(_message(shape, path, f"have length less than or equal to {hi}", value))
    return length


def _range_check(shape: Shape):
    lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
    if lo is None and hi is None:
        return None

    def bounds(value, path, errors):
        if lo is not None and value < lo:
            errors.append(_message(shape, path, f"have value greater than or equal to {lo}", value))
        if hi is not None and value > hi:
            errors.append(_message(shape, path, f"have value less than or equal to {hi}", value))
    return bounds


_COMPILED: dict[int, tuple[Shape, Check]] = {}  # id(root shape) -> (the shape, kept alive so its id stays unique; check)


def _compiled(shape: Shape) -> Check:
    found = _COMPILED.get(id(shape))
    if found is None or found[0] is not shape:
        if len(_COMPILED) > 1024:  # roots are cached service-model shapes; this only guards against a caller's copies
            _COMPILED.clear()
        found = _COMPILED[id(shape)] = (shape, _Compiler().compile(shape))
    return found[1]


def errors_for(shape: Shape, value: object, path: str = "") -> list[str]:
    errors: list[str] = []
    _compiled(shape)(value, path, errors)
    return errors


def coral_error(errors: list[str]) -> BedrockError:
    noun = "error" if len(errors) == 1 else "errors"
    return validation(f"{len(errors)} validation {noun} detected: " + "; ".join(errors))


def validate_input(operation_name: str, params: dict) -> None:
    """Validate an operation's input (body members plus URI labels and headers) against the service model."""
    errors = errors_for(operation(operation_name).input_shape, params)
    if errors:
        raise coral_error(errors)


def decode_blob(value: str) -> bytes:
    """Decode a JSON-body blob that validation has already accepted."""
    return base64.b64decode(value)


def check_json_body(body: bytes) -> dict:
    """Parse a JSON request body; anything but a JSON object is a ValidationException, never a 500."""
    if not body or body.isspace():  # (no stripped copy of the body)
        return {}
    try:
        parsed = bounds.loads(body)
    except bounds.UnsafeJson as exc:
        try:  # invalid UTF-8 is reported as such, whatever else is wrong
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise BedrockError("ValidationException", "Malformed request body: the body is not valid UTF-8.") from None
        raise BedrockError("ValidationException", f"Malformed request body: invalid JSON ({exc}).") from None
    if not isinstance(parsed, dict):
        raise BedrockError("ValidationException", "Malformed request body: expected a JSON object.")
    return parsed
