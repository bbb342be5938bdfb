"""Tokens per second through the emulator vs. calling the inference engine directly (llama.cpp's server).

    .venv/bin/python bench/engines.py [--rounds 3] [--tokens 128] [--concurrency 16] [--threads 2]

One llama.cpp server (llama-cpp-python[server], built by scripts/llama-server-venv) serves the default model's
GGUF; one emulator process has a catalogue that maps Claude ids to that engine. Each round runs, in alternating
order, the same greedy ConverseStream workload through the emulator (boto3) and the same chat completion stream
straight to the engine (SSE over http.client): one stream alone, then `--concurrency` at once. Rates are output
tokens over wall time; the ratio emulator/direct per round is what to read, since both sides are measured
interleaved on the same (possibly shared, loaded) machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LONG_PROMPT, Emulator, client  # noqa: E402

from emulator.testing import llama_server  # noqa: E402

MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"


def direct_stream(port: int, tokens: int) -> int:
    """One streamed chat completion straight to the engine; returns the output tokens (content chunks)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = {"model": llama_server.MODEL_ALIAS, "messages": [{"role": "user", "content": LONG_PROMPT}],
            "max_tokens": tokens, "stream": True, "temperature": 0, "top_p": 1, "top_k": 0, "min_p": 0,
            "repeat_penalty": 1.0}
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    reply = conn.getresponse()
    count = 0
    for line in reply:
        line = line.strip()
        if not line.startswith(b"data:") or line == b"data: [DONE]":
            continue
        for choice in json.loads(line[5:]).get("choices") or []:
            if (choice.get("delta") or {}).get("content"):
                count += 1
    conn.close()
    return count


def emulator_stream(bedrock, tokens: int) -> int:
    reply = bedrock.converse_stream(modelId=MODEL_ID, messages=[{"role": "user", "content": [{"text": LONG_PROMPT}]}],
                                    inferenceConfig={"maxTokens": tokens, "temperature": 0, "topP": 1})
    usage = {}
    for event in reply["stream"]:
        if "metadata" in event:
            usage = event["metadata"]["usage"]
    return usage.get("outputTokens", 0)


def rate(one, concurrency: int) -> float:
    """Aggregate output tokens per second of `concurrency` calls of `one()` started together."""
    counts: list[int] = []
    lock = threading.Lock()

    def run():
        n = one()
        with lock:
            counts.append(n)

    started = time.perf_counter()
    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    parser.add_argument("--tokenizer", action="store_true",
                        help="count input tokens with the entry's tokenizer instead of a probe request (llama-cpp-python"
                             " reports no usage in a stream, so by default each call costs one extra prompt read)")
    args = parser.parse_args()
    (Path(__file__).resolve().parent / "results").mkdir(exist_ok=True)
    python = llama_server.venv_python(build=True)
    if python is None:
        sys.exit("llama-cpp-python[server] could not be built (scripts/llama-server-venv)")
    engine = llama_server.LlamaServer(python, llama_server.default_gguf(), threads=args.threads).start()
    catalog = Path(tempfile.mkdtemp()) / "catalog.yaml"
    catalog.write_text(
        "local_models:\n"
        f"  engine: {{kind: text, openai: {{base_url: '{engine.base_url}', model: {llama_server.MODEL_ALIAS},"
        " engine: llama-cpp-python, max_concurrency: 64, timeout_s: 600"
        + (f", tokenizer: '{llama_server.default_model_folder()}'" if args.tokenizer else "") + "}}\n"
        "models:\n  - {match: 'anthropic.*', family: anthropic, local: engine, max_output_tokens: 4096}\n")
    emulator = Emulator(threads=1, extra_args=["--models", str(catalog), "--log-level", "WARNING"])
    try:
        emulator.wait_healthy()
        bedrock = client(emulator.url)
        emulator_stream(bedrock, 4)  # warm both paths (connections, the engine's first prompt)
        direct_stream(engine.port, 4)
        rows = []
        for i in range(args.rounds):
            sides = [("direct", lambda: direct_stream(engine.port, args.tokens)),
                     ("emulator", lambda: emulator_stream(bedrock, args.tokens))]
            if i % 2:
                sides.reverse()
            row = {}
            for concurrency in (1, args.concurrency):
                for name, one in sides:
                    row[(name, concurrency)] = rate(one, concurrency)
            rows.append(row)
            print(f"round {i + 1}: " + ", ".join(f"{n} x{c}: {r:.1f} tok/s" for (n, c), r in row.items()), flush=True)
        print(f"\nllama-cpp-python[server], SmolLM2-135M Q4_1 GGUF, {args.tokens} greedy tokens per stream, "
              f"{args.rounds} interleaved rounds, input tokens counted by "
              f"{'the entry tokenizer' if args.tokenizer else 'a probe request'} "
              "(medians; the machine may be shared: read the ratios)")
        for concurrency in (1, args.concurrency):
            direct = statistics.median(r[("direct", concurrency)] for r in rows)
            through = statistics.median(r[("emulator", concurrency)] for r in rows)
            ratios = [r[("emulator", concurrency)] / r[("direct", concurrency)] for r in rows]
            print(f"  {concurrency:>2} stream(s): direct {direct:.1f} tok/s, through the emulator {through:.1f} tok/s,"
                  f" ratio {statistics.median(ratios):.3f} (per round: {', '.join(f'{x:.3f}' for x in ratios)})")
    finally:
        emulator.stop()
        engine.stop()


if __name__ == "__main__":
    main()
