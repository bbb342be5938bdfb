"""The command line as users run it (`python -m emulator ...`): what each command prints and serves."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from emulator_process import free_port


def _emulator(*args: str) -> list[str]:
    return [sys.executable, "-m", "emulator", *args]


def test_tls_ca_prints_the_local_cas_path_and_makes_it_once(tmp_path):
    printed = subprocess.run(_emulator("tls-ca", "--cache-dir", str(tmp_path)), capture_output=True, text=True,
                             timeout=120, check=True).stdout.strip()
    assert Path(printed) == tmp_path / "tls" / "ca.pem"
    first = Path(printed).read_text()
    assert first.startswith("-----BEGIN CERTIFICATE-----")
    again = subprocess.run(_emulator("tls-ca", "--cache-dir", str(tmp_path)), capture_output=True, text=True,
                           timeout=120, check=True).stdout.strip()
    assert again == printed and Path(again).read_text() == first


def test_serve_with_tls_answers_health_over_https_with_the_local_ca(tmp_path):
    """--tls imports the TLS module only when asked for (it is not part of a plain start): here it is asked for.
    --replay needs no model, so health is ok as soon as the listener is up."""
    port = free_port()
    cassettes = tmp_path / "cassettes"
    cassettes.mkdir()
    proc = subprocess.Popen(_emulator("--port", str(port), "--tls", "--cache-dir", str(tmp_path / "cache"),
                                      "--replay", str(cassettes)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        ca = tmp_path / "cache" / "tls" / "ca.pem"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"the emulator exited with {proc.returncode}"
            try:
                context = ssl.create_default_context(cafile=str(ca))
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/_emulator/health", timeout=5,
                                            context=context) as reply:
                    assert reply.status == 200
                    break
            except (OSError, ssl.SSLError):
                assert time.monotonic() < deadline, "no https health answer"
                time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
