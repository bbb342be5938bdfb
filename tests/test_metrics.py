"""`GET /_emulator/metrics`: Prometheus' text format, parsed with prometheus_client's own parser, counts checked
against the calls this test makes (as differences, since the session's server has answered other tests too)."""

from __future__ import annotations

import urllib.request

import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from emulator.admin_client import EmulatorAdmin

from conftest import HAIKU, make_client, user

MODEL = "eu.anthropic.claude-3-haiku-20240307-v1:0"  # a profile id no other test uses: its series start here


def scrape(url: str) -> tuple[dict, str]:
    with urllib.request.urlopen(url + "/_emulator/metrics", timeout=10) as reply:
        content_type = reply.headers["Content-Type"]
        text = reply.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, content_type


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def fresh(server):
    """An emulator of its own (sharing the session's loaded models): its metrics start empty, so label bounds
    filled by other tests' many model ids cannot fold this test's series into `other`."""
    from emulator.app import Settings
    from sibling_server import sibling

    with sibling(server, Settings()) as srv:
        yield srv


def test_metrics_count_the_calls_made(fresh):
    server, client, admin = fresh, make_client(fresh.url), EmulatorAdmin(fresh.url)
    before, content_type = scrape(server.url)
    assert content_type.startswith("text/plain; version=")  # Prometheus' text exposition
    # Paced, so each call takes some milliseconds and has a tokens-per-second figure.
    admin.script("one two three", model=MODEL, contains="meter me", usage={"input_tokens": 7, "output_tokens": 3},
                 pace_ms=10, name="meter")
    fault = admin.fail("ThrottlingException", count=1, operation="Converse", model=MODEL)
    with pytest.raises(ClientError) as throttled:
        client.converse(modelId=MODEL, messages=[user("meter me")])
    assert throttled.value.response["Error"]["Code"] == "ThrottlingException"
    for _ in range(2):
        client.converse(modelId=MODEL, messages=[user("meter me")])
    events = list(client.converse_stream(modelId=MODEL, messages=[user("meter me")])["stream"])
    assert events[-1]["metadata"]["usage"]["inputTokens"] == 7

    after, _ = scrape(server.url)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    converse = {"operation": "Converse", "model": MODEL}
    stream = {"operation": "ConverseStream", "model": MODEL}
    assert delta("bedrock_emulator_requests_total", **converse, status="200", error_code="") == 2
    assert delta("bedrock_emulator_requests_total", **converse, status="429", error_code="ThrottlingException") == 1
    assert delta("bedrock_emulator_requests_total", **stream, status="200", error_code="") == 1
    assert delta("bedrock_emulator_input_tokens_total", **converse) == 14
    assert delta("bedrock_emulator_output_tokens_total", **converse) == 6
    assert delta("bedrock_emulator_output_tokens_total", **stream) == 3
    assert delta("bedrock_emulator_scripted_responses_total", **converse, rule="meter") == 2
    assert delta("bedrock_emulator_scripted_responses_total", **stream, rule="meter") == 1
    assert delta("bedrock_emulator_faults_fired_total", **converse, fault=fault["id"]) == 1
    # Every call is one observation of each latency histogram; the +Inf bucket holds them all.
    assert delta("bedrock_emulator_request_duration_seconds_count", **converse) == 3
    assert delta("bedrock_emulator_time_to_first_byte_seconds_count", **stream) == 1
    assert delta("bedrock_emulator_request_duration_seconds_bucket", **converse, le="+Inf") == 3
    assert delta("bedrock_emulator_output_tokens_per_second_count", **converse) == 2


def test_model_gauges_follow_a_running_generation(server, client):
    from emulator.service import SERVICE

    local = server.app[SERVICE].catalog.lookup(HAIKU).local
    idle, _ = scrape(server.url)
    assert value(idle, "bedrock_emulator_running_sequences", model=local) == 0
    assert ("bedrock_emulator_queue_depth", (("model", local),)) in idle
    stream = client.converse_stream(modelId=HAIKU, messages=[user("Count from one to one hundred.")],
                                    inferenceConfig={"maxTokens": 400, "temperature": 0})["stream"]
    seen = []
    for event in stream:  # scraped after each event: the sequence is in the batch until the model's last token
        busy, _ = scrape(server.url)
        seen.append(value(busy, "bedrock_emulator_running_sequences", model=local))
    assert "messageStop" in event or "metadata" in event
    assert 1 in seen and seen[-1] == 0  # running while it generated, gone from the batch once finished


def test_client_chosen_label_values_are_bounded(fresh):
    server, client = fresh, make_client(fresh.url)
    """Invalid model ids are counted too, but past 200 distinct values they share the `other` label: no client can
    grow the series (and each scrape's time) without bound."""
    from emulator.inspector.metrics import MAX_LABEL_VALUES

    for i in range(MAX_LABEL_VALUES + 20):
        with pytest.raises(ClientError):
            client.converse(modelId=f"anthropic.no-such-model-{i}-v9:0", messages=[user("hi")])
    samples, _ = scrape(server.url)
    models = {dict(labels)["model"] for (name, labels) in samples if name == "bedrock_emulator_requests_total"}
    assert len(models) <= MAX_LABEL_VALUES + 1 and "other" in models
    assert value(samples, "bedrock_emulator_requests_total", operation="Converse", model="other", status="400",
                 error_code="ValidationException") >= 20
