"""Every performance figure of the README against its baseline, in one run: `python bench/run.py`.

Sub-benchmarks (`--only a,b`): single (one ConverseStream vs llama.cpp), batch (16 concurrent ConverseStreams vs
llama.cpp single-stream), ttft (time to first token of a ~1,000-token prompt vs llama.cpp's), start (second start to healthy, resident memory), protocol (scripted Converse
requests/s vs MiniStack), agreement (greedy tokens vs transformers' float32 reference).

Fairness: both sides of a ratio get the same prompt tokens, token count and thread count, run interleaved in the
same session (so load from other processes hits both), warm-ups are excluded and medians are reported.
Thread counts (`--threads`): the machine's default (its CPU count) is the headline, 1 thread beside it. The load
average before and after each sub-benchmark is recorded: on a shared machine only the ratios mean anything.
Raw numbers go to bench/results/latest.json and bench/results/run-<time>.json; the table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    LONG_PROMPT, ROOT, Emulator, LlamaCpp, chat_ids, client, long_prompt, median, stream_once,
)

RESULTS = ROOT / "bench" / "results"
TOKENS = 128
PROMPT_TOKENS = 1000  # the time-to-first-token prompt


@contextmanager
def _both(args, threads: int) -> Iterator[tuple[Emulator, LlamaCpp]]:
    """The emulator (healthy) and llama.cpp, `threads` threads each; both stopped
    at the end."""
    server = Emulator(threads)
    try:
        server.wait_healthy()
        llama = LlamaCpp(threads, args.llama_python)
        try:
            yield server, llama
        finally:
            llama.stop()
    finally:
        server.stop()


def _by_threads(args, results: dict, name: str, measure) -> None:
    """`measure` at each thread count; the first (the machine's default) is the headline under `name`."""
    by_threads = results.setdefault(f"{name}_by_threads", {})
    for threads in args.thread_counts:
        measure(args, threads, by_threads)
    results[name] = by_threads[str(args.thread_counts[0])]


def single(args, results: dict) -> None:
    """Single-stream decode rate at each thread count (the machine's default first: the headline)."""
    _by_threads(args, results, "single", _single)


def _single(args, threads: int, results: dict) -> None:
    """Emulator ConverseStream vs llama.cpp, same prompt ids, 128 greedy tokens, `threads` threads each."""
    ids = chat_ids(LONG_PROMPT)
    with _both(args, threads) as (server, llama):
        bedrock = client(server.url)
        ours, theirs = [], []
        for round_ in range(args.rounds + 1):  # round 0 warms both up and is dropped
            mine = stream_once(bedrock, LONG_PROMPT, {"temperature": 0, "maxTokens": TOKENS})
            base = llama.generate(ids, TOKENS)
            if round_:
                ours.append(mine)
                theirs.append(base)
            print(f"  single ({threads} threads) round {round_}: emulator {mine['decode_tok_s']:.1f} tok/s ({mine['tokens']} tokens), "
                  f"llama.cpp {base['decode_tok_s']:.1f} tok/s", flush=True)
    results[str(threads)] = {
        "prompt_tokens": len(ids), "new_tokens": TOKENS, "threads": threads, "llama": llama.info,
        "emulator_decode_tok_s": [r["decode_tok_s"] for r in ours],
        "emulator_tokens": [r["tokens"] for r in ours],
        "emulator_ttft_s": [r["ttft_s"] for r in ours],
        "llama_decode_tok_s": [r["decode_tok_s"] for r in theirs],
        "llama_ttft_s": [r["ttft_s"] for r in theirs],
    }


# 16 requests, each with its own sampling parameters, stop sequences and token budget.
def _batch_requests(n: int) -> list[tuple[dict, dict | None]]:
    temps = [0.0, 0.3, 0.7, 1.0]
    top_ps = [1.0, 0.95, 0.9]
    top_ks = [None, 50, 200]
    out = []
    for i in range(n):
        inference = {"temperature": temps[i % 4], "topP": top_ps[i % 3], "maxTokens": TOKENS - 8 * (i % 3),
                     "stopSequences": [["THE END"], ["\n\n\n"], ["Moral of the story"]][i % 3]}
        extra = {"top_k": top_ks[i % 3]} if top_ks[i % 3] else None
        out.append((inference, extra))
    return out


def batch(args, results: dict) -> None:
    """16 concurrent streams at each thread count (the machine's default first: the headline)."""
    _by_threads(args, results, "batch", _batch)


def _batch(args, threads: int, results: dict) -> None:
    """16 concurrent ConverseStreams (continuous batching) vs llama.cpp's single-stream rate, interleaved."""
    ids = chat_ids(LONG_PROMPT)
    with _both(args, threads) as (server, llama):
        clients = [client(server.url) for _ in range(args.concurrency)]
        requests = _batch_requests(args.concurrency)
        aggregates, singles, rss = [], [], []
        for round_ in range(args.rounds + 1):
            replies: list[dict] = [{} for _ in requests]

            def run(i: int) -> None:
                inference, extra = requests[i]
                replies[i] = stream_once(clients[i], LONG_PROMPT, inference, extra)

            workers = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
            started = time.perf_counter()
            for t in workers:
                t.start()
            for t in workers:
                t.join()
            wall = time.perf_counter() - started
            tokens = sum(r["tokens"] for r in replies)
            base = llama.generate(ids, TOKENS)
            if round_:
                aggregates.append({"tokens": tokens, "wall_s": wall, "tok_s": tokens / wall,
                                   "per_request_tokens": [r["tokens"] for r in replies],
                                   "median_ttft_s": median([r["ttft_s"] for r in replies])})
                singles.append(base["decode_tok_s"])
                rss.append(server.rss_mb())
            print(f"  batch ({threads} threads) round {round_}: {tokens} tokens in {wall:.2f}s = {tokens / wall:.1f} tok/s; "
                  f"llama.cpp single {base['decode_tok_s']:.1f} tok/s", flush=True)
    results[str(threads)] = {"concurrency": args.concurrency, "threads": threads, "rounds": aggregates,
                        "llama_decode_tok_s": singles, "rss_after_batch_mb": rss}


def ttft(args, results: dict) -> None:
    """Time to first token for a ~1,000-token prompt at each thread count (the default first: the headline)."""
    _by_threads(args, results, "ttft", _ttft)


def _ttft(args, threads: int, results: dict) -> None:
    """ConverseStream's first text vs llama.cpp's first token for the same ~1,000 prompt ids, interleaved."""
    prompt = long_prompt(PROMPT_TOKENS)
    ids = chat_ids(prompt)
    with _both(args, threads) as (server, llama):
        bedrock = client(server.url)
        ours, theirs = [], []
        for round_ in range(args.rounds + 1):  # round 0 warms both up and is dropped
            mine = stream_once(bedrock, prompt, {"temperature": 0, "maxTokens": 4})
            base = llama.generate(ids, 2)
            if round_:
                ours.append(mine["ttft_s"])
                theirs.append(base["ttft_s"])
            print(f"  ttft ({threads} threads, {len(ids)} prompt tokens) round {round_}: emulator {mine['ttft_s']:.2f} s, "
                  f"llama.cpp {base['ttft_s']:.2f} s", flush=True)
    results[str(threads)] = {"prompt_tokens": len(ids), "threads": threads, "llama": llama.info,
                             "emulator_ttft_s": ours, "llama_ttft_s": theirs}


def start(args, results: dict) -> None:
    """Seconds from `python -m emulator serve` to a healthy server with warm caches; its resident memory."""
    warm = Emulator(args.thread_counts[0])  # makes sure every cache is filled (first start after a change converts)
    warm.wait_healthy()
    warm.stop()
    times, rss, converted = [], [], []
    for _ in range(args.rounds):
        server = Emulator(args.thread_counts[0])
        times.append(server.wait_healthy())
        time.sleep(0.5)  # let the loader settle before reading memory
        rss.append(server.rss_mb())
        server.stop()
        log = Path(server.log.name).read_text()
        converted.append("converting" in log or "packing" in log)
    results["start"] = {"healthy_s": times, "rss_mb": rss, "reconverted": converted}


def protocol(args, results: dict) -> None:
    from bench.protocol import compare

    results["protocol"] = compare(args)


def agreement(args, results: dict) -> None:
    from bench.agreement import measure

    results["agreement"] = measure(args.agreement_tokens, args.thread_counts[0], args.llama_python)


BENCHES = {"single": single, "batch": batch, "ttft": ttft, "start": start, "protocol": protocol, "agreement": agreement}


def table(results: dict) -> str:
    rows = ["| goal | emulator | baseline | ratio | target |", "| --- | --- | --- | --- | --- |"]
    for r in (results.get("single_by_threads") or {"-": results["single"]} if "single" in results else {}).values():
        ours, theirs = median(r["emulator_decode_tok_s"]), median(r["llama_decode_tok_s"])
        rows.append(f"| 1. single-stream decode, {r['new_tokens']} greedy tokens, {r['threads']} thread(s) | "
                    f"{ours:.1f} tok/s | llama.cpp {theirs:.1f} tok/s | {ours / theirs:.2f}x | >= 1.0x |")
    for r in (results.get("batch_by_threads") or {"-": results["batch"]} if "batch" in results else {}).values():
        ours, theirs = median([x["tok_s"] for x in r["rounds"]]), median(r["llama_decode_tok_s"])
        rows.append(f"| 2. {r['concurrency']} concurrent streams, aggregate, {r['threads']} thread(s) | {ours:.1f} tok/s | "
                    f"llama.cpp single {theirs:.1f} tok/s | {ours / theirs:.2f}x | >= 3.0x |")
    for r in (results.get("ttft_by_threads") or {}).values():
        ours, theirs = median(r["emulator_ttft_s"]), median(r["llama_ttft_s"])
        rows.append(f"| 1b. time to first token, {r['prompt_tokens']}-token prompt, {r['threads']} thread(s) | "
                    f"{ours:.2f} s | llama.cpp {theirs:.2f} s | {theirs / ours:.2f}x | >= 1.0x |")
    if "start" in results:
        r = results["start"]
        rows.append(f"| 3a. second start to healthy | {median(r['healthy_s']):.2f} s | - | - | <= 2 s |")
        rows.append(f"| 3b. resident memory, text + embedding models | {median(r['rss_mb']):.0f} MB | - | - | <= 1024 MB |")
    if "protocol" in results:
        r = results["protocol"]
        ours, theirs = median(r["emulator_rps"]), median(r["ministack_rps"])
        rows.append(f"| 4. scripted Converse, {r['concurrency']} connections | {ours:.0f} req/s | "
                    f"MiniStack {theirs:.0f} req/s | {ours / theirs:.2f}x | >= 2.0x |")
        if r.get("emulator_cpu_us_per_request"):  # what each server's own CPU pays per request: steadier under load
            ours, theirs = median(r["emulator_cpu_us_per_request"]), median(r["ministack_cpu_us_per_request"])
            rows.append(f"| 4b. the same, server CPU time per request | {ours:.0f} us | MiniStack {theirs:.0f} us | "
                        f"{theirs / ours:.2f}x | >= 2.0x |")
        h1 = median(r["emulator_rps"])
        for kind in [k[len("emulator_"):-len("_rps")] for k in r if k.startswith("emulator_h2_") and k.endswith("_rps")]:
            ours, theirs = median(r[f"emulator_{kind}_rps"]), median(r[f"ministack_{kind}_rps"])
            cpu_ours, cpu_theirs = (median(r[f"{n}_{kind}_cpu_us_per_request"]) for n in ("emulator", "ministack"))
            shape = kind[3:].replace("x", " connection(s) x ") + " stream(s)"
            failed = r["failures"].get(f"ministack_{kind}", 0)
            rows.append(f"| 4c. the same over HTTP/2 (h2c, {shape}) | {ours:.0f} req/s, {cpu_ours:.0f} us CPU "
                        f"({ours / h1:.2f}x our HTTP/1.1) | MiniStack {theirs:.0f} req/s, {cpu_theirs:.0f} us CPU"
                        f"{f', {failed} failed' if failed else ''} | {ours / theirs if theirs else float('inf'):.2f}x req/s, "
                        f"{cpu_theirs / cpu_ours:.2f}x CPU | >= 2.0x |")
        if r.get("loadavg_by_round"):
            rows.append(f"| (protocol rounds' 1-minute load average) | {', '.join(f'{x:.1f}' for x in r['loadavg_by_round'])} "
                        f"| | | |")
    if "agreement" in results:
        r = results["agreement"]
        llama = (f"llama.cpp {r['llama_identical_prompts']}/{r['prompts']}, {r['llama_token_agreement']:.1%}"
                 if r.get("llama_token_agreement") is not None else "llama.cpp not measured")
        rows.append(f"| greedy agreement with transformers float32 ({r['prompts']} prompts x {r['tokens']} tokens) | "
                    f"{r['identical_prompts']}/{r['prompts']} identical, {r['token_agreement']:.1%} of tokens | "
                    f"{llama} | - | documented |")
    if "machine" in results:
        m = results["machine"]
        loads = [f"{name} {before[0]:.1f} -> {after[0]:.1f}" for name, (before, after) in m.get("load_by_bench", {}).items()]
        rows.append(f"\n{m['cpus']} CPUs, {m['platform']}, Python {m['python']}, {m['when']}; 1-minute load average "
                    f"{'; '.join(loads) or '-'} (on a quiet machine it stays near the benchmark's own threads)")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated: " + ", ".join(BENCHES))
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds per side (median reported)")
    default_threads = os.cpu_count() or 1
    parser.add_argument("--threads", default=f"{default_threads},1" if default_threads > 1 else "1",
                        help="comma-separated thread counts for both engines; the first is the headline (default: "
                             "the machine's CPU count, then 1)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--agreement-tokens", type=int, default=64)
    parser.add_argument("--llama-python", default=None, help="python with llama-cpp-python (default: this one)")
    parser.add_argument("--ministack", default=None, help="ministack executable (default: `ministack` on PATH)")
    parser.add_argument("--protocol-requests", type=int, default=2000, help="Converse requests per protocol round")
    parser.add_argument("--protocol-connections", type=int, default=16)
    args = parser.parse_args()
    args.thread_counts = [int(t) for t in str(args.threads).split(",")]
    args.threads = args.thread_counts[0]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "latest.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    load_before = os.getloadavg()
    by_bench = {}
    for name in args.only.split(","):
        before = os.getloadavg()
        print(f"== {name} (load average {before[0]:.2f} {before[1]:.2f} {before[2]:.2f})", flush=True)
        BENCHES[name](args, results)
        by_bench[name] = (before, os.getloadavg())
        out.write_text(json.dumps(results, indent=1))
    results["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                          "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "load_by_bench": by_bench,
                          "threads": args.thread_counts, "command": " ".join(sys.argv),
                          "decode_step": "torch" if os.environ.get("BEDROCK_EMULATOR_NATIVE") == "0" else "native",
                          "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    out.write_text(json.dumps(results, indent=1))
    (RESULTS / f"run-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(results, indent=1))  # kept per run
    print(table(results))


if __name__ == "__main__":
    main()
