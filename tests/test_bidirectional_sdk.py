"""InvokeModelWithBidirectionalStream (Nova Sonic) through the two SDKs that have it, over real HTTP/2:

- the AWS SDK for JavaScript v3 with its default client (h2c on http://), script tests/js/bidi.mjs, installed once
  into `<cache>/js-bidi` (skipped when node/npm are missing or npm cannot reach its registry);
- AWS's Python SDK `aws-sdk-bedrock-runtime` (smithy-python, Python 3.12+, CRT transport: HTTPS with ALPN h2 and
  the emulator's local CA), script tests/sonic_smithy.py, in a venv `<cache>/py312-bidi` made with a python3.12
  found on PATH or under pyenv (skipped, saying so, when there is none).

Each runs the same sessions: a text conversation of two turns, a tool-use round trip, a spoken (audio) turn, and a
caller who hangs up mid-answer. The model is the real local one (temperature 0).
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from emulator import app as app_module
from emulator.admin_client import EmulatorAdmin
from emulator.app import Settings
from emulator.edge import tls
from emulator.engine.sources import default_cache_dir
from emulator.server import BackgroundServer
from emulator.service import SERVICE

from conftest import raw_request
from jsnode import NodePackages, node_packages
from sibling_server import _SharedPool

HERE = Path(__file__).resolve().parent
JS_PACKAGES = ["@aws-sdk/client-bedrock-runtime@3.1163.0"]
PY_PACKAGES = ["aws-sdk-bedrock-runtime==0.12.0", "awscrt==0.38.1"]  # the SDK's HTTP/2 transport is the CRT's
SCENARIOS = ["text", "tools", "audio", "leave", "fault"]


@pytest.fixture(scope="module")
def tls_server(server):
    """A second emulator with --tls (the local CA) sharing the session server's loaded models."""
    pool = _SharedPool(server.app[SERVICE].pool)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(app_module, "ModelPool", lambda *args, **kwargs: pool)
        srv = BackgroundServer(Settings(), ssl_context=tls.context_for(default_cache_dir())).start(wait_ready=None)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def js_bidi() -> NodePackages:
    return node_packages("js-bidi", JS_PACKAGES)


def _python312() -> str | None:
    """A working Python 3.12+ interpreter (a pyenv shim on PATH may name one that is not installed)."""
    candidates = [shutil.which(name) for name in ("python3.12", "python3.13")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[23]*/bin/python3.1[23]")), reverse=True)
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys, venv; assert sys.version_info >= (3, 12)"],
                               capture_output=True, timeout=60)
        if probe.returncode == 0:
            return candidate
    return None


@pytest.fixture(scope="module")
def smithy_python() -> str:
    interpreter = _python312()
    if interpreter is None:
        pytest.skip("aws-sdk-bedrock-runtime needs Python 3.12+: no python3.12 on PATH or under ~/.pyenv/versions")
    venv = default_cache_dir() / "py312-bidi"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if not stamp.is_file() or stamp.read_text() != " ".join(PY_PACKAGES):
        subprocess.run([interpreter, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        installed = subprocess.run([str(python), "-m", "pip", "install", "-q", *PY_PACKAGES],
                                   capture_output=True, text=True, timeout=900)
        if installed.returncode != 0:
            pytest.skip(f"pip could not install {' '.join(PY_PACKAGES)}: {installed.stderr.strip()[-300:]}")
        stamp.write_text(" ".join(PY_PACKAGES))
    return str(python)


def _summary(stdout: str) -> dict:
    """A session's summary: the script's last JSON line."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, stdout[-2000:]
    return json.loads(lines[-1])


def _smithy(python: str, **env: str) -> dict:
    run = subprocess.run([python, str(HERE / "sonic_smithy.py")], cwd=HERE, env={**os.environ, **env},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return _summary(run.stdout)


@pytest.fixture(scope="module")
def sessions(server, tls_server, js_bidi, smithy_python) -> dict:
    """Every scenario through both SDKs: {(sdk, scenario): summary, (sdk, scenario, "log"): the log entry}."""
    results = {}
    ca = str(tls.ensure_ca(default_cache_dir()))
    for scenario in SCENARIOS:
        for sdk, target in (("js", server), ("python", tls_server)):
            admin = _admin(target, ca)
            admin.reset()
            if scenario == "leave":  # paced, so the answer is still being generated when the caller leaves
                admin.slow(token_ms=100, operation="InvokeModelWithBidirectionalStream")
            if scenario == "fault":  # the text session, its answer broken after two words
                admin.fail("ThrottlingException", operation="InvokeModelWithBidirectionalStream", after_events=2)
            script = "text" if scenario == "fault" else scenario
            if sdk == "js":
                summary = _summary(js_bidi.run("bidi.mjs", EP=server.url, SCENARIO=script))
            else:
                summary = _smithy(smithy_python, EP=tls_server.url, CA=ca, SCENARIO=script)
            results[sdk, scenario] = summary
            results[sdk, scenario, "log"] = _last_session(target)
            admin.reset()
    return results


def _admin(srv: BackgroundServer, ca: str) -> EmulatorAdmin:
    if srv.ssl_context is not None:  # urllib's default context reads SSL_CERT_FILE: the local CA
        os.environ["SSL_CERT_FILE"] = ca
    return EmulatorAdmin(srv.url)


def _last_session(srv: BackgroundServer, timeout: float = 30.0) -> dict:
    """The latest session's invocation log entry, once it has ended (a hung-up caller ends it a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        entries = [e for e in _admin(srv, str(tls.ensure_ca(default_cache_dir()))).invocations()
                   if e["operation"] == "InvokeModelWithBidirectionalStream"]
        if entries and entries[-1].get("latencyMs") is not None:
            return entries[-1]
        assert time.monotonic() < deadline, "the session never ended"
        time.sleep(0.2)


def _sentences(turn: dict) -> list[str]:
    """The assistant's sentences: each comes as SPECULATIVE text, then FINAL text."""
    parts = turn["text"]["ASSISTANT"].split("|")[1:]
    assert parts[0::2] == parts[1::2]
    return parts[0::2]


def _check_spoken_answer(turn: dict) -> None:
    """One answer, sentence by sentence: SPECULATIVE text, its placeholder audio, FINAL text; END_TURN last."""
    sentences = _sentences(turn)
    assert sentences
    speech = ["contentStart/TEXT/ASSISTANT/SPECULATIVE", "textOutput", "contentEnd/PARTIAL_TURN",
              "contentStart/AUDIO/ASSISTANT", "audioOutput", "contentEnd/PARTIAL_TURN",
              "contentStart/TEXT/ASSISTANT/FINAL", "textOutput"]
    expected = []
    for i in range(len(sentences)):
        expected += [*speech, "contentEnd/END_TURN" if i == len(sentences) - 1 else "contentEnd/PARTIAL_TURN"]
    events = turn["events"]
    start = events.index("contentStart/TEXT/ASSISTANT/SPECULATIVE")
    assert events[start:] == [*expected, "usageEvent", "completionEnd/END_TURN"]
    # 16-bit samples at 24 kHz, as long as each sentence takes to say at 2.5 words a second
    assert turn["audioBytes"] == sum(2 * round(max(0.2, len(s.split()) / 2.5) * 24000) for s in sentences)
    assert turn["ids"] == 1  # every event of the answer carries one completionId


SDKS = ["js", "python"]


@pytest.mark.parametrize("sdk", SDKS)
def test_a_text_conversation_of_two_turns(sessions, sdk):
    summary = sessions[sdk, "text"]
    assert summary["thrown"] is None
    first, second = summary["turns"]
    for turn in (first, second):
        assert turn["events"][0] == "completionStart"
        _check_spoken_answer(turn)
    assert "Paris" in first["text"]["ASSISTANT"]
    assert "4" in second["text"]["ASSISTANT"]
    # the second turn's prompt holds the first exchange: more input tokens than the first turn's
    assert second["usage"]["input"] > 2 * first["usage"]["input"]
    entry = sessions[sdk, "text", "log"]
    assert entry["status"] == 200 and entry["error"] is None
    sent = [next(iter(e["event"])) for e in entry["request"]]
    assert sent[:2] == ["sessionStart", "promptStart"] and sent[-2:] == ["promptEnd", "sessionEnd"]
    assert entry["response"][0]["event"] == {"completionStart": entry["response"][0]["event"]["completionStart"]}


@pytest.mark.parametrize("sdk", SDKS)
def test_a_tool_use_round_trip(sessions, sdk):
    summary = sessions[sdk, "tools"]
    assert summary["thrown"] is None
    [turn] = summary["turns"]
    assert turn["toolUse"] == {"name": "getWeather", "input": {"city": "Paris"}}
    assert turn["events"][:5] == ["completionStart", "contentStart/TOOL/TOOL", "toolUse", "contentEnd/TOOL_USE", "usageEvent"]
    _check_spoken_answer(turn)  # the answer to the tool's result, in the same completion
    assert "sunny" in turn["text"]["ASSISTANT"].lower()


@pytest.mark.parametrize("sdk", SDKS)
def test_an_audio_turn_is_a_placeholder_transcript_and_a_spoken_answer(sessions, sdk):
    summary = sessions[sdk, "audio"]
    assert summary["thrown"] is None
    [turn] = summary["turns"]
    assert turn["events"][:4] == ["completionStart", "contentStart/TEXT/USER/FINAL", "textOutput", "contentEnd/END_TURN"]
    assert turn["text"]["USER"] == "|[audio input: 1.50 s of speech]"  # 1.5 s of tone; the trailing pause ends it
    _check_spoken_answer(turn)
    [audio] = [e for e in sessions[sdk, "audio", "log"]["request"] if "audioInput" in e["event"]][:1]
    assert audio["event"]["audioInput"]["content"] == "<1024 bytes of LPCM>"  # the log keeps sizes, not audio
    sent = [e["event"]["audioOutput"]["content"] for e in sessions[sdk, "audio", "log"]["response"] if "audioOutput" in e["event"]]
    assert sent[0] == "<4800 bytes of LPCM>"  # 100 ms at 24 kHz


@pytest.mark.parametrize("sdk", SDKS)
def test_a_caller_who_hangs_up_mid_answer_stops_the_generation(server, sessions, sdk):
    summary = sessions[sdk, "leave"]
    assert summary["thrown"] is None
    [turn] = summary["turns"]
    assert turn["events"] == ["completionStart", "contentStart/TEXT/ASSISTANT/SPECULATIVE", "textOutput"]
    entry = sessions[sdk, "leave", "log"]
    assert entry["error"]["message"] == "The client closed the connection."
    assert entry["outputTokens"] is None  # cancelled before the (paced) 1000-token answer finished
    assert entry["latencyMs"] < 30000
    service = server.app[SERVICE]
    engine = service.pool.text[service.catalog.lookup("amazon.nova-sonic-v1:0").local]
    deadline = time.monotonic() + 10
    while engine.active_sequences and time.monotonic() < deadline:
        time.sleep(0.1)
    assert engine.active_sequences == 0


@pytest.mark.parametrize("sdk", SDKS)
def test_a_mid_stream_fault_ends_the_session_with_the_modeled_exception(sessions, sdk):
    summary = sessions[sdk, "fault"]
    assert summary["turns"] == []
    assert summary["thrown"]["name"] == "ThrottlingException"
    entry = sessions[sdk, "fault", "log"]
    assert entry["error"]["code"] == "ThrottlingException" and entry["error"]["inStream"] is True
    assert entry["faults"]


def test_http1_callers_get_a_validation_exception_naming_http2(server):
    reply = raw_request(server.url, "/model/amazon.nova-sonic-v1%3A0/invoke-with-bidirectional-stream", b"",
                        headers={"Content-Type": "application/vnd.amazon.eventstream"})
    assert reply.status == 400
    assert reply.headers["x-amzn-ErrorType"] == "ValidationException"
    assert json.loads(reply.body)["message"].startswith("InvokeModelWithBidirectionalStream requires HTTP/2")


def test_other_models_are_refused(server):
    import h2.connection  # noqa: F401 - the raw HTTP/2 client below

    status, headers, _ = asyncio.run(_h2_post(server, "/model/amazon.nova-lite-v1%3A0/invoke-with-bidirectional-stream"))
    assert (status, headers.get("x-amzn-errortype")) == (400, "ValidationException")


async def _h2_post(srv: BackgroundServer, path: str) -> tuple[int, dict, bytes]:
    """One HTTP/2 (h2c) POST with an empty body, read whole."""
    import h2.config
    import h2.connection
    import h2.events

    reader, writer = await asyncio.open_connection(srv.host, srv.port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", f"{srv.host}:{srv.port}"),
                          (":path", path), ("content-type", "application/vnd.amazon.eventstream")], end_stream=True)
    writer.write(conn.data_to_send())
    status, headers, body = 0, {}, b""
    while True:
        data = await asyncio.wait_for(reader.read(65536), 30)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                headers = dict(event.headers)
                status = int(headers[":status"])
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                writer.close()
                return status, headers, body
        writer.write(conn.data_to_send())
    return status, headers, body


def test_with_auth_keys_the_session_is_signed_and_checked_without_reading_its_body(server, js_bidi, tmp_path):
    """SigV4 signs the event-stream marker, not the body: checking it must not wait for a body that lasts a session."""
    from emulator.protocol.access import AccessConfig
    from sibling_server import sibling

    keys = tmp_path / "keys.ini"
    keys.write_text("[js]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    with sibling(server, Settings(access=AccessConfig(auth_keys_path=keys))) as srv:
        summary = _summary(js_bidi.run("bidi.mjs", EP=srv.url, SCENARIO="audio"))
    assert summary["thrown"] is None and len(summary["turns"]) == 1
