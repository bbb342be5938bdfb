"""Guardrails through the AWS SDK for JavaScript v3: a guardrail created with @aws-sdk/client-bedrock blocks a
Converse input and masks PII in streamed output (sync and async), the trace decoded by the SDK.

Needs node and npm; the SDKs are installed once into `<cache>/js-guardrails` (skipped when npm cannot reach its
registry). The script is `tests/js/guardrails.mjs`.
"""

from __future__ import annotations

import pytest
from guardrail_setup import BLOCKED_INPUT, BLOCKED_OUTPUT
from jsnode import node_packages

from emulator.admin_client import EmulatorAdmin

SCRIPT = "guardrails.mjs"
PACKAGES = ["@aws-sdk/client-bedrock-runtime@3.1163.0", "@aws-sdk/client-bedrock@3.1163.0",
            "@smithy/node-http-handler@4.14.2"]


@pytest.fixture(scope="module")
def results(server) -> dict[str, dict]:
    js = node_packages("js-guardrails", PACKAGES)
    admin = EmulatorAdmin(server.url)
    admin.reset()
    try:
        lines = js.json_lines(SCRIPT, EP=server.url, BLOCKED_INPUT=BLOCKED_INPUT, BLOCKED_OUTPUT=BLOCKED_OUTPUT)
    finally:
        admin.reset()
    return {line["case"]: line for line in lines}


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
