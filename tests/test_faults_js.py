"""Injected faults through the AWS SDK for JavaScript v3: the same retry decisions and in-stream exceptions as AWS.

Needs node and npm; the SDK is installed once into the emulator's cache (skipped when npm cannot reach its
registry). The script is `tests/js/faults.mjs`.
"""

from __future__ import annotations

import json

import pytest
from jsnode import NodePackages, node_packages

from emulator.admin_client import EmulatorAdmin

SCRIPT = "faults.mjs"
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
def js_sdk() -> NodePackages:
    return node_packages("js-sdk", PACKAGES)


@pytest.fixture(scope="module")
def js_results(js_sdk, server) -> list[dict]:
    admin = EmulatorAdmin(server.url)
    admin.reset()
    try:
        return js_sdk.json_lines(SCRIPT, EP=server.url, CODES=json.dumps(list(RETRIES)),
                                 MEMBERS=json.dumps(STREAM_MEMBERS))
    finally:
        admin.reset()


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
