"""Issue 10's defects, each re-run through real sockets: nothing freezes the server, bad input is a modeled 4xx,
admin state is never poisoned, memory and queues are bounded, shutdown ends streams with an exception frame."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import threading
import time
import urllib.parse

import pytest
from botocore.exceptions import ClientError, EventStreamError

from conftest import HAIKU, make_client, raw_request, user
from emulator.protocol import http1
from emulator.service import SERVICE
from emulator_process import HealthMonitor, emulator_process, raw_exchange


@pytest.fixture
def fresh(server):
    """The session server back at its start-up state before and after the test."""
    raw_request(server.url, "/_emulator/reset")
    yield server
    raw_request(server.url, "/_emulator/reset")


@pytest.fixture(scope="module")
def isolated(tmp_path_factory):
    """A server in its own process for the latency checks: the test process's heap and GIL stay out of them."""
    folder = tmp_path_factory.mktemp("isolated")
    with emulator_process(log=folder / "server.log") as (url, _):
        yield url


def post_json(url: str, path: str, payload, method: str = "POST", headers: dict | None = None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    reply = raw_request(url, path, body, method=method, headers=headers)
    return reply, (json.loads(reply.body) if reply.body else None)


def modeled(reply, status: int, code: str) -> str:
    assert reply.status == status, reply.body[:300]
    assert reply.headers["x-amzn-ErrorType"] == code
    return json.loads(reply.body)["message"]


def converse_body(text: str = "Hi", **inference) -> dict:
    return {"messages": [user(text)], "inferenceConfig": {"maxTokens": 1, **inference}}


# --- 1. nothing user-supplied freezes the loop ---------------------------------------------------------------

def test_catastrophic_rule_regexes_never_freeze_the_server(isolated, tmp_path):
    url = isolated
    raw_request(url, "/_emulator/reset")
    reply, _ = post_json(url, "/_emulator/rules", {"match": {"regex": "(a|aa)+$"}, "respond": {"text": "x"}})
    assert "backtracks catastrophically" in modeled(reply, 400, "ValidationException")
    # `(a+)+$` (the example) is linear on the safe engine; `(x+x+)+y` passes the probe but hits the budget.
    for pattern in ("(a+)+$", "(x+x+)+y"):
        reply, _ = post_json(url, "/_emulator/rules", {"match": {"regex": pattern}, "respond": {"text": "Matched."}})
        assert reply.status == 200
    with HealthMonitor(url, tmp_path) as monitor:
        started = time.monotonic()
        reply, _ = post_json(url, f"/model/{HAIKU}/converse", converse_body("a" * 27 + "!"))
        assert reply.status == 200
        reply, _ = post_json(url, f"/model/{HAIKU}/converse", converse_body("x" * 5000))
        message = modeled(reply, 400, "ValidationException")
        assert message.startswith("The scripted rule regex '(x+x+)+y' took longer than 100 ms")
        assert time.monotonic() - started < 10
    monitor.assert_responsive()


def test_a_2mb_guardrail_text_is_masked_without_stalling_health(isolated, tmp_path):
    text = ("Contact me at a@b.com or 555-123-4567 about ORD-123456. " * 40000)[:2_000_000]
    body = {"source": "INPUT", "content": [{"text": {"text": text}}]}
    raw = json.dumps(body).encode()
    with HealthMonitor(isolated, tmp_path) as monitor:
        reply = raw_request(isolated, "/guardrail/demoguardrail/version/1/apply", raw)
    answer = json.loads(reply.body)
    assert reply.status == 200
    assert answer["action"] == "GUARDRAIL_INTERVENED"
    assert answer["outputs"][0]["text"].startswith("Contact me at {EMAIL} or {PHONE} about {order-id}. Contact")
    assert answer["guardrailCoverage"]["textCharacters"]["total"] == 2_000_000
    monitor.assert_responsive()


def test_anonymizing_is_linear_in_the_text():
    from emulator.guardrails.policies import evaluate, load

    guardrail = load(None)["demoguardrail"]
    small, large = "x a@b.com " * 2_000, "x a@b.com " * 20_000
    timings = []
    for text in (small, large):
        evaluation = evaluate(guardrail, text)
        started = time.perf_counter()
        masked = evaluation.anonymized(text)
        timings.append(time.perf_counter() - started)
        assert masked.count("{EMAIL}") == text.count("@")
    assert timings[1] < timings[0] * 40  # 10x the text: about 10x the time (quadratic would be 100x)


def test_caps_are_refused_whole_with_a_400_naming_them(fresh):
    url = fresh.url
    reply, _ = post_json(url, "/_emulator/rules", {"rules": [{"respond": {"text": "x"}}] * 1001})
    assert "at most 1000 rules (got 1001)" in modeled(reply, 400, "ValidationException")
    reply, _ = post_json(url, "/_emulator/rate-limits", {"limits": [{"rpm": 5}] * 101}, method="PUT")
    assert "at most 100 rate limits (got 101)" in modeled(reply, 400, "ValidationException")
    reply = raw_request(url, "/_emulator/rules", b"{", headers={"Content-Length": str(3 * 1024 * 1024)})
    assert modeled(reply, 400, "ValidationException") == "An admin request body is limited to 2097152 bytes."
    # Nothing of a refused request is kept, not even the valid rules before the bad one.
    reply, _ = post_json(url, "/_emulator/rules", {"rules": [{"respond": {"text": "ok"}}, {"respond": {}}]})
    modeled(reply, 400, "ValidationException")
    assert json.loads(raw_request(url, "/_emulator/rules", method="GET").body)["rules"] == []


def test_titan_v2_input_past_50000_characters_is_refused_before_tokenising(client):
    body = json.dumps({"inputText": "a " * 30_000})
    with pytest.raises(ClientError) as caught:
        client.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=body)
    assert caught.value.response["Error"]["Message"] == (
        "Malformed input request: #/inputText: expected maxLength: 50000, actual: 60000, "
        "please reformat your input and try again.")


def test_a_prompt_no_context_could_hold_is_refused_at_once(server):
    started = time.monotonic()
    reply, _ = post_json(server.url, f"/model/{HAIKU}/converse", converse_body("word " * 2_000_000))
    assert modeled(reply, 400, "ValidationException") == "Input is too long for requested model."
    assert time.monotonic() - started < 10


# --- 3. every malformed input is a modeled 4xx --------------------------------------------------------------

MALFORMED = [
    ("5000-digit integer", f"/model/{HAIKU}/converse",
     b'{"inferenceConfig": {"maxTokens": ' + b"9" * 5000 + b"}}", "a number has too many digits"),
    ("990 levels of nesting", f"/model/{HAIKU}/converse", b'{"system": ' + b"[" * 990 + b"]" * 990 + b"}",
     "nested too deeply"),
    ("lone surrogate", f"/model/{HAIKU}/converse",
     b'{"messages": [{"role": "user", "content": [{"text": "\\ud800"}]}]}', "unpaired UTF-16 surrogate"),
    ("Titan maxTokenCount 1e400", "/model/amazon.titan-text-express-v1/invoke",
     b'{"inputText": "Hi", "textGenerationConfig": {"maxTokenCount": 1e400}}', "the number 1e400 is out of range"),
    ("NaN temperature", f"/model/{HAIKU}/converse",
     b'{"messages": [{"role": "user", "content": [{"text": "Hi"}]}], "inferenceConfig": {"temperature": NaN}}',
     "NaN is not a JSON value"),
    ("huge integer in a native knob", "/model/amazon.nova-lite-v1:0/invoke",
     b'{"messages": [{"role": "user", "content": [{"text": "Hi"}]}], "inferenceConfig": {"topK": 1' + b"0" * 400 + b"}}",
     "is not less or equal to"),
]


@pytest.mark.parametrize("path, body, detail", [case[1:] for case in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_bodies_are_validation_errors(server, path, body, detail):
    assert detail in modeled(raw_request(server.url, path, body), 400, "ValidationException")


def test_a_near_zero_temperature_samples_greedily_instead_of_reaching_torch(client):
    reply = client.converse(modelId=HAIKU, messages=[user("Hi")], inferenceConfig={"maxTokens": 3, "temperature": 1e-300})
    assert reply["usage"]["outputTokens"] >= 1


def test_http_level_errors_are_modeled(server):
    url = server.url
    message = modeled(raw_request(url, "/model/abc%0Adef/converse", b"{}"), 404, "UnknownOperationException")
    assert message == "No operation matches the request's method and path."
    reply = raw_request(url, f"/model/{HAIKU}/converse", b"{}", headers={"Content-Encoding": "br"})
    assert modeled(reply, 400, "ValidationException").startswith("Malformed request: Can not decode content-encoding")
    reply = raw_request(url, "/async-invoke?maxResults=%C2%B2", method="GET")
    assert "at 'maxResults' failed to satisfy constraint: Member must be an integer" in modeled(reply, 400, "ValidationException")
    reply = raw_request(url, "/_emulator/invocations?limit=%C2%B2", method="GET")
    modeled(reply, 400, "ValidationException")
    reply = raw_request(url, f"/model/{HAIKU}/converse", json.dumps(converse_body()).encode(),
                        headers={"amz-sdk-request": "attempt=" + "9" * 5000})
    assert reply.status == 200
    for head in (b"POST /x HTTP/1.1\r\nHost: x\r\nBad\x01Header: y\r\nContent-Length: 0\r\n\r\n",
                 b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"b" * 20000 + b"\r\n\r\n"):
        status, headers, body = raw_exchange(url, head)
        assert status == 400 and headers["x-amzn-errortype"] == "ValidationException"
        assert json.loads(body)["message"].startswith("Malformed request: ")


def test_error_messages_quote_a_bounded_prefix_of_the_value(server):
    body = {"messages": [{"role": "x" * 1_000_000, "content": [{"text": "Hi"}]}]}
    message = modeled(raw_request(server.url, f"/model/{HAIKU}/converse", json.dumps(body).encode()), 400,
                      "ValidationException")
    assert len(message) < 5000 and "'" + "x" * 4096 + "...'" in message


# --- 4. admin state is never poisoned -----------------------------------------------------------------------

def test_the_invocation_log_always_serialises_after_refused_requests(fresh):
    url = fresh.url
    for _, path, body, _ in MALFORMED:
        raw_request(url, path, body)
    for query in ("", "?format=bedrock"):
        reply = raw_request(url, "/_emulator/invocations" + query, method="GET")
        assert reply.status == 200
        assert len(json.loads(reply.body)["invocations"]) == len(MALFORMED)


def test_an_invocation_log_file_never_turns_a_400_into_a_500(tmp_path):
    from emulator.server import BackgroundServer
    from emulator.app import Settings
    from emulator.testing import TestKitConfig

    log = tmp_path / "invocations.jsonl"
    srv = BackgroundServer(Settings(testing=TestKitConfig(invocation_log_path=log))).start(wait_ready=None)
    try:
        for _, path, body, _ in MALFORMED[:4]:
            assert raw_request(srv.url, path, body).status == 400
    finally:
        srv.stop()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["errorCode"] for line in lines] == ["ValidationException"] * 4
    assert lines[2]["input"]["inputBodyJson"] == '{"messages": [{"role": "user", "content": [{"text": "\\ud800"}]}]}'


# --- 5. memory ----------------------------------------------------------------------------------------------

def test_large_bodies_are_logged_truncated_with_a_marker(fresh):
    url = fresh.url
    body = json.dumps(converse_body("z" * 3_000_000)).encode()
    raw_request(url, f"/model/{HAIKU}/converse", body)
    entry = json.loads(raw_request(url, "/_emulator/invocations", method="GET").body)["invocations"][-1]
    assert entry["request"]["emulatorTruncated"]["bytes"] == len(body)
    assert entry["request"]["emulatorTruncated"]["prefix"].startswith('{"messages"')
    assert fresh.run(_log_bytes(fresh)) <= 1024 * 1024 + 1024


async def _log_bytes(server) -> int:
    from emulator.testing import TESTKIT

    return server.app[TESTKIT].log.bytes


def test_a_body_over_bedrocks_limit_is_refused_from_content_length_unread(server):
    head = (f"POST /model/{HAIKU}/invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 25000001\r\n\r\n").encode()
    started = time.monotonic()
    status, headers, body = raw_exchange(server.url, head)
    assert time.monotonic() - started < 5
    assert status == 400 and headers["x-amzn-errortype"] == "ValidationException"
    assert json.loads(body)["message"] == "The request body exceeds the maximum size of 25000000 bytes."


def test_a_client_trickling_its_headers_is_disconnected(server, monkeypatch):
    monkeypatch.setattr(http1, "HEADER_TIMEOUT_S", 1.0)
    parts = urllib.parse.urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"POST /model/x/converse HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server
        assert time.monotonic() - started < 5


# --- 6. overload ----------------------------------------------------------------------------------------------

def test_overload_answers_throttling_and_health_reports_the_queue(fresh):
    from emulator.engine.scheduler import MAX_BATCH

    admission = fresh.app[SERVICE].admission
    saved = admission.max_queue
    admission.max_queue = 0  # capacity: the batch rows only
    client = make_client(fresh.url, max_pool_connections=64)
    outcomes: list = []
    streams: list = []

    def call() -> None:
        try:
            reply = client.converse_stream(modelId=HAIKU, messages=[user("Tell me a long story.")],
                                           inferenceConfig={"maxTokens": 400})
            streams.append(reply["stream"])
            outcomes.append("streaming")
        except ClientError as exc:
            outcomes.append((exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"],
                             exc.response["Error"]["Message"]))

    try:
        threads = [threading.Thread(target=call) for _ in range(MAX_BATCH + 8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        health = json.loads(raw_request(fresh.url, "/_emulator/health", method="GET").body)
    finally:
        for stream in streams:
            stream.close()
        admission.max_queue = saved
    throttled = [o for o in outcomes if o != "streaming"]
    assert len(throttled) == 8
    assert set(throttled) == {(429, "ThrottlingException", "Too many requests, please wait before trying again.")}
    queue = health["queues"]["smollm2-135m-instruct"]
    assert queue["maxQueue"] == 0 and queue["refused"] >= 8


# --- 7. shutdown ----------------------------------------------------------------------------------------------

def test_sigterm_ends_open_streams_with_an_exception_frame_and_records_async_jobs(tmp_path):
    out = tmp_path / "async"
    with emulator_process("--shutdown-grace", "1", "--async-output-dir", str(out), log=tmp_path / "1.log") as (url, proc):
        client = make_client(url)
        arn = client.start_async_invoke(
            modelId="amazon.titan-text-express-v1",
            modelInput={"inputText": "Write a very long story.", "textGenerationConfig": {"maxTokenCount": 3000}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://bucket/jobs"}})["invocationArn"]
        reply = client.converse_stream(modelId=HAIKU, messages=[user("Write a very long story about a dragon.")],
                                       inferenceConfig={"maxTokens": 3000})
        events = 0
        with pytest.raises(EventStreamError) as caught:
            for _ in reply["stream"]:
                events += 1
                if events == 3:
                    proc.send_signal(signal.SIGTERM)
        assert caught.value.response["Error"]["Code"] == "serviceUnavailableException"
        assert proc.wait(30) == 0
    with emulator_process("--async-output-dir", str(out), log=tmp_path / "2.log") as (url, _):
        job = make_client(url).get_async_invoke(invocationArn=arn)
    assert job["status"] == "Failed"
    assert job["failureMessage"] == "The service is shutting down and could not finish this request. Try again later."


# --- 8. async output keys -------------------------------------------------------------------------------------

def test_async_output_keys_are_normalised_once_and_written_privately(client, server):
    from emulator.api.async_invoke import JOBS

    body = {"inputText": "Hi", "textGenerationConfig": {"maxTokenCount": 2}}
    arn = client.start_async_invoke(modelId="amazon.titan-text-express-v1", modelInput=body,
                                    outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://bucket/a/../b/./c//"}})["invocationArn"]
    invocation_id = arn.rsplit("/", 1)[1]
    for _ in range(600):
        job = client.get_async_invoke(invocationArn=arn)
        if job["status"] != "InProgress":
            break
        time.sleep(0.1)
    assert job["status"] == "Completed"
    assert job["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"] == f"s3://bucket/a/b/c/{invocation_id}"
    written = server.app[JOBS].output_dir / "bucket" / "a" / "b" / "c" / invocation_id / "output.json"
    assert stat.S_IMODE(os.stat(written).st_mode) == 0o600
    for uri, detail in (("s3://bucket/" + "k" * 300, "longer than 255 bytes"), ("s3://bucket/a\x00b", "control character")):
        with pytest.raises(ClientError) as caught:
            client.start_async_invoke(modelId="amazon.titan-text-express-v1", modelInput=body,
                                      outputDataConfig={"s3OutputDataConfig": {"s3Uri": uri}})
        message = caught.value.response["Error"]["Message"]
        assert detail in message and str(server.app[JOBS].output_dir) not in message
