"""An emulator in its own process (`python -m emulator`), for tests that need a separate GIL (latency under load)
or must signal the server (SIGTERM). Models come from the shared cache, as for the in-process server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def emulator_process(*args: str, log: Path | None = None, timeout: float = 600, env: dict | None = None):
    """Yield (url, process) for a server started with `args`, healthy; stopped (SIGKILL if need be) afterwards."""
    port = free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "emulator", "--port", str(port), "--log-level", "INFO", *args],
                            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the emulator exited with {proc.returncode} before it was healthy")
            try:
                with urllib.request.urlopen(url + "/_emulator/health", timeout=5) as reply:
                    if json.loads(reply.read()).get("status") == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the emulator did not become healthy")
            time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        if log:
            out.close()


_MONITOR = r"""
import http.client, json, os, sys, time
host, port, stop_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
conn = http.client.HTTPConnection(host, port, timeout=30)
lat = []
while not os.path.exists(stop_file):
    start = time.perf_counter()
    conn.request("GET", "/_emulator/health")
    conn.getresponse().read()
    lat.append((time.time(), (time.perf_counter() - start) * 1000))
    time.sleep(0.005)
print(json.dumps(lat))
"""


class HealthMonitor:
    """Polls /_emulator/health every 5 ms from another process (its own GIL and connection): for one second
    before the block (the machine's own noise, `baseline_ms`) and while it runs (`latencies_ms`, sorted).

    Polling is sequential, so a freeze shows as one long sample: `assert_responsive` checks both the p99 (the loop
    answers promptly: under 100 ms beyond what the idle server shows on this machine right now) and the maximum
    (never a stall of a second, which a loaded CI box does not cause)."""

    P99_MS = 100.0
    MAX_MS = 1000.0
    BASELINE_S = 1.0

    def __init__(self, url: str, folder: Path) -> None:
        self.url = url
        self.stop_file = folder / f"stop-monitor-{time.monotonic_ns()}"
        self.latencies_ms: list[float] = []
        self.baseline_ms: list[float] = []

    def __enter__(self) -> "HealthMonitor":
        host, port = self.url.removeprefix("http://").split(":")
        self._proc = subprocess.Popen([sys.executable, "-c", _MONITOR, host, port, str(self.stop_file)],
                                      stdout=subprocess.PIPE, text=True)
        time.sleep(0.3 + self.BASELINE_S)  # the monitor starts, then the baseline second
        self._work_started = time.time()
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.1)
        self.stop_file.write_text("stop")
        samples = json.loads(self._proc.communicate(timeout=60)[0])
        self.baseline_ms = sorted(ms for at, ms in samples if at < self._work_started)
        self.latencies_ms = sorted(ms for at, ms in samples if at >= self._work_started)

    @staticmethod
    def _pct(values: list[float], fraction: float) -> float:
        return values[min(int(len(values) * fraction), len(values) - 1)] if values else 0.0

    def percentile(self, fraction: float) -> float:
        return self._pct(self.latencies_ms, fraction)

    def summary(self) -> str:
        lat = self.latencies_ms
        return (f"health n={len(lat)} p50={self.percentile(0.5):.1f}ms p99={self.percentile(0.99):.1f}ms "
                f"max={lat[-1]:.1f}ms (idle baseline p99={self._pct(self.baseline_ms, 0.99):.1f}ms)")

    def assert_responsive(self) -> None:
        allowed = self.P99_MS + self._pct(self.baseline_ms, 0.99)
        assert self.percentile(0.99) < allowed and self.latencies_ms[-1] < self.MAX_MS, self.summary()


def raw_exchange(url: str, data: bytes, timeout: float = 30) -> tuple[int, dict, bytes]:
    """Send raw bytes, read one reply: (status, lower-case headers, body). Status 0 when the server closed without
    an HTTP answer (allowed for bytes that are not HTTP at all)."""
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/"):
            return 0, {}, received
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        while len(body) < int(headers.get("content-length", 0)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(lines[0].split()[1]), headers, body
