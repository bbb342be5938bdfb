"""Operation routing on the raw request path, from a service model's `http.method` and `http.requestUri`.

Clients percent-encode every URI label with an empty safe set, so a model ARN arrives as one segment with `%3A`
and `%2F` inside. Routing on `request.raw_path` and decoding each segment afterwards is the version-proof way.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

from botocore.model import ServiceModel

from .shapes import service_model


@dataclass(frozen=True)
class Route:
    operation: str
    labels: dict[str, str]


# A pattern: one entry per path segment, a literal segment or the name of the label it holds.
_Pattern = tuple[tuple[bool, str], ...]  # (is a label, literal or label name)


class Routes:
    """One service's routes, compiled once: by (method, number of segments), literal segments first."""

    def __init__(self, model: ServiceModel) -> None:
        self._table: dict[tuple[str, int], list[tuple[_Pattern, str]]] = {}
        for name in model.operation_names:
            http = model.operation_model(name).http
            pattern = tuple(_part(part) for part in _segments(http["requestUri"].split("?", 1)[0]))
            self._table.setdefault((http["method"], len(pattern)), []).append((pattern, name))
        for rows in self._table.values():  # so `/guardrails/{id}` never shadows a literal path of the same length
            rows.sort(key=lambda row: [is_label for is_label, _ in row[0]])

    def match(self, method: str, raw_path: str) -> Route | None:
        segments = _segments(raw_path.split("?", 1)[0])
        for pattern, operation in self._table.get((method, len(segments)), ()):
            labels: dict[str, str] = {}
            for (is_label, part), segment in zip(pattern, segments):
                if is_label:
                    labels[part] = _decoded(segment)
                elif part != segment:
                    break
            else:
                return Route(operation, labels)
        return None


# Clients send the same few model ids over and over: each segment is decoded once (bounded, so any path is fine).
_decoded = lru_cache(maxsize=256)(unquote)


def _segments(path: str) -> list[str]:
    """`/a/b/` -> [a, b]; an empty segment inside (`/model//converse`) stays, and fails as an empty label would."""
    path = path.strip("/")
    return path.split("/") if path else []


def _part(segment: str) -> tuple[bool, str]:
    if segment.startswith("{"):
        if segment.endswith("+}"):  # no operation of either service has one; say so rather than route it wrong
            raise ValueError(f"greedy URI label {segment} is not supported")
        return True, segment[1:-1]
    return False, segment


@lru_cache(maxsize=1)
def _runtime() -> Routes:
    return Routes(service_model())


def match(method: str, raw_path: str) -> Route | None:
    """The Bedrock Runtime operation a request names, with its URI labels decoded."""
    return _runtime().match(method, raw_path)
