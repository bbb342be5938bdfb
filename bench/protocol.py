"""The protocol path without a model: scripted Converse requests per second, the emulator vs MiniStack.

Both servers run on loopback in their own process and get byte-identical Converse requests (SigV4-signed once by
botocore, as an SDK sends them) from one load generator with a fixed number of open connections: wrk (C, one
thread) when installed, else an asyncio client. The emulator answers from a scripted rule (`--fixtures`),
MiniStack from its built-in canned reply. Rounds alternate between the two; every reply must be a 200. Besides
requests per second, each server's own CPU time per request is measured (user + system, from /proc): on a shared
machine that is the steadier measure of what each costs. The 1-minute load average is recorded with each round.

HTTP/2 (when nghttp2's `h2load` is installed: `apt-get install nghttp2-client`): the same request over h2c with
prior knowledge, 16 streams on one connection (how SDKs multiplex) and 16 connections of one stream each, in the
same rounds. MiniStack (Hypercorn) speaks h2c too, so both sides get the same load.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import MODEL_ID, ROOT, Emulator, free_port, median

BODY = {"messages": [{"role": "user", "content": [{"text": "Hello, who are you?"}]}], "inferenceConfig": {"maxTokens": 64}}
RULE = "rules:\n  - match: {operation: Converse}\n    respond: {text: \"Hello! I am a scripted reply.\"}\n"


def signed_request(port: int) -> tuple[str, dict, bytes]:
    """A Converse request exactly as boto3 would send it (path, headers, body)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = json.dumps(BODY).encode()
    path = f"/model/{MODEL_ID.replace(':', '%3A')}/converse"
    request = AWSRequest("POST", f"http://127.0.0.1:{port}{path}", data=body,
                         headers={"Content-Type": "application/json", "Accept": "application/json"})
    SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), "bedrock", "us-east-1").add_auth(request)
    return path, dict(request.headers.items()), body


async def _drive(port: int, requests: int, connections: int) -> tuple[float, int]:
    import aiohttp

    path, headers, body = signed_request(port)
    url = f"http://127.0.0.1:{port}{path}"
    failures = 0
    left = requests

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        async def worker() -> None:
            nonlocal left, failures
            while left > 0:
                left -= 1
                async with session.post(url, data=body, headers=headers) as reply:
                    await reply.read()
                    failures += reply.status != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return requests / (time.perf_counter() - started), failures


def drive(port: int, requests: int, connections: int) -> tuple[float, int]:
    return asyncio.run(_drive(port, requests, connections))


def wrk(port: int, seconds: float, connections: int) -> tuple[float, int, int]:
    """The same request through wrk (C, one thread): the load generator costs far less CPU than either server."""
    path, headers, body = signed_request(port)
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{body.decode()}]==]"]
    lines += [f'wrk.headers["{k}"] = [==[{v}]==]' for k, v in headers.items() if k.lower() != "host"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    try:
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name,
                              f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    rps = float(next(line.split()[-1] for line in out.splitlines() if line.startswith("Requests/sec")))
    bad = next((int(line.split()[-1]) for line in out.splitlines() if "Non-2xx" in line), 0)
    answered = next(int(line.split()[0]) for line in out.splitlines() if " requests in " in line)
    return rps, bad, answered


def h2_kinds(in_flight: int) -> dict[str, tuple[int, int]]:
    """(connections, streams per connection) with `in_flight` requests in flight: multiplexed, and one per connection."""
    return {f"h2_1x{in_flight}": (1, in_flight), f"h2_{in_flight}x1": (in_flight, 1)}


def h2load(port: int, seconds: float, connections: int, streams: int) -> tuple[float, int, int]:
    """The signed request over h2c (prior knowledge) for `seconds`: (requests/s, non-2xx or failed, completed)."""
    path, headers, body = signed_request(port)
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as data:
        data.write(body)
    args = ["h2load", "-D", str(seconds), "-c", str(connections), "-m", str(streams), "-d", data.name]
    for key, value in headers.items():
        if key.lower() not in ("host", "content-length"):
            args += ["-H", f"{key}: {value}"]
    try:
        out = subprocess.run([*args, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                             timeout=seconds + 60).stdout
    finally:
        os.unlink(data.name)
    done = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out)
    counts = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, "
                       r"(\d+) timeout", out)
    if not done or not counts:
        raise RuntimeError(f"h2load failed:\n{out}")
    completed, ok, *bad = (int(n) for n in counts.groups())
    return float(done.group(1)) * ok / max(completed, 1), sum(bad), completed


class MiniStack:
    def __init__(self, executable: str) -> None:
        self.port = free_port()
        self.log = open(ROOT / "bench" / "results" / f"ministack-{self.port}.log", "w")
        env = {**os.environ, "GATEWAY_PORT": str(self.port), "BIND_HOST": "127.0.0.1"}
        self.proc = subprocess.Popen([executable], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                rps, failures = drive(self.port, 1, 1)
                if not failures:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("MiniStack did not answer Converse")

    def version(self) -> str:
        out = subprocess.run([Path(self.proc.args[0]).parent / "pip", "show", "ministack"], capture_output=True, text=True)
        return next((line.split()[-1] for line in out.stdout.splitlines() if line.startswith("Version")), "?")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (a server's own cost, whatever else runs)."""
    import psutil

    total = 0.0
    process = psutil.Process(pid)
    for each in (process, *process.children(recursive=True)):
        try:
            times = each.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def compare(args) -> dict:
    executable = args.ministack or shutil.which("ministack")
    if not executable:
        raise SystemExit("MiniStack not found: `pip install ministack` (a separate venv is fine) and pass --ministack")
    fixtures = Path(tempfile.mkdtemp())
    (fixtures / "converse.yaml").write_text(RULE)
    ours = Emulator(args.threads, ["--fixtures", str(fixtures)])
    ours.wait_healthy()
    theirs = MiniStack(executable)
    requests, connections = args.protocol_requests, args.protocol_connections
    use_wrk = shutil.which("wrk") is not None
    use_h2 = shutil.which("h2load") is not None
    kinds = h2_kinds(connections) if use_h2 else {}

    def measure(port: int) -> tuple[float, int, int]:
        if use_wrk:
            return wrk(port, 5, connections)
        rps, bad = drive(port, requests, connections)
        return rps, bad, requests

    result = {"concurrency": connections, "load_generator": "wrk -t1, 5 s" if use_wrk else f"aiohttp, {requests} requests",
              "emulator_rps": [], "ministack_rps": [], "failures": {"emulator": 0, "ministack": 0},
              "emulator_cpu_us_per_request": [], "ministack_cpu_us_per_request": [], "loadavg_by_round": []}
    if use_h2:
        result["h2_load_generator"] = "h2load (nghttp2), h2c prior knowledge, 5 s"
        for kind in kinds:
            for name in ("emulator", "ministack"):
                result[f"{name}_{kind}_rps"], result[f"{name}_{kind}_cpu_us_per_request"] = [], []
                result["failures"][f"{name}_{kind}"] = 0
    processes = {"emulator": ours.proc.pid, "ministack": theirs.proc.pid}
    try:
        drive(ours.port, requests // 4, connections)  # warm-ups, not counted
        drive(theirs.port, requests // 4, connections)
        for round_ in range(args.rounds):
            order = [("emulator", ours.port), ("ministack", theirs.port)]
            for name, port in order if round_ % 2 == 0 else order[::-1]:  # who goes first alternates
                cpu_before = cpu_seconds(processes[name])
                rps, failures, answered = measure(port)
                result[f"{name}_rps"].append(rps)
                result[f"{name}_cpu_us_per_request"].append((cpu_seconds(processes[name]) - cpu_before) / answered * 1e6)
                result["failures"][name] += failures
                for kind, (clients, streams) in kinds.items():
                    cpu_before = cpu_seconds(processes[name])
                    rps, failures, answered = h2load(port, 5, clients, streams)
                    result[f"{name}_{kind}_rps"].append(rps)
                    result[f"{name}_{kind}_cpu_us_per_request"].append(
                        (cpu_seconds(processes[name]) - cpu_before) / max(answered, 1) * 1e6)
                    result["failures"][f"{name}_{kind}"] += failures
            result["loadavg_by_round"].append(os.getloadavg()[0])
            line = (f"  protocol round {round_} (load {os.getloadavg()[0]:.1f}): HTTP/1.1 emulator "
                    f"{result['emulator_rps'][-1]:.0f} req/s ({result['emulator_cpu_us_per_request'][-1]:.0f} us CPU "
                    f"each), MiniStack {result['ministack_rps'][-1]:.0f} req/s "
                    f"({result['ministack_cpu_us_per_request'][-1]:.0f} us)")
            for kind in kinds:
                line += (f"; {kind} emulator {result[f'emulator_{kind}_rps'][-1]:.0f} "
                         f"({result[f'emulator_{kind}_cpu_us_per_request'][-1]:.0f} us), MiniStack "
                         f"{result[f'ministack_{kind}_rps'][-1]:.0f} ({result[f'ministack_{kind}_cpu_us_per_request'][-1]:.0f} us)")
            print(line, flush=True)
        result["ministack_version"] = theirs.version()
    finally:
        theirs.stop()
        ours.stop()
        shutil.rmtree(fixtures, ignore_errors=True)
    result["emulator_median_rps"] = median(result["emulator_rps"])
    result["ministack_median_rps"] = median(result["ministack_rps"])
    return result
