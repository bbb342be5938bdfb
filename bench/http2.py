"""HTTP/2 against HTTP/1.1 on the same emulator: scripted Converse requests per second, ConverseStream tokens/s.

One emulator process (`--fixtures`: Converse answers a scripted reply; ConverseStream runs the model). Rounds
alternate between the protocols so that load from anything else on the machine hits both sides; medians and
their ratios are printed.

- requests/s: `h2load` (nghttp2's load generator, the same C client for both protocols: `--h1` or h2c with prior
  knowledge), 16 requests in flight: HTTP/1.1 on 16 keep-alive connections; HTTP/2 as 16 streams on one
  connection (how an SDK multiplexes) and as 16 connections of one stream each.
- tokens/s: one greedy ConverseStream of 128 tokens through httpx (http1 / http2 prior knowledge), decode rate
  between the first and the last text event.

    apt-get install nghttp2-client      # h2load
    python bench/http2.py [--rounds 10] [--requests 1000]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import LONG_PROMPT, MODEL_ID, ROOT, Emulator, median  # noqa: E402

RULE = "rules:\n  - match: {operation: Converse}\n    respond: {text: \"Hello! I am a scripted reply.\"}\n"
BODY = {"messages": [{"role": "user", "content": [{"text": "Hello, who are you?"}]}], "inferenceConfig": {"maxTokens": 64}}
PATH = f"/model/{MODEL_ID.replace(':', '%3A')}"


def server_cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def h2load(url: str, body: Path, requests: int, clients: int, streams: int, http1: bool, pid: int = 0
           ) -> tuple[float, float]:
    """Requests per second (wall clock, load-sensitive) and the server's CPU milliseconds per request (what the
    protocol costs the server, much less sensitive to other load on the machine)."""
    cpu = server_cpu(pid) if pid else 0.0
    args = ["h2load", "-n", str(requests), "-c", str(clients), "-m", str(streams), "-d", str(body),
            "-H", "content-type: application/json", *(["--h1"] if http1 else []), url + PATH + "/converse"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=600)
    done = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", run.stdout)
    ok = re.search(r"status codes: (\d+) 2xx", run.stdout)
    if run.returncode != 0 or not done or not ok or int(ok.group(1)) != requests:
        raise RuntimeError(f"h2load failed:\n{run.stdout}\n{run.stderr}")
    return float(done.group(1)), ((server_cpu(pid) - cpu) * 1000 / requests if pid else 0.0)


def stream_rate(url: str, http2: bool, tokens: int = 128) -> float:
    import httpx
    from botocore.eventstream import EventStreamBuffer

    body = {"messages": [{"role": "user", "content": [{"text": LONG_PROMPT}]}],
            "inferenceConfig": {"temperature": 0, "maxTokens": tokens}}
    with httpx.Client(http1=not http2, http2=http2, timeout=600) as client, \
            client.stream("POST", url + PATH + "/converse-stream", json=body) as reply:
        assert reply.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        buffer, first, last, output = EventStreamBuffer(), None, None, 0
        for chunk in reply.iter_raw():
            buffer.add_data(chunk)
            for message in buffer:
                kind = message.headers[":event-type"]
                if kind == "contentBlockDelta":
                    last = time.perf_counter()
                    first = first or last
                elif kind == "metadata":
                    output = json.loads(message.payload)["usage"]["outputTokens"]
    return (output - 1) / (last - first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1, help="model threads (OMP_NUM_THREADS)")
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        sys.exit("h2load is needed (apt-get install nghttp2-client)")
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "rules").mkdir()
        Path(folder, "rules", "rules.yaml").write_text(RULE)
        body = Path(folder, "body.json")
        body.write_text(json.dumps(BODY))
        server = Emulator(args.threads, ["--fixtures", str(Path(folder, "rules"))])
        try:
            server.wait_healthy()
            h2load(server.url, body, 300, 4, 1, True)  # warm-up, both paths
            h2load(server.url, body, 300, 1, 4, False)
            stream_rate(server.url, False, 16)
            stream_rate(server.url, True, 16)
            kinds = {"h1 16 conns": (16, 1, True), "h2 1 conn x 16 streams": (1, 16, False), "h2 16 conns": (16, 1, False)}
            runs: dict[str, list[float]] = {name: [] for name in kinds}
            runs |= {f"{name} cpu ms/req": [] for name in kinds}
            runs |= {"h1 stream tok/s": [], "h2 stream tok/s": []}
            pid = server.proc.pid
            for round_ in range(args.rounds):
                order = [False, True] if round_ % 2 == 0 else [True, False]  # alternate who goes first
                for http2 in order:
                    for name, (clients, streams, http1) in kinds.items():
                        if http1 == (not http2):
                            rate, cpu_ms = h2load(server.url, body, args.requests, clients, streams, http1, pid)
                            runs[name].append(rate)
                            runs[f"{name} cpu ms/req"].append(cpu_ms)
                    runs["h2 stream tok/s" if http2 else "h1 stream tok/s"].append(stream_rate(server.url, http2))
                print(f"round {round_}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in runs.items()), flush=True)
        finally:
            server.stop()
    med = {k: median(v) for k, v in runs.items()}
    print("\nmedians: " + ", ".join(f"{k} {v:.1f}" for k, v in med.items()))
    print(f"Converse req/s, h2 (1 conn x 16 streams) / h1.1 (16 conns): {med['h2 1 conn x 16 streams'] / med['h1 16 conns']:.2f}x")
    print(f"Converse req/s, h2 (16 conns) / h1.1 (16 conns): {med['h2 16 conns'] / med['h1 16 conns']:.2f}x")
    for name in ("h2 1 conn x 16 streams", "h2 16 conns"):
        ratio = med["h1 16 conns cpu ms/req"] / med[f"{name} cpu ms/req"]
        print(f"server CPU per Converse, as a capacity ratio h2 ({name}) / h1.1: {ratio:.2f}x")
    print(f"ConverseStream tok/s, h2 / h1.1: {med['h2 stream tok/s'] / med['h1 stream tok/s']:.2f}x")
    result = {"runs": runs, "medians": med}
    (ROOT / "bench" / "results" / "http2.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
