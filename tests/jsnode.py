"""Node packages for the JS client tests: installed once into a folder of the emulator's cache, and the node
scripts under tests/js run against them.

A folder counts as installed when every pinned package's `node_modules/<name>/package.json` has its pinned version,
so a warm cache costs no npm call (and works offline) and a changed pin installs again. The test is skipped when
node or npm is missing or npm cannot install the packages (no registry).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from emulator.engine.sources import default_cache_dir

SCRIPTS = Path(__file__).resolve().parent / "js"


@dataclass(frozen=True)
class NodePackages:
    folder: Path
    node: str

    def run(self, script: str, *, timeout: float = 300, **env: str) -> str:
        """tests/js/<script> run with `env` added to ours; its stdout (the run must succeed)."""
        source, target = SCRIPTS / script, self.folder / script  # ESM resolves packages from the script's folder
        if not target.is_file() or target.read_bytes() != source.read_bytes():  # the folder is shared by test runs
            shutil.copy(source, target)
        run = subprocess.run([self.node, script], cwd=self.folder, env={**os.environ, **env}, capture_output=True,
                             text=True, timeout=timeout)
        assert run.returncode == 0, run.stderr[-3000:]
        return run.stdout

    def json_lines(self, script: str, *, timeout: float = 300, **env: str) -> list[dict]:
        """The script's stdout, one JSON value a line."""
        return [json.loads(line) for line in self.run(script, timeout=timeout, **env).splitlines()]


def node_packages(folder_name: str, packages: list[str], what: str = "the JS SDK") -> NodePackages:
    """`packages` ("name@version") installed into `<cache>/<folder_name>` unless they already are there."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip(f"node and npm are needed to run {what}")
    folder = default_cache_dir() / folder_name
    if not all(_installed(folder, package) for package in packages):
        folder.mkdir(parents=True, exist_ok=True)
        installed = subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(folder),
                                    *packages], capture_output=True, text=True, timeout=600)
        if installed.returncode != 0:
            pytest.skip(f"npm could not install {what}: {installed.stderr.strip()[-300:]}")
    return NodePackages(folder, node)


def _installed(folder: Path, package: str) -> bool:
    name, _, version = package.rpartition("@")  # "@scope/name@1.2.3": the version follows the last @
    try:
        return json.loads((folder / "node_modules" / name / "package.json").read_text())["version"] == version
    except (OSError, ValueError, KeyError):
        return False
