"""Injected faults through the AWS SDK for JavaScript v3: the same retry decisions and in-stream exceptions as AWS.

Needs node and npm; the SDK is installed once into the emulator's cache (skipped when npm cannot reach its
registry). The script is `tests/js/faults.mjs`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from emulator.admin_client import EmulatorAdmin
from emulator.engine.sources import default_cache_dir

SCRIPT = Path(__file__).resolve().parent / "js" / "faults.mjs"
PACKAGES = ["@aws-sdk/client-bedrock-runtime@3.1163.0"]

# exception -> (HTTP status, whether the JS SDK's standard retry strategy retries it)
RETRIES = {
    "ThrottlingException": (429, True),
    "ModelNotReadyException": (429, True),
    "ServiceUnavailableException": (503, True),
    "InternalServerException": (500, True),
    "ModelTimeoutException": (408, False),
    "ModelErrorException": (424, False),
    "ValidationException": (400, False),
}
STREAM_MEMBERS = ["throttlingException", "modelStreamErrorException", "internalServerException",
                  "validationException", "serviceUnavailableException"]


@pytest.fixture(scope="module")
def js_sdk() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed to run the JS SDK")
    folder = default_cache_dir() / "js-sdk"
    if not (folder / "node_modules" / "@aws-sdk" / "client-bedrock-runtime").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        installed = subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(folder),
                                    *PACKAGES], capture_output=True, text=True, timeout=600)
        if installed.returncode != 0:
            pytest.skip(f"npm could not install the JS SDK: {installed.stderr.strip()[-300:]}")
    shutil.copy(SCRIPT, folder / SCRIPT.name)  # ESM resolves packages from the script's own folder
    return folder


@pytest.fixture(scope="module")
def js_results(js_sdk, server) -> list[dict]:
    env = {**os.environ, "EP": server.url, "CODES": json.dumps(list(RETRIES)), "MEMBERS": json.dumps(STREAM_MEMBERS)}
    admin = EmulatorAdmin(server.url)
    admin.reset()
    try:
        run = subprocess.run(["node", SCRIPT.name], cwd=js_sdk, env=env, capture_output=True, text=True, timeout=300)
    finally:
        admin.reset()
    assert run.returncode == 0, run.stderr
    return [json.loads(line) for line in run.stdout.splitlines()]


@pytest.mark.parametrize("code", RETRIES)
def test_js_sdk_retries_exactly_what_aws_would_have_it_retry(js_results, code):
    status, retried = RETRIES[code]
    [result] = [r for r in js_results if r.get("code") == code]
    if retried:  # one injected failure, then the scripted answer on the second attempt
        assert (result["outcome"], result["attempts"], result["requests"]) == ("ok", 2, 2)
    else:
        assert result == {"code": code, "outcome": code, "status": status, "attempts": 1, "requests": 1}


@pytest.mark.parametrize("member", STREAM_MEMBERS)
def test_js_sdk_throws_the_modeled_class_for_an_in_stream_exception(js_results, member):
    [result] = [r for r in js_results if r.get("member") == member]
    assert result["thrown"] == member[0].upper() + member[1:]
    assert result["seen"] == ["messageStart", "contentBlockDelta", "contentBlockDelta"]
