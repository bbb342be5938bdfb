"""`GET /_emulator/metrics`: Prometheus text exposition of what the emulator answered.

Counters and histograms are fed from the invocation log (every finished Bedrock call passes through it once), so
the metrics and the log can never disagree. Model-side gauges (queue depth, running sequences) are read from the
engines at scrape time. One registry per app: two emulators in one process (tests) never share numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from ..testing.invocation_log import Invocation

NAMESPACE = "bedrock_emulator"
# Seconds. Scripted answers take a millisecond, a long local generation a minute.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
RATE_BUCKETS = (1, 5, 10, 25, 50, 100, 200, 400, 800)  # output tokens per second of one request
# Label values come from clients (model ids as sent, even invalid ones) and from the test kit (fault ids grow
# forever): each label keeps its first values, the rest count as OTHER, so no client can grow the series
# without bound (memory, and a scrape that takes longer with every new id).
MAX_LABEL_VALUES = 200
OTHER = "other"


class EngineGauges(Collector):
    """Queue depth and running sequences per local text model, read when Prometheus scrapes."""

    def __init__(self, engines: Callable[[], dict]) -> None:
        self._engines = engines

    def collect(self) -> Iterable[GaugeMetricFamily]:
        running = GaugeMetricFamily(f"{NAMESPACE}_running_sequences",
                                    "Sequences the model is generating now.", labels=["model"])
        queued = GaugeMetricFamily(f"{NAMESPACE}_queue_depth",
                                   "Requests waiting for a slot in the model's batch.", labels=["model"])
        for name, engine in sorted(self._engines().items()):
            running.add_metric([name], getattr(engine, "active_sequences", 0))
            queued.add_metric([name], getattr(engine, "queued", 0))
        yield running
        yield queued


class Metrics:
    def __init__(self, engines: Callable[[], dict]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["operation", "model"]
        self.requests = Counter(f"{NAMESPACE}_requests", "Bedrock calls answered, by outcome.",
                                [*labels, "status", "error_code"], registry=self.registry)
        self.input_tokens = Counter(f"{NAMESPACE}_input_tokens", "Input tokens billed.", labels, registry=self.registry)
        self.output_tokens = Counter(f"{NAMESPACE}_output_tokens", "Output tokens billed.", labels,
                                     registry=self.registry)
        self.first_byte = Histogram(f"{NAMESPACE}_time_to_first_byte_seconds",
                                    "From the request's arrival to the response's status line.", labels,
                                    buckets=LATENCY_BUCKETS, registry=self.registry)
        self.latency = Histogram(f"{NAMESPACE}_request_duration_seconds",
                                 "From the request's arrival to its last byte.", labels,
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.speed = Histogram(f"{NAMESPACE}_output_tokens_per_second",
                               "Output tokens per second of each call that generated some.", labels,
                               buckets=RATE_BUCKETS, registry=self.registry)
        self.faults = Counter(f"{NAMESPACE}_faults_fired", "Injected faults that fired, by fault id.",
                              [*labels, "fault"], registry=self.registry)
        self.scripted = Counter(f"{NAMESPACE}_scripted_responses", "Calls answered by a scripted rule.",
                                [*labels, "rule"], registry=self.registry)
        self.registry.register(EngineGauges(engines))
        self._children: dict[tuple, object] = {}
        self._values: dict[str, set[str]] = {"model": set(), "fault": set(), "rule": set()}

    def _bounded(self, label: str, value: str) -> str:
        seen = self._values[label]
        if value in seen:
            return value
        if len(seen) >= MAX_LABEL_VALUES:
            return OTHER
        seen.add(value)
        return value

    def _child(self, metric, *labels: str):
        """`metric.labels(*labels)`, remembered: prometheus_client checks and locks on every `labels` call."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, call: Invocation) -> None:
        labels = (call.operation, self._bounded("model", call.model_id or ""))
        code = call.error.code if call.error is not None else ""
        self._child(self.requests, *labels, str(call.status or 0), code).inc()
        self._child(self.input_tokens, *labels).inc(call.input_tokens or 0)
        self._child(self.output_tokens, *labels).inc(call.output_tokens or 0)
        if call.first_byte_ms is not None:
            self._child(self.first_byte, *labels).observe(call.first_byte_ms / 1000)
        if call.latency_ms is not None:
            self._child(self.latency, *labels).observe(call.latency_ms / 1000)
            if call.output_tokens and call.latency_ms:
                self._child(self.speed, *labels).observe(call.output_tokens / (call.latency_ms / 1000))
        for fault in call.faults:
            self._child(self.faults, *labels, self._bounded("fault", fault)).inc()
        if call.rule is not None:
            self._child(self.scripted, *labels, self._bounded("rule", call.rule)).inc()

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
