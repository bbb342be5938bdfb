"""How a request is compared with a recorded one: the whole JSON body, with volatile fields ignored.

Volatile fields are named by key and ignored wherever they occur in the body, so an agent's second turn, which
echoes the first reply's `toolUseId`, matches however the ids were generated. The same comparison serves
cassettes and scripted rules with a `body` (`testing.rules.Match` uses `normalized` and `Sent`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Keys whose values change from run to run without changing what is asked: tool-call ids in every API's form,
# request/response ids, SDK idempotency tokens, timestamps. `--match-ignore KEY` adds more.
VOLATILE = ("toolUseId", "tool_use_id", "tool_call_id", "id", "requestId", "clientRequestToken", "timestamp",
            "createdAt", "created_at")
IGNORED = "<ignored>"


def normalized(body: Any, ignore: Iterable[str]) -> Any:
    """`body` with the value of every key in `ignore` (at any depth) replaced by one placeholder."""
    keys = frozenset(ignore)

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: IGNORED if k in keys else walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(body)


class Sent:
    """A sent body, normalized once per set of ignored keys: many cassettes compare against one request."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self._normalized: dict[frozenset[str], Any] = {}

    def normalized(self, ignore: frozenset[str]) -> Any:
        if ignore not in self._normalized:
            self._normalized[ignore] = normalized(self.value, ignore)
        return self._normalized[ignore]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def differences(recorded: Any, sent: Any, ignore: Iterable[str] = (), limit: int = 3) -> list[str]:
    """Where two bodies differ, as `path: recorded X, sent Y` lines (at most `limit`, then a count)."""
    found: list[str] = []
    ignore = frozenset(ignore)

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in list(a) + [k for k in b if k not in a]:
                if key in ignore:
                    continue
                sub = f"{path}.{key}" if path else key
                if key not in b:
                    found.append(f"{sub}: recorded {_short(a[key])}, not sent")
                elif key not in a:
                    found.append(f"{sub}: sent {_short(b[key])}, not recorded")
                else:
                    walk(a[key], b[key], sub)
        elif isinstance(a, list) and isinstance(b, list):
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{path}[{i}]")
            if len(a) != len(b):
                found.append(f"{path or 'body'}: recorded {len(a)} items, sent {len(b)}")
        elif a != b or type(a) is not type(b):
            found.append(f"{path or 'body'}: recorded {_short(a)}, sent {_short(b)}")

    walk(recorded, sent, "")
    if len(found) > limit:
        return found[:limit] + [f"and {len(found) - limit} more difference(s)"]
    return found
