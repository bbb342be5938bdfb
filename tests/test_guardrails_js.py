"""Guardrails through the AWS SDK for JavaScript v3: a guardrail created with @aws-sdk/client-bedrock blocks a
Converse input and masks PII in streamed output (sync and async), the trace decoded by the SDK.

Needs node and npm; the SDKs are installed once into `<cache>/js-guardrails` (skipped when npm cannot reach its
registry). The script is `tests/js/guardrails.mjs`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from guardrail_setup import BLOCKED_INPUT, BLOCKED_OUTPUT

from emulator.admin_client import EmulatorAdmin
from emulator.engine.sources import default_cache_dir

SCRIPT = Path(__file__).resolve().parent / "js" / "guardrails.mjs"
PACKAGES = ["@aws-sdk/client-bedrock-runtime@3.1163.0", "@aws-sdk/client-bedrock@3.1163.0",
            "@smithy/node-http-handler@4.14.2"]


@pytest.fixture(scope="module")
def results(server) -> dict[str, dict]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed to run the JS SDK")
    folder = default_cache_dir() / "js-guardrails"
    if not all((folder / "node_modules" / "@aws-sdk" / p).is_dir() for p in ("client-bedrock-runtime", "client-bedrock")):
        folder.mkdir(parents=True, exist_ok=True)
        installed = subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(folder),
                                    *PACKAGES], capture_output=True, text=True, timeout=600)
        if installed.returncode != 0:
            pytest.skip(f"npm could not install the JS SDK: {installed.stderr.strip()[-300:]}")
    shutil.copy(SCRIPT, folder / SCRIPT.name)  # ESM resolves packages from the script's own folder
    env = {**os.environ, "EP": server.url, "BLOCKED_INPUT": BLOCKED_INPUT, "BLOCKED_OUTPUT": BLOCKED_OUTPUT}
    admin = EmulatorAdmin(server.url)
    admin.reset()
    try:
        run = subprocess.run([node, SCRIPT.name], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    finally:
        admin.reset()
    assert run.returncode == 0, run.stderr
    return {line["case"]: line for line in map(json.loads, run.stdout.splitlines())}


def test_create_guardrail_through_the_js_control_plane_client(results):
    created = results["created"]
    assert created["version"] == "DRAFT" and created["createdAt"] is True and len(created["id"]) == 12


def test_converse_input_block_and_trace_decoded_by_the_sdk(results):
    blocked = results["converse-block"]
    assert (blocked["stopReason"], blocked["text"]) == ("guardrail_intervened", BLOCKED_INPUT)
    assert blocked["topics"] == [{"name": "Investment advice", "type": "DENY", "action": "BLOCKED", "detected": True}]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_blocks_input_in_both_modes(results, mode):
    blocked = results[f"stream-block-{mode}"]
    assert (blocked["text"], blocked["stopReason"]) == (BLOCKED_INPUT, "guardrail_intervened")
    assert blocked["inputTopics"][0]["action"] == "BLOCKED" and blocked["pii"] is None


def test_sync_stream_masks_pii(results):
    masked = results["stream-mask-sync"]
    assert (masked["text"], masked["stopReason"]) == ("Send it to {EMAIL} today.", "guardrail_intervened")
    assert masked["pii"] == [{"match": "jane@example.com", "type": "EMAIL", "action": "ANONYMIZED", "detected": True}]


def test_async_stream_reports_pii_it_cannot_mask(results):
    """AWS documents that asynchronous mode does not mask sensitive information; the trace still reports it."""
    masked = results["stream-mask-async"]
    assert (masked["text"], masked["stopReason"]) == ("Send it to jane@example.com today.", "end_turn")
    assert masked["pii"][0]["action"] == "ANONYMIZED"
