"""A bounded, seeded fuzz run over every operation and the admin API, through real sockets.

Each request is a valid one from `fuzz_targets.TARGETS`, broken in one or two ways: a value swapped for a hostile
one (5,000-digit integers, 1e400, NaN, 1e-300, lone surrogates, 2,000-deep nesting, 100k-character strings,
Unicode digits...), a key dropped or added, bytes cut or flipped, a hostile header (`Content-Encoding: br`,
an `amz-sdk-request` attempt of 5,000 digits...), a mutated path (`%0A`, `%00` in a model id) or query
(`maxResults=²`), or raw bytes HTTP's parser must refuse. The server runs in its own process; a second process
polls `/_emulator/health` on its own connection all along.

Asserted: no 5xx (and no internalServerException frame), every 4xx has `x-amzn-ErrorType` and a JSON `message` (on `/openai/` paths, OpenAI's `{"error": {"message"}}`),
no request hangs, and health's p99 latency stays under 100 ms (and no single stall reaches 1 s). EMULATOR_FUZZ_REQUESTS / EMULATOR_FUZZ_SEED change
the run's size and seed (defaults: 4,000 requests, seed 10).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass

import pytest

from emulator_process import HealthMonitor, emulator_process, raw_exchange
from fuzz_targets import TARGETS, Target

REQUESTS = int(os.environ.get("EMULATOR_FUZZ_REQUESTS", "4000"))
SEED = int(os.environ.get("EMULATOR_FUZZ_SEED", "10"))
WORKERS = 2  # client threads; few, so the test's own CPU use does not crowd a 2-core CI box
FUZZ_SERVER_ENV = {"PYTHONASYNCIODEBUG": "1"} if os.environ.get("EMULATOR_FUZZ_DEBUG") else {}

_SENTINEL = "__fuzz_raw_value__"
# Raw JSON text put where a value was: things Python's json, int(), float() or torch choke on.
RAW_VALUES = [
    "9" * 5000, "-" + "9" * 5000, "1e400", "-1e400", "1e-400", "1e-300", "NaN", "Infinity", "-Infinity", "-0",
    "0", "-1", "2147483648", "9223372036854775808", "18446744073709551616", "1.5", "0.0000001", "true", "false",
    "null", '""', '"\\ud800"', '"a\\udfff\\ud800b"', '"\\u0000"', '"%0A"', '"\\n\\r\\t"', '"' + "A" * 100_000 + '"',
    "[]", "{}", "[" * 200 + "]" * 200, "[" * 2000 + "]" * 2000, '{"a":' * 150 + "1" + "}" * 150, '"\\u00b2"',
    '"\\ud83d\\ude00"', '"../../etc/passwd"', '"s3://b/' + "k" * 300 + '"', '"(a|aa)+$"', '["x", 1, null, {}]',
    '"ThrottlingException"', '"*"', '"' + "\\\\" * 50 + '"', '"<script>"', "1" + "0" * 400, "123456789.123456789e-2",
]
HEADERS = [
    ("Content-Encoding", "br"), ("Content-Encoding", "gzip"), ("Content-Encoding", "deflate"),
    ("Content-Encoding", "zstd"), ("Content-Encoding", "identity, br"), ("Content-Type", "text/plain"),
    ("Content-Type", "application/x-www-form-urlencoded"), ("Content-Type", "application/json; charset=latin1"),
    ("amz-sdk-request", "attempt=" + "9" * 5000), ("amz-sdk-request", "attempt=\u00b2; max=3"),
    ("amz-sdk-request", "attempt=-1; max=-1"), ("amz-sdk-invocation-id", "x" * 5000), ("Accept", "text/html"),
    ("X-Amzn-Bedrock-Accept", "image/png"), ("X-Amzn-Bedrock-Trace", "ENABLED"),
    ("X-Amzn-Bedrock-Trace", "x" * 3000), ("X-Amzn-Bedrock-GuardrailIdentifier", "nope"),
    ("X-Amzn-Bedrock-GuardrailVersion", "\u00b2"), ("X-Amzn-Bedrock-PerformanceConfig-Latency", "fast"),
    ("X-Amzn-Bedrock-Service-Tier", "x" * 100), ("Transfer-Encoding", "chunked"), ("Expect", "100-continue"),
    ("Authorization", "AWS4-HMAC-SHA256 Credential=\u00b2"), ("Host", "evil.example"),
]
MODEL_IDS = ["abc%0Adef", "abc%00def", "%2F..%2F..%2Fetc", "x" * 3000, "%C2%B2", "%ZZ", "%F0%9F%98%80",
             "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Afoundation-model%2F", "", "us.%0A", "..", "%", "a%2Fb%2Fc"]
QUERY_VALUES = ["\u00b2", "-1", "0", "1e3", "99999999999999999999", "", "x" * 5000, "\ud800", "%0A", "NaN",
                "2024-13-45T99:99:99Z", "Descending", "bedrock", "Completed"]
RAW_REQUESTS = [
    b"GET /_emulator/health HTTP/1.1\r\nHost: x\r\nBad\x01Header: y\r\n\r\n",
    b"POST /model/x/converse HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /model/x/converse HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    b"POST /model/x/converse HTTP/1.1\r\nHost: x\r\nContent-Length: 30000000\r\n\r\n{",
    b"POST /model/x/converse HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    b"POST /model/x/converse HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"b" * 20000 + b"\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"POST /model/x%0Ay/converse HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /model/x/converse HTTP/1.1\r\nHost: x\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /model/x/converse HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope",
    b"GET /_emulator/invocations?limit=%C2%B2 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
]


@dataclass
class Mutated:
    target: str
    kind: str
    method: str
    path: str
    body: bytes
    headers: dict[str, str]


def _paths(value, prefix=()):
    """Every (path, value) in a JSON value, containers included."""
    yield prefix, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*prefix, i))


def _set(root, path, value):
    node = root
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _delete(root, path):
    node = root
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]


def mutate(target: Target, rng: random.Random) -> Mutated:
    body = json.loads(json.dumps(target.body)) if target.body is not None else None
    headers = {"Content-Type": "application/json", **target.headers}
    path, query = target.path, dict(target.query)
    raw_value = None
    kinds = []
    for _ in range(rng.choice((1, 1, 1, 2))):
        kind = rng.choice(("value", "value", "value", "value", "delete", "add", "bytes", "header", "path", "query"))
        kinds.append(kind)
        if kind in ("value", "delete", "add") and body is not None:
            spots = list(_paths(body))
            where, node = rng.choice(spots)
            if kind == "value" or not where:
                raw_value = rng.choice(RAW_VALUES)
                if where:
                    _set(body, where, _SENTINEL)
                else:
                    body = _SENTINEL
            elif kind == "delete":
                _delete(body, where)
            elif isinstance(node, dict):
                node[rng.choice(("extra", "\u00b2", "", "x" * 300))] = rng.choice((1, "x", None, [], {}))
            else:  # a node repeated, keeping the body small: big bodies are a size test, not a fuzz case
                copies = max(2, min(200, 200_000 // max(len(json.dumps(node)), 1)))
                _set(body, where, [node] * rng.randint(2, copies))
        elif kind == "header":
            name, value = rng.choice(HEADERS)
            headers[name] = value
        elif kind == "path" and "/model/" in path:
            parts = path.split("/")
            parts[2] = rng.choice(MODEL_IDS)
            path = "/".join(parts)
        elif kind == "path":
            path = path + rng.choice(("/", "/x", "%0A", "/%00", "?"))
        elif kind == "query":
            name = rng.choice(list(query) or ["maxResults", "limit", "nextToken", "submitTimeAfter", "statusEquals"])
            query[name] = rng.choice(QUERY_VALUES)
    text = json.dumps(body, ensure_ascii=rng.random() < 0.5) if body is not None else ""
    if raw_value is not None:
        text = text.replace(json.dumps(_SENTINEL), raw_value)
    data = text.encode("utf-8", "surrogatepass")
    if "bytes" in kinds and data:
        cut = rng.randrange(len(data))
        op = rng.choice(("truncate", "flip", "insert", "bom"))
        if op == "truncate":
            data = data[:cut]
        elif op == "flip":
            data = data[:cut] + bytes([rng.randrange(256)]) + data[cut + 1:]
        elif op == "insert":
            data = data[:cut] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + data[cut:]
        else:
            data = b"\xef\xbb\xbf" + data
    if query:
        path += "?" + urllib.parse.urlencode(query, errors="surrogatepass")
    method = target.method if rng.random() > 0.03 else rng.choice(("PUT", "PATCH", "DELETE", "GET", "POST"))
    return Mutated(target.name, "+".join(kinds), method, path, data, headers)


@dataclass
class Reply:
    status: int
    error_type: str | None
    body: bytes


def send(url: str, m: Mutated, conns: dict) -> Reply:
    parts = urllib.parse.urlsplit(url)
    conn = conns.get("c") or http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conns["c"] = conn
    try:
        headers = dict(m.headers)
        conn.putrequest(m.method, m.path, skip_accept_encoding=True)
        chunked = headers.pop("Transfer-Encoding", None) == "chunked"
        for name, value in headers.items():
            conn.putheader(name, value.encode("utf-8", "surrogatepass"))
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(m.body), m.body) if m.body else b"0\r\n\r\n")
        else:
            conn.putheader("Content-Length", str(len(m.body)))
            conn.endheaders(m.body)
        reply = conn.getresponse()
        body = reply.read()
        if reply.will_close:
            conn.close()
            conns.pop("c", None)
        return Reply(reply.status, reply.getheader("x-amzn-ErrorType"), body)
    except (http.client.HTTPException, ConnectionError):
        conn.close()
        conns.pop("c", None)
        raise


def send_raw(url: str, data: bytes) -> Reply:
    status, headers, body = raw_exchange(url, data)
    return Reply(status, headers.get("x-amzn-errortype"), body)


def problems_in(reply: Reply, m: Mutated) -> str | None:
    if reply.status >= 500:
        return f"{reply.status} {reply.error_type} {reply.body[:200]!r} (sent {m.body[:300]!r})"
    if 400 <= reply.status < 500 and m.path.startswith("/openai/") and not reply.error_type:
        try:  # OpenAI's protocol, not AWS's: {"error": {"message": ...}} (see emulator/api/openai/errors.py)
            if "message" not in json.loads(reply.body)["error"]:
                return f"{reply.status} OpenAI error without message: {reply.body[:200]!r}"
        except (ValueError, KeyError, TypeError):
            return f"{reply.status} not an OpenAI error body: {reply.body[:200]!r}"
    elif 400 <= reply.status < 500:
        if not reply.error_type:
            return f"{reply.status} without x-amzn-ErrorType: {reply.body[:200]!r}"
        try:
            if "message" not in json.loads(reply.body):
                return f"{reply.status} body without message: {reply.body[:200]!r}"
        except ValueError:
            return f"{reply.status} body not JSON: {reply.body[:200]!r}"
    if b"internalServerException" in reply.body:
        return f"in-stream internalServerException: {reply.body[:300]!r}"
    return None


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    fixtures = folder / "fixtures"
    fixtures.mkdir()
    (fixtures / "all.yaml").write_text("rules:\n  - name: fuzz catch-all\n    respond: {text: Fuzzed.}\n")
    with emulator_process("--fixtures", str(fixtures), "--async-output-dir", str(folder / "async"),
                          log=folder / "server.log", env=FUZZ_SERVER_ENV) as (url, proc):
        yield url, proc, folder


def test_fuzz_no_5xx_every_4xx_modeled_health_stays_fast(fuzz_server):
    url, proc, folder = fuzz_server
    rng = random.Random(SEED)
    work = [mutate(rng.choice(TARGETS), rng) for _ in range(REQUESTS)]
    raw = [rng.choice(RAW_REQUESTS) for _ in range(max(REQUESTS // 50, len(RAW_REQUESTS)))]
    admin = {t.name for t in TARGETS if t.admin}
    failures: list[str] = []
    statuses: Counter = Counter()
    reset_lock = threading.Lock()
    started = time.monotonic()

    def worker(items: list[Mutated]) -> None:
        conns: dict = {}
        for m in items:
            try:
                reply = send(url, m, conns)
            except (OSError, http.client.HTTPException) as exc:
                # A refused request may close the connection before the body is sent: only a hang is a failure.
                if isinstance(exc, TimeoutError):
                    failures.append(f"{m.target} [{m.kind}] {m.method} {m.path[:120]}: timed out")
                statuses["closed"] += 1
                continue
            statuses[reply.status] += 1
            problem = problems_in(reply, m)
            if problem:
                failures.append(f"{m.target} [{m.kind}] {m.method} {m.path[:120]}: {problem}")
            if m.target in admin and reply.status < 300 and m.method != "GET":
                with reset_lock:
                    send(url, Mutated("reset", "", "POST", "/_emulator/reset", b"", {}), {})

    threads = [threading.Thread(target=worker, args=(work[i::WORKERS],)) for i in range(WORKERS)]
    monitor = HealthMonitor(url, folder).__enter__()
    for thread in threads:
        thread.start()
    for data in raw:
        try:
            reply = send_raw(url, data)
        except OSError:
            statuses["closed"] += 1
            continue
        statuses[f"raw {reply.status}"] += 1
        if reply.status and (reply.status >= 500 or (reply.status >= 400 and not reply.error_type)):
            failures.append(f"raw {data[:80]!r}: {reply.status} {reply.error_type} {reply.body[:120]!r}")
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    monitor.__exit__(None, None, None)
    print(f"\nfuzz: {len(work)} mutated + {len(raw)} raw requests in {elapsed:.1f}s; statuses {dict(statuses)}; "
          f"{monitor.summary()}")
    assert proc.poll() is None, "the server died"
    assert not failures, f"{len(failures)} bad answers, e.g.:\n" + "\n".join(failures[:15])
    monitor.assert_responsive()
    # The admin API still answers, and the invocation log serialises after everything above.
    log = send(url, Mutated("log", "", "GET", "/_emulator/invocations?format=bedrock", b"", {}), {})
    assert log.status == 200 and isinstance(json.loads(log.body)["invocations"], list)  # (a last reset may empty it)
