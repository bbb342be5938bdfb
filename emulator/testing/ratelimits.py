"""Optional per-model quotas: requests and tokens per minute, answered with ThrottlingException as Bedrock does.

Limits (`PUT /_emulator/rate-limits`, or `--rate-limits FILE` with the same `limits:` list):

    limits:
      - model: "anthropic.claude-3-haiku*"   # glob over the model id (as sent or base id); default "*"
        rpm: 2                               # requests per window
        tpm: 5000                            # tokens (input + output) per window
        window_seconds: 60                   # default 60: a minute, as Bedrock's quotas are defined

Each base model id matched by a limit has its own sliding window, as each Bedrock model has its own quota.
Inference calls (Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream) count; a throttled call
does not. Tokens are counted when a call completes (its input plus output tokens); a call is admitted while the
window holds fewer tokens than `tpm`. That is a simplification of Bedrock's accounting, which reserves
`max_tokens` up front and applies per-model burndown rates.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..catalog import base_model_id
from ..protocol.errors import BedrockError
from ..protocol.operations import GENERATING
from .caps import MAX_LIMITS
from .scope import describe, model_matches

TOO_MANY_REQUESTS = "Too many requests, please wait before trying again."
TOO_MANY_TOKENS = "Too many tokens, please wait before trying again."


class RateLimitError(ValueError):
    """Limits that do not fit the schema; the message says why."""


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="*", max_length=1000)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    window_seconds: float = Field(default=60, gt=0)

    @model_validator(mode="after")
    def _some_quota(self) -> "RateLimit":
        if self.rpm is None and self.tpm is None:
            raise ValueError("a rate limit needs `rpm`, `tpm` or both")
        return self


class RateLimitFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limits: list[RateLimit]


def parse_limits(data: object, where: str = "") -> list[RateLimit]:
    if isinstance(data, dict) and isinstance(data.get("limits"), list) and len(data["limits"]) > MAX_LIMITS:
        raise RateLimitError(f"{where + ': ' if where else ''}limits: at most {MAX_LIMITS} rate limits "
                             f"(got {len(data['limits'])})")
    try:
        return RateLimitFile.model_validate(data).limits
    except ValidationError as exc:
        raise RateLimitError(describe(exc, where)) from None


def load_limits(path: Path) -> list[RateLimit]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RateLimitError(f"{path}: cannot read rate limits: {exc}") from None
    return parse_limits(data, str(path))


class Admission:
    """A call that was let in: the window entries that receive its token count when it completes."""

    def __init__(self, entries: list[list[float]]) -> None:
        self._entries = entries

    def settle(self, tokens: int) -> None:
        for entry in self._entries:
            entry[1] = tokens


class RateLimiter:
    def __init__(self, limits: list[RateLimit] | None = None) -> None:
        self._configured = list(limits or [])
        self.limits = list(self._configured)
        self._windows: dict[tuple[int, str], deque[list[float]]] = {}  # entries are [monotonic time, tokens]

    def configure(self, limits: list[RateLimit]) -> None:
        self.limits = list(limits)
        self._windows.clear()

    def reset(self) -> None:
        """Back to the limits the server started with, with empty windows."""
        self.configure(self._configured)

    def admit(self, operation: str, model_id: str | None) -> Admission | None:
        """Let the call in or raise ThrottlingException; requests are checked before tokens, as their message says."""
        if not self.limits or operation not in GENERATING or model_id is None:
            return None
        now = time.monotonic()
        windows = []
        for i, limit in enumerate(self.limits):
            if not model_matches(limit.model, model_id):
                continue
            window = self._windows.setdefault((i, base_model_id(model_id)), deque())
            while window and window[0][0] <= now - limit.window_seconds:
                window.popleft()
            if limit.rpm is not None and len(window) >= limit.rpm:
                raise BedrockError("ThrottlingException", TOO_MANY_REQUESTS)
            if limit.tpm is not None and sum(entry[1] for entry in window) >= limit.tpm:
                raise BedrockError("ThrottlingException", TOO_MANY_TOKENS)
            windows.append(window)
        entries = []
        for window in windows:
            window.append(entry := [now, 0])
            entries.append(entry)
        return Admission(entries)

    def views(self) -> list[dict]:
        return [limit.model_dump(mode="json", exclude_none=True) for limit in self.limits]
