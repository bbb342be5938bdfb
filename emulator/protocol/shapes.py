"""Request validation driven by botocore's Bedrock Runtime service model.

The model is the source of truth for required members, lengths, ranges, `re.fullmatch` patterns, enums and
"exactly one member" unions. Messages follow the Coral style real Bedrock uses:
`1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint: ...`.
"""

from __future__ import annotations

import base64
import binascii
import re
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


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, shape: Shape, value: object, path: str, constraint: str) -> None:
        shown = "" if shape.metadata.get("sensitive") else f" '{_shown(value)}'"
        if value is None:
            shown = " null"
        self.errors.append(f"Value{shown} at '{path}' failed to satisfy constraint: Member must {constraint}")

    def check(self, shape: Shape, value: object, path: str) -> None:
        if value is None:  # a JSON null inside a list or map; absent structure members are never checked
            return self.fail(shape, None, path, "not be null")
        kind = shape.type_name
        if kind == "structure":
            self._structure(shape, value, path)
        elif kind == "list":
            if not isinstance(value, list):
                return self.fail(shape, value, path, "be a list")
            self._length(shape, value, len(value), path)
            for i, item in enumerate(value):
                self.check(shape.member, item, f"{path}.{i + 1}.member")
        elif kind == "map":
            if not isinstance(value, dict):
                return self.fail(shape, value, path, "be a map")
            self._length(shape, value, len(value), path)
            for key, item in value.items():
                self.check(shape.key, key, f"{path}.{key}.key")
                self.check(shape.value, item, f"{path}.{key}.value")
        elif kind == "string":
            if not isinstance(value, str):
                return self.fail(shape, value, path, "be a string")
            self._length(shape, value, len(value), path)
            if "pattern" in shape.metadata and not _pattern(shape.metadata["pattern"]).fullmatch(value):
                self.fail(shape, value, path, f"satisfy regular expression pattern: {shape.metadata['pattern']}")
            if shape.enum and value not in shape.enum:
                self.fail(shape, value, path, f"satisfy enum value set: [{', '.join(shape.enum)}]")
        elif kind in ("integer", "long"):
            if not isinstance(value, int) or isinstance(value, bool):
                return self.fail(shape, value, path, "be an integer")
            self._range(shape, value, path)
        elif kind in ("float", "double"):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                return self.fail(shape, value, path, "be a number")
            self._range(shape, value, path)
        elif kind == "boolean":
            if not isinstance(value, bool):
                self.fail(shape, value, path, "be a boolean")
        elif kind == "blob":
            self._blob(shape, value, path)
        elif kind == "timestamp":
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                self.fail(shape, value, path, "be a timestamp")

    def _structure(self, shape: Shape, value: object, path: str) -> None:
        if shape.is_document_type:
            return
        if not isinstance(value, dict):
            return self.fail(shape, value, path, "be a structure")
        prefix = f"{path}." if path else ""
        for name in shape.required_members:
            if value.get(name) is None:
                self.fail(shape.members[name], None, prefix + name, "not be null")
        # The service model's member order, so a request with several errors always lists them the same way.
        present = [name for name in shape.members if value.get(name) is not None]
        for name in present:
            self.check(shape.members[name], value[name], prefix + name)
        if shape.metadata.get("union") and len(present) != 1:
            self.errors.append(
                f"Value at '{path or shape.name}' failed to satisfy constraint: Member must have exactly one member set"
            )

    def _length(self, shape: Shape, value: object, size: int, path: str) -> None:
        lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
        if lo is not None and size < lo:
            self.fail(shape, value, path, f"have length greater than or equal to {lo}")
        if hi is not None and size > hi:
            self.fail(shape, value, path, f"have length less than or equal to {hi}")

    def _range(self, shape: Shape, value: float, path: str) -> None:
        lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
        if lo is not None and value < lo:
            self.fail(shape, value, path, f"have value greater than or equal to {lo}")
        if hi is not None and value > hi:
            self.fail(shape, value, path, f"have value less than or equal to {hi}")

    def _blob(self, shape: Shape, value: object, path: str) -> None:
        if isinstance(value, (bytes, bytearray)):
            return self._length(shape, value, len(value), path)
        if not isinstance(value, str):
            return self.fail(shape, value, path, "be base64-encoded binary data")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return self.fail(shape, "...", path, "be base64-encoded binary data")
        self._length(shape, raw, len(raw), path)


def errors_for(shape: Shape, value: object, path: str = "") -> list[str]:
    checker = _Checker()
    checker.check(shape, value, path)
    return checker.errors


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
    if not body.strip():
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BedrockError("ValidationException", "Malformed request body: the body is not valid UTF-8.") from None
    try:
        parsed = bounds.loads(text)
    except bounds.UnsafeJson as exc:
        raise BedrockError("ValidationException", f"Malformed request body: invalid JSON ({exc}).") from None
    if not isinstance(parsed, dict):
        raise BedrockError("ValidationException", "Malformed request body: expected a JSON object.")
    return parsed
