"""Errors on the OpenAI-compatible paths, in OpenAI's JSON shape: `{"error": {"message", "type", "param", "code"}}`.

These paths speak OpenAI's protocol, so a client (the OpenAI SDKs pick their exception class by HTTP status) gets
OpenAI's shape; the status stays the one Bedrock uses. `OpenAIError` is a `BedrockError`, so the invocation log,
faults and scripted errors treat it like any other; a Bedrock exception (a fault, a throttle, a model failure)
is converted here with its Bedrock name as `code` (our choice: AWS does not document its mapping).
"""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from ...protocol import bounds
from ...protocol.auth import AuthError
from ...protocol.errors import BedrockError

# HTTP status -> OpenAI error `type` (OpenAI's own taxonomy).
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 408: "timeout", 409: "conflict", 413: "invalid_request_error",
          422: "invalid_request_error", 424: "model_error", 429: "rate_limit_error", 500: "server_error",
          503: "service_unavailable"}
_BEDROCK_CODE = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
                 429: "ThrottlingException", 500: "InternalServerException", 503: "ServiceUnavailableException"}


class OpenAIError(BedrockError):
    """An error these paths answer in OpenAI's wording (`param` and `code` as OpenAI's API reports them)."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400) -> None:
        super().__init__(_BEDROCK_CODE.get(status, "ValidationException"), message)
        self._status = status
        self.param = param
        self.openai_code = code

    @property
    def status(self) -> int:
        return self._status


def invalid(message: str, param: str | None = None, code: str | None = "invalid_value") -> OpenAIError:
    return OpenAIError(message, param, code)


def error_body(error: BedrockError) -> dict:
    """The `error` object for any error (an OpenAIError as written, a Bedrock exception converted)."""
    if isinstance(error, OpenAIError):
        param, code = error.param, error.openai_code
    else:
        param, code = None, error.code
    # A credentials refusal keeps AWS's status (403), code and wording; its type says what it is.
    kind = "authentication_error" if isinstance(error, AuthError) else _TYPES.get(error.status, "api_error")
    return {"message": error.message, "type": kind, "param": param, "code": code}


def error_response(error: BedrockError) -> web.Response:
    headers = {"Content-Type": "application/json"}
    if error.code in ("ThrottlingException", "ModelNotReadyException"):
        headers["Retry-After"] = "1"  # our addition: the OpenAI SDKs honour it, as they retry 429s
    return web.Response(status=error.status, headers=headers,
                        body=bounds.dumps_bytes({"error": error_body(error)}))  # never fails on a lone surrogate


# --- pydantic's errors in OpenAI's words -------------------------------------------------------------------

_SKIP = {"str", "int", "float", "bool", "list", "dict", "none", "json-or-python", "lax-or-strict", "strict"}
_KIND = {"string": "a string", "int": "an integer", "integer": "an integer", "float": "a number",
         "bool": "a boolean", "list": "an array", "dict": "an object", "model": "an object"}


def _param(loc: tuple) -> str:
    """pydantic's location as OpenAI names a parameter: `messages[0].content`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.replace("_", "").isalnum() and part.islower() and part not in _SKIP:
            out += ("." if out else "") + part
    return out


def _found(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _number(value: object) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def from_validation(exc: ValidationError) -> OpenAIError:
    """The first problem pydantic found, worded as OpenAI's API words it."""
    item = exc.errors(include_url=False)[0]
    kind, param, value = item["type"], _param(item["loc"]), item.get("input")
    ctx = item.get("ctx") or {}
    if kind == "missing":
        return invalid(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")
    if kind == "extra_forbidden":
        return invalid(f"Unknown parameter: '{param}'.", param, "unknown_parameter")
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        limit = next(iter(ctx.values()))
        what = "decimal" if isinstance(limit, float) else "integer"  # decimal parameters have float bounds
        if kind.startswith("greater"):
            sign = ">=" if kind.endswith("equal") else ">"
            return invalid(f"Invalid '{param}': {what} below minimum value. Expected a value {sign} {_number(limit)}, "
                           f"but got {_number(value)} instead.", param, f"{what}_below_min_value")
        sign = "<=" if kind.endswith("equal") else "<"
        return invalid(f"Invalid '{param}': {what} above maximum value. Expected a value {sign} {_number(limit)}, "
                       f"but got {_number(value)} instead.", param, f"{what}_above_max_value")
    if kind in ("too_short", "too_long"):
        limit = ctx.get("min_length" if kind == "too_short" else "max_length")
        actual = ctx.get("actual_length")
        if isinstance(value, str):
            side = "short" if kind == "too_short" else "long"
            return invalid(f"Invalid '{param}': string too {side}. Expected a string with "
                           f"{'minimum' if side == 'short' else 'maximum'} length {limit}, but got a string with "
                           f"length {actual} instead.", param, f"string_too_{side}")
        side = "below_min" if kind == "too_short" else "above_max"
        bound = "minimum" if kind == "too_short" else "maximum"
        return invalid(f"Invalid '{param}': {'empty array' if not actual else 'array too ' + ('short' if kind == 'too_short' else 'long')}. "
                       f"Expected an array with {bound} length {limit}, but got an array with length {actual} instead.",
                       param, f"array_{side}_length")
    if kind in ("literal_error", "enum"):
        expected = ctx.get("expected", "")
        return invalid(f"Invalid value: '{value}'. Supported values are: {expected}.", param, "invalid_value")
    expected = next((text for key, text in _KIND.items() if kind.startswith(key)), None)
    if expected is not None or kind.endswith("_type"):
        return invalid(f"Invalid type for '{param}': expected {expected or 'another type'}, but got {_found(value)} "
                       "instead.", param, "invalid_type")
    return invalid(f"Invalid '{param}': {item['msg']}.", param, "invalid_value")
