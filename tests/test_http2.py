"""HTTP/2 (h2c with prior knowledge, and ALPN under TLS) on the same port as HTTP/1.1, driven by real clients.

The JS SDK v3 and LangChain.js with their DEFAULT clients (HTTP/2), httpx with http2, curl, boto3 over https
with a Bedrock API key, and a raw `h2` client for what no SDK does on purpose (resetting a stream mid-generation,
garbage after the preface). Node packages are installed once into `<cache>/js-http2` (skipped when npm cannot
reach its registry). A second server with `--tls` (the local CA) shares the session's model cache.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import h2.config
import h2.connection
import h2.errors
import h2.events
import hpack
import httpx
import pytest
from botocore.eventstream import EventStreamBuffer
from conftest import HAIKU, default_engine, user
from jsnode import NodePackages, node_packages

from emulator.app import Settings
from aiohttp import web

from emulator.edge import tls
from emulator.edge.site import EdgeRunner, EdgeSite
from emulator.engine.sources import default_cache_dir
from emulator.server import BackgroundServer

PACKAGES = ["@aws-sdk/client-bedrock-runtime@3.1163.0", "@langchain/aws@1.4.5", "@langchain/core@1.4.0"]
QUOTED = urllib.parse.quote(HAIKU, safe="")
SCRIPTED = "one two three four"
LONG = {"messages": [user("Write a very long essay about the history of Rome.")],
        "inferenceConfig": {"temperature": 0, "maxTokens": 1000}}


# -- servers and clients -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_server(server):
    """The same emulator with --tls (the local CA's certificate), sharing the model cache."""
    cache = default_cache_dir()
    context = tls.context_for(cache)
    srv = BackgroundServer(Settings(cache_dir=cache), ssl_context=context).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def ca() -> Path:
    return tls.ensure_ca(default_cache_dir())


@pytest.fixture
def scripted(server, tls_server):
    """Every Converse* answers SCRIPTED; `stream-i` prompts answer `answer i ...` (paced, so streams interleave)."""
    rules = [{"match": {"contains": f"stream-{i}."}, "respond": {"text": f"answer {i} is here", "pace_ms": 20}}
             for i in range(32)]
    rules.append({"respond": {"text": SCRIPTED}})
    for url in (server.url, tls_server.url):
        _admin(url, "POST", "/rules", {"rules": rules})
    yield
    for url in (server.url, tls_server.url):
        _admin(url, "POST", "/reset")


def _admin(url: str, method: str, path: str, body: dict | None = None) -> dict:
    with httpx.Client(verify=False, timeout=60) as client:  # noqa: S501 - our own server on loopback
        reply = client.request(method, f"{url}/_emulator{path}", json=body)
        reply.raise_for_status()
        return reply.json()


def h2c_client() -> httpx.Client:
    return httpx.Client(http1=False, http2=True, timeout=120)  # http1=False: HTTP/2 with prior knowledge


# -- httpx -------------------------------------------------------------------------------------------------------

def test_httpx_h2c_converse_and_errors_and_admin_share_the_http1_port(server, scripted):
    with h2c_client() as client:
        reply = client.post(f"{server.url}/model/{QUOTED}/converse", json={"messages": [user("hi")]})
        assert reply.http_version == "HTTP/2"
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/json"
        assert len(reply.headers["x-amzn-requestid"]) == 36
        assert "transfer-encoding" not in reply.headers and "connection" not in reply.headers
        assert reply.json()["output"]["message"]["content"] == [{"text": SCRIPTED}]

        bad = client.post(f"{server.url}/model/{QUOTED}/converse", json={"messages": "nope"})
        assert (bad.status_code, bad.headers["x-amzn-errortype"]) == (400, "ValidationException")
        assert bad.json()["message"].startswith("1 validation error detected")

        unknown = client.get(f"{server.url}/no/such/operation")
        assert (unknown.status_code, unknown.headers["x-amzn-errortype"]) == (404, "UnknownOperationException")

        assert client.get(f"{server.url}/_emulator/health").json()["status"] == "ok"
        assert client.get(f"{server.url}/_emulator/rules").json()["rules"][-1]["respond"]["text"] == SCRIPTED
    with httpx.Client(timeout=60) as http1:  # the same port still speaks HTTP/1.1
        reply = http1.get(f"{server.url}/_emulator/health")
        assert (reply.http_version, reply.status_code) == ("HTTP/1.1", 200)


def test_httpx_h2c_converse_stream_is_framed_event_by_event(server, scripted):
    with h2c_client() as client, client.stream(
        "POST", f"{server.url}/model/{QUOTED}/converse-stream", json={"messages": [user("stream-3.")]}
    ) as reply:
        assert reply.http_version == "HTTP/2"
        assert reply.headers["content-type"] == "application/vnd.amazon.eventstream"
        buffer, events = EventStreamBuffer(), []
        for chunk in reply.iter_raw():
            buffer.add_data(chunk)
            events.extend((m.headers[":event-type"], json.loads(m.payload)) for m in buffer)
    names = [name for name, _ in events]
    assert names[0] == "messageStart" and names[-2:] == ["messageStop", "metadata"]
    assert "".join(p["delta"]["text"] for n, p in events if n == "contentBlockDelta") == "answer 3 is here"


def test_a_large_request_body_flows_through_the_receive_windows(server):
    body = b'{"messages": "' + b"x" * (3 * 1024 * 1024) + b'"}'  # far beyond the initial windows
    with h2c_client() as client:
        reply = client.post(f"{server.url}/model/{QUOTED}/converse", content=body,
                            headers={"content-type": "application/json"})
    assert (reply.status_code, reply.headers["x-amzn-errortype"]) == (400, "ValidationException")


def test_httpx_over_tls_negotiates_h2_by_alpn_and_http1_still_works(tls_server, ca, scripted):
    for http2, version in ((True, "HTTP/2"), (False, "HTTP/1.1")):
        with httpx.Client(http2=http2, verify=ssl.create_default_context(cafile=str(ca)), timeout=120) as client:
            reply = client.post(f"{tls_server.url}/model/{QUOTED}/converse", json={"messages": [user("hi")]})
            assert reply.http_version == version
            assert reply.json()["output"]["message"]["content"] == [{"text": SCRIPTED}]


# -- curl --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("secure", [False, True], ids=["h2c", "https"])
def test_curl_http2(server, tls_server, ca, scripted, secure):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    if secure:
        url, flags = tls_server.url, ["--http2", "--cacert", str(ca)]
    else:
        url, flags = server.url, ["--http2-prior-knowledge"]
    run = subprocess.run(
        [curl, "-sS", *flags, "-w", "\n%{http_version} %{http_code}", "-H", "content-type: application/json",
         "--data", json.dumps({"messages": [user("hi")]}), f"{url}/model/{QUOTED}/converse"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    body, status = run.stdout.rsplit("\n", 1)
    assert status == "2 200"
    assert json.loads(body)["output"]["message"]["content"] == [{"text": SCRIPTED}]


# -- boto3 with a Bedrock API key --------------------------------------------------------------------------------

def test_boto3_over_https_with_a_bedrock_api_key_and_nothing_else(tls_server, ca, scripted):
    """AWS_BEARER_TOKEN_BEDROCK (botocore refuses it on plain http) plus trusting the local CA: no code change."""
    code = (
        "import boto3, json, sys\n"
        "client = boto3.client('bedrock-runtime', endpoint_url=sys.argv[1], region_name='us-east-1')\n"
        f"reply = client.converse(modelId={HAIKU!r}, messages=[{{'role': 'user', 'content': [{{'text': 'hi'}}]}}])\n"
        "stream = client.converse_stream(modelId=" + repr(HAIKU) + ", messages=[{'role': 'user', 'content': [{'text': 'hi'}]}])\n"
        "text = ''.join(e['contentBlockDelta']['delta']['text'] for e in stream['stream'] if 'contentBlockDelta' in e)\n"
        "print(json.dumps([reply['output']['message']['content'][0]['text'], text]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_BEARER_TOKEN_BEDROCK="ABSKQmVkcm9ja0FQSUtleS1leGFtcGxl", AWS_CA_BUNDLE=str(ca),
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    run = subprocess.run([sys.executable, "-c", code, tls_server.url], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == [SCRIPTED, SCRIPTED]
    [*_, last] = _admin(tls_server.url, "GET", "/invocations")["invocations"]
    assert last["operation"] == "ConverseStream"


# -- the JS SDK and LangChain.js with their default clients ------------------------------------------------------

@pytest.fixture(scope="module")
def js_packages() -> NodePackages:
    return node_packages("js-http2", PACKAGES, what="the JS SDK and LangChain.js")


def _node(js: NodePackages, script: str, ca: Path, **env: str) -> list[dict]:
    return js.json_lines(script, NODE_EXTRA_CA_CERTS=str(ca), **env)


def h2_opened(server: BackgroundServer) -> int:
    [site] = server._runner.sites
    return site.opened["h2"]


@pytest.mark.parametrize("secure", [False, True], ids=["h2c", "https"])
def test_js_sdk_default_client_every_operation(server, tls_server, ca, js_packages, scripted, secure):
    target = tls_server if secure else server
    opened = h2_opened(target)
    cases = {line["case"]: line for line in _node(js_packages, "http2.mjs", ca, EP=target.url, GUARDRAIL="demoguardrail")}
    converse = cases["Converse"]
    assert (converse["text"], converse["stop"], converse["status"]) == (SCRIPTED, "end_turn", 200)
    assert len(converse["requestId"]) == 36
    assert cases["ConverseStream"] == {"case": "ConverseStream", "text": SCRIPTED, "first": "messageStart",
                                       "last": "metadata"}
    assert cases["InvokeModel"] == {"case": "InvokeModel", "text": SCRIPTED, "contentType": "application/json"}
    assert cases["InvokeModelWithResponseStream"] == {"case": "InvokeModelWithResponseStream", "text": SCRIPTED,
                                                      "first": "message_start", "last": "message_stop"}
    assert cases["CountTokens"]["inputTokens"] > 0
    assert cases["ApplyGuardrail"]["action"] == "NONE"
    error = cases["error"]
    assert (error["name"], error["status"]) == ("ValidationException", 400)
    assert error["message"] == "The provided model identifier is invalid."
    # 32 at once; the default client opens one HTTP/2 session per call and closes it (GOAWAY) once the headers
    # are in, so every stream here outlives its client's GOAWAY and must still arrive whole.
    assert cases["concurrent"]["texts"] == [f"answer {i} is here" for i in range(32)]
    assert h2_opened(target) - opened == 7 + 32  # every call was HTTP/2


def test_js_sdk_32_calls_multiplexed_on_one_connection(server, ca, js_packages, scripted):
    """The JS SDK never shares a session between event streams (see http2.mjs); plain calls it multiplexes."""
    opened = h2_opened(server)
    [result] = _node(js_packages, "http2.mjs", ca, EP=server.url, MODE="multiplexed")
    assert result["texts"] == [f"answer {i} is here" for i in range(32)]
    assert h2_opened(server) - opened == 1


async def test_httpx_32_converse_streams_multiplexed_on_one_connection(server, scripted):
    opened = h2_opened(server)

    async def text(client: httpx.AsyncClient, i: int) -> str:
        body = {"messages": [user(f"stream-{i}.")]}
        async with client.stream("POST", f"{server.url}/model/{QUOTED}/converse-stream", json=body) as reply:
            buffer, deltas = EventStreamBuffer(), []
            async for chunk in reply.aiter_raw():
                buffer.add_data(chunk)
                deltas += [json.loads(m.payload)["delta"]["text"] for m in buffer
                           if m.headers[":event-type"] == "contentBlockDelta"]
        return "".join(deltas)

    async with httpx.AsyncClient(http1=False, http2=True, timeout=120) as client:
        texts = await asyncio.gather(*(text(client, i) for i in range(32)))
    assert texts == [f"answer {i} is here" for i in range(32)]
    assert h2_opened(server) - opened == 1


def test_langchain_js_default_client_over_https(tls_server, ca, js_packages, scripted):
    [result] = _node(js_packages, "http2_langchain.mjs", ca, HOST=f"127.0.0.1:{tls_server.port}")
    assert result == {"invoke": SCRIPTED, "stream": SCRIPTED}


# -- raw HTTP/2: resets, protocol errors ------------------------------------------------------------------------

class RawH2:
    """A bare `h2` client over a socket, for what SDKs do not do on purpose."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.authority = parts.netloc
        self.flush()

    def flush(self) -> None:
        try:
            self.sock.sendall(self.conn.data_to_send())
        except (BrokenPipeError, ConnectionResetError):  # the server closed first; its frames are still read
            pass

    def request(self, method: str, path: str, body: bytes = b"") -> int:
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "http"), (":authority", self.authority),
                   ("content-type", "application/json")]
        self.conn.send_headers(stream_id, headers, end_stream=not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=True)
        self.flush()
        return stream_id

    def events(self) -> list[h2.events.Event]:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        events = self.conn.receive_data(data)
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        self.flush()
        return events

    def until_ended(self, stream_id: int) -> tuple[dict, bytes]:
        headers, body = {}, b""
        while True:
            for event in self.events():
                if getattr(event, "stream_id", None) != stream_id:
                    continue
                if isinstance(event, h2.events.ResponseReceived):
                    headers = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                elif isinstance(event, h2.events.StreamEnded):
                    return headers, body

    def close(self) -> None:
        self.sock.close()


async def _wait_idle(engine, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while engine.active_sequences:
        assert time.monotonic() < deadline, "the reset stream's generation is still running"
        await asyncio.sleep(0.05)


async def test_a_stream_reset_mid_generation_stops_it_and_frees_its_slot(server):
    engine = default_engine(server)
    await _wait_idle(engine)
    steps_at_start = engine.steps_taken
    raw = RawH2(server.url)
    try:
        stream_id = raw.request("POST", f"/model/{QUOTED}/converse-stream", json.dumps(LONG).encode())
        buffer, deltas = EventStreamBuffer(), 0
        while deltas < 2:  # generating
            for event in await asyncio.to_thread(raw.events):
                if isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                    buffer.add_data(event.data)
                    deltas += sum(m.headers[":event-type"] == "contentBlockDelta" for m in buffer)
        raw.conn.reset_stream(stream_id)
        raw.flush()
        await _wait_idle(engine)
        await asyncio.sleep(0.3)  # a decode step already under way when the sequence left may still complete
        stopped_at = engine.steps_taken
        await asyncio.sleep(0.5)
        assert engine.steps_taken == stopped_at
        assert stopped_at - steps_at_start < 500
        # The connection lives on: the next stream on it is answered.
        health = raw.request("GET", "/_emulator/health")
        headers, body = await asyncio.to_thread(raw.until_ended, health)
        assert headers[":status"] == "200" and json.loads(body)["status"] == "ok"
    finally:
        raw.close()
    [*_, last] = _admin(server.url, "GET", "/invocations")["invocations"]
    assert last["operation"] == "ConverseStream" and last["error"]["message"] == "The client closed the connection."


def test_a_protocol_error_closes_only_that_connection(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an empty SETTINGS frame
        data_on_stream_0 = b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x"  # DATA on the connection: PROTOCOL_ERROR
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings + data_on_stream_0)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        goaway = received.find(b"\x07\x00\x00\x00\x00\x00")  # type GOAWAY, no flags, stream 0
        assert goaway > 0
        assert received[goaway + 10:goaway + 14] == b"\x00\x00\x00\x01"  # error code PROTOCOL_ERROR
    with h2c_client() as client:
        assert client.get(f"{server.url}/_emulator/health").status_code == 200


def _headers_frame(block: bytes, stream_id: int = 1) -> bytes:
    """A HEADERS frame (END_HEADERS | END_STREAM) carrying `block` as is."""
    return len(block).to_bytes(3, "big") + b"\x01\x05" + stream_id.to_bytes(4, "big") + block


REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/_emulator/health"), (b":authority", b"x")]
REFUSED_BLOCKS = {  # request header blocks RFC 9113 forbids (checked for the server by h2's rules) or HPACK can't read
    "uppercase name": [*REQUEST, (b"Accept", b"*/*")],
    "connection header": [*REQUEST, (b"connection", b"keep-alive")],
    "no :path": REQUEST[:2] + REQUEST[3:],
    "NUL in a value": [*REQUEST, (b"accept", b"a\x00b")],
    "pseudo-header after a field": [(b"accept", b"*/*"), *REQUEST],
    "te other than trailers": [*REQUEST, (b"te", b"gzip")],
    "host differs from :authority": [*REQUEST, (b"host", b"y")],
    "bad HPACK": b"\xbe",  # an index past both tables
    "bad Huffman": b"\x00\x81\xff\x81\xff",  # EOS inside a Huffman string
}


@pytest.mark.parametrize("case", REFUSED_BLOCKS)
def test_a_refused_request_header_block_ends_the_connection_with_protocol_error(server, case):
    block = REFUSED_BLOCKS[case]
    if isinstance(block, list):
        block = hpack.Encoder().encode(block)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                     + _headers_frame(block))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    goaway = received.find(b"\x07\x00\x00\x00\x00\x00")
    assert goaway > 0 and b"\x01\x04\x00\x00\x00\x01" not in received  # a GOAWAY and no answer on stream 1
    assert received[goaway + 10:goaway + 14] == b"\x00\x00\x00\x01"  # PROTOCOL_ERROR


async def test_shutdown_sends_goaway_and_lets_open_streams_finish():
    """The edge alone (a two-route app): stopping the site sends GOAWAY naming the last stream it will serve; that
    stream still completes, a new one is refused, and the connection closes once it is done."""
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first ")
        await release.wait()
        await response.write(b"last")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner = EdgeRunner(app, shutdown_timeout=30)
    await runner.setup()
    site = EdgeSite(runner, "127.0.0.1", 0)
    await site.start()
    raw = await asyncio.to_thread(RawH2, f"http://127.0.0.1:{site.port}")
    try:
        stream_id = raw.request("GET", "/slow")
        body = b""
        while body != b"first ":
            for event in await asyncio.to_thread(raw.events):
                if isinstance(event, h2.events.DataReceived):
                    body += event.data
        stopping = asyncio.create_task(runner.cleanup())
        [goaway] = [e for e in await asyncio.to_thread(raw.events) if isinstance(e, h2.events.ConnectionTerminated)]
        assert (goaway.error_code, goaway.last_stream_id) == (0, stream_id)
        # h2 (the client here too) closes its state on any GOAWAY (python-hyper/h2#1181); reopen it to read on.
        raw.conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        refused = raw.request("GET", "/slow")
        [reset] = [e for e in await asyncio.to_thread(raw.events) if isinstance(e, h2.events.StreamReset)]
        assert (reset.stream_id, reset.error_code) == (refused, h2.errors.ErrorCodes.REFUSED_STREAM)
        release.set()
        events = []
        while not any(isinstance(e, h2.events.StreamEnded) and e.stream_id == stream_id for e in events):
            events += await asyncio.to_thread(raw.events)
        assert b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived)) == b"last"
        await stopping
        rest = b""
        while chunk := await asyncio.to_thread(raw.sock.recv, 65536):  # the server closes the connection
            rest += chunk
    finally:
        raw.close()
        release.set()
