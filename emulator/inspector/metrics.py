"""`GET /_emulator/metrics`: Prometheus text exposition of what the emulator answered.

Counters and histograms are fed from the invocation log (every finished Bedrock call passes through it once), so
the metrics and the log can never disagree. Model-side gauges (queue depth, running sequences) are read from the
engines at scrape time. One registry per app: two emulators in one process (tests) never share numbers.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

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


class _Counter:
    """A labelled counter kept as plain numbers (prometheus_client's own takes a lock and checks per `inc`, a
    measurable share of a scripted request); exposed as Prometheus' counter, `_created` included."""

    def __init__(self, name: str, documentation: str, labels: list[str]) -> None:
        self.name, self.documentation, self.labels = f"{NAMESPACE}_{name}", documentation, labels
        self.values: dict[tuple[str, ...], list[float]] = {}  # labels -> [value, created]

    def inc(self, labels: tuple[str, ...], amount: float = 1) -> None:
        entry = self.values.get(labels)
        if entry is None:
            entry = self.values[labels] = [0.0, time.time()]
        entry[0] += amount

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, (value, created) in list(self.values.items()):
            family.add_metric(list(labels), value, created=created)
        return family


class _Histogram:
    """A labelled histogram kept as plain bucket counts; exposed as Prometheus' histogram."""

    def __init__(self, name: str, documentation: str, labels: list[str], buckets: tuple[float, ...]) -> None:
        self.name, self.documentation, self.labels = f"{NAMESPACE}_{name}", documentation, labels
        self.bounds = [float(b) for b in buckets]
        self.les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        self.values: dict[tuple[str, ...], list] = {}  # labels -> [counts per bucket (not cumulative), sum, created]

    def observe(self, labels: tuple[str, ...], amount: float) -> None:
        entry = self.values.get(labels)
        if entry is None:
            entry = self.values[labels] = [[0] * len(self.les), 0.0, time.time()]
        entry[0][bisect_left(self.bounds, amount)] += 1  # the first bucket whose bound is >= amount
        entry[1] += amount

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, (counts, total, created) in list(self.values.items()):
            cumulative, running = [], 0
            for le, count in zip(self.les, counts):
                running += count
                cumulative.append((le, running))
            family.add_metric(list(labels), cumulative, total)
            family.samples.append(Sample(f"{self.name}_created", dict(zip(self.labels, labels)), created))
        return family


class _Families(Collector):
    def __init__(self, metrics: list) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable:
        for metric in self._metrics:
            yield metric.family()


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
        self.requests = _Counter("requests", "Bedrock calls answered, by outcome.", [*labels, "status", "error_code"])
        self.input_tokens = _Counter("input_tokens", "Input tokens billed.", labels)
        self.output_tokens = _Counter("output_tokens", "Output tokens billed.", labels)
        self.first_byte = _Histogram("time_to_first_byte_seconds",
                                     "From the request's arrival to the response's status line.", labels, LATENCY_BUCKETS)
        self.latency = _Histogram("request_duration_seconds", "From the request's arrival to its last byte.", labels,
                                  LATENCY_BUCKETS)
        self.speed = _Histogram("output_tokens_per_second", "Output tokens per second of each call that generated some.",
                                labels, RATE_BUCKETS)
        self.faults = _Counter("faults_fired", "Injected faults that fired, by fault id.", [*labels, "fault"])
        self.scripted = _Counter("scripted_responses", "Calls answered by a scripted rule.", [*labels, "rule"])
        self.registry.register(_Families([self.requests, self.input_tokens, self.output_tokens, self.first_byte,
                                          self.latency, self.speed, self.faults, self.scripted]))
        self.registry.register(EngineGauges(engines))
        self._values: dict[str, set[str]] = {"model": set(), "fault": set(), "rule": set()}

    def _bounded(self, label: str, value: str) -> str:
        seen = self._values[label]
        if value in seen:
            return value
        if len(seen) >= MAX_LABEL_VALUES:
            return OTHER
        seen.add(value)
        return value

    def observe(self, call: Invocation) -> None:
        labels = (call.operation, self._bounded("model", call.model_id or ""))
        code = call.error.code if call.error is not None else ""
        self.requests.inc((*labels, str(call.status or 0), code))
        self.input_tokens.inc(labels, call.input_tokens or 0)
        self.output_tokens.inc(labels, call.output_tokens or 0)
        if call.first_byte_ms is not None:
            self.first_byte.observe(labels, call.first_byte_ms / 1000)
        if call.latency_ms is not None:
            self.latency.observe(labels, call.latency_ms / 1000)
            if call.output_tokens and call.latency_ms:
                self.speed.observe(labels, call.output_tokens / (call.latency_ms / 1000))
        for fault in call.faults:
            self.faults.inc((*labels, self._bounded("fault", fault)))
        if call.rule is not None:
            self.scripted.inc((*labels, self._bounded("rule", call.rule)))

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
