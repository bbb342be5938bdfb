"""The protocol path without a model: scripted Converse requests per second, the emulator vs MiniStack.

Both servers run on loopback in their own process and get byte-identical Converse requests (SigV4-signed once by
botocore, as an SDK sends them) from one asyncio load generator with a fixed number of open connections. The
emulator answers from a scripted rule (`--fixtures`), MiniStack from its built-in canned reply. Rounds alternate
between the two; every reply must be a 200. Besides requests per second, each server's own CPU time per request
is measured (user + system, from /proc): on a shared machine that is the steadier measure of what each costs.
"""

from __future__ import annotations

import asyncio
import json
import os
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


def wrk(port: int, seconds: float, connections: int) -> tuple[float, int]:
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
    return rps, bad


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

    def measure(port: int) -> tuple[float, int]:
        return wrk(port, 5, connections) if use_wrk else drive(port, requests, connections)

    result = {"concurrency": connections, "load_generator": "wrk -t1, 5 s" if use_wrk else f"aiohttp, {requests} requests",
              "emulator_rps": [], "ministack_rps": [], "failures": {"emulator": 0, "ministack": 0},
              "emulator_cpu_us_per_request": [], "ministack_cpu_us_per_request": []}
    processes = {"emulator": ours.proc.pid, "ministack": theirs.proc.pid}
    try:
        drive(ours.port, requests // 4, connections)  # warm-ups, not counted
        drive(theirs.port, requests // 4, connections)
        for round_ in range(args.rounds):
            for name, port in (("emulator", ours.port), ("ministack", theirs.port)):
                cpu_before = cpu_seconds(processes[name])
                rps, failures = measure(port)
                answered = rps * 5 if use_wrk else requests
                result[f"{name}_rps"].append(rps)
                result[f"{name}_cpu_us_per_request"].append((cpu_seconds(processes[name]) - cpu_before) / answered * 1e6)
                result["failures"][name] += failures
            print(f"  protocol round {round_}: emulator {result['emulator_rps'][-1]:.0f} req/s "
                  f"({result['emulator_cpu_us_per_request'][-1]:.0f} us CPU each), MiniStack "
                  f"{result['ministack_rps'][-1]:.0f} req/s ({result['ministack_cpu_us_per_request'][-1]:.0f} us)",
                  flush=True)
        result["ministack_version"] = theirs.version()
    finally:
        theirs.stop()
        ours.stop()
        shutil.rmtree(fixtures, ignore_errors=True)
    result["emulator_median_rps"] = median(result["emulator_rps"])
    result["ministack_median_rps"] = median(result["ministack_rps"])
    return result
