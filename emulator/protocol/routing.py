"""Operation routing on the raw request path.

Clients percent-encode every URI label with an empty safe set, so a model ARN arrives as one segment with `%3A`
and `%2F` inside. Routing on `request.raw_path` and decoding each segment afterwards is the version-proof way.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote


@dataclass(frozen=True)
class Route:
    operation: str
    labels: dict[str, str]


# (method, pattern) -> operation; "{x}" is a single raw segment decoded into a label.
_TABLE: list[tuple[str, tuple[str, ...], str]] = [
    ("POST", ("model", "{modelId}", "converse"), "Converse"),
    ("POST", ("model", "{modelId}", "converse-stream"), "ConverseStream"),
    ("POST", ("model", "{modelId}", "invoke"), "InvokeModel"),
    ("POST", ("model", "{modelId}", "invoke-with-response-stream"), "InvokeModelWithResponseStream"),
    ("POST", ("model", "{modelId}", "invoke-with-bidirectional-stream"), "InvokeModelWithBidirectionalStream"),
    ("POST", ("model", "{modelId}", "count-tokens"), "CountTokens"),
    ("POST", ("guardrail", "{guardrailIdentifier}", "version", "{guardrailVersion}", "apply"), "ApplyGuardrail"),
    ("POST", ("guardrail-checks", "invoke"), "InvokeGuardrailChecks"),
    ("POST", ("async-invoke",), "StartAsyncInvoke"),
    ("GET", ("async-invoke",), "ListAsyncInvokes"),
    ("GET", ("async-invoke", "{invocationArn}"), "GetAsyncInvoke"),
]


def match(method: str, raw_path: str) -> Route | None:
    path = raw_path.split("?", 1)[0]
    segments = path.strip("/").split("/") if path.strip("/") else []
    for want_method, pattern, op in _TABLE:
        if want_method != method or len(pattern) != len(segments):
            continue
        labels: dict[str, str] = {}
        for part, seg in zip(pattern, segments):
            if part.startswith("{"):
                labels[part[1:-1]] = unquote(seg)
            elif part != seg:
                break
        else:
            return Route(op, labels)
    return None
