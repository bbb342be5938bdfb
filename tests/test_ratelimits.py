"""Per-model quotas answer with ThrottlingException and Bedrock's own messages once a window is used up."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError
from conftest import HAIKU, user

from emulator.admin_client import AdminError

SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0"


@pytest.fixture
def scripted(bedrock_emulator):
    """Answers with a known token count (10 in + 5 out) and no model work."""
    bedrock_emulator.script("five tokens of output here", usage={"input_tokens": 10, "output_tokens": 5})
    return bedrock_emulator


def converse(client, model=HAIKU):
    return client.converse(modelId=model, messages=[user("hello")])


def throttled(call) -> dict:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response


def test_requests_per_minute_throttle_with_bedrocks_message(client, scripted):
    scripted.set_rate_limits([{"model": "anthropic.claude-3-haiku*", "rpm": 2}])
    converse(client)
    client.converse_stream(modelId=HAIKU, messages=[user("hello")])  # every inference operation counts
    response = throttled(lambda: converse(client))
    assert response["Error"] == {"Code": "ThrottlingException",
                                 "Message": "Too many requests, please wait before trying again."}
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert converse(client, SONNET)["stopReason"] == "end_turn"  # another model has its own quota


def test_each_model_matched_by_a_pattern_has_its_own_window(client, scripted):
    scripted.set_rate_limits([{"model": "anthropic.*", "rpm": 1}])
    converse(client)
    converse(client, SONNET)
    assert throttled(lambda: converse(client, f"us.{HAIKU}"))["Error"]["Code"] == "ThrottlingException"


def test_tokens_per_minute_throttle_once_the_window_is_spent(client, scripted):
    scripted.set_rate_limits([{"model": "*", "tpm": 30}])
    converse(client)  # 15 tokens used
    converse(client)  # 30 used: the window is now full
    response = throttled(lambda: converse(client))
    assert response["Error"] == {"Code": "ThrottlingException",
                                 "Message": "Too many tokens, please wait before trying again."}


def test_the_window_slides_and_throttled_calls_never_enter_it(client, scripted):
    scripted.set_rate_limits([{"rpm": 1, "window_seconds": 2.0}])
    started = time.monotonic()
    converse(client)
    for pause in (0.0, 0.4, 0.4):  # throttled calls until about 0.8 s in (margins of a second for slow machines)
        time.sleep(pause)
        throttled(lambda: converse(client))
    time.sleep(max(0.0, started + 2.1 - time.monotonic()))
    converse(client)  # the admitted call has left the window; had the throttled ones entered it, this would fail


def test_limits_can_be_read_replaced_and_cleared(client, scripted):
    assert scripted.rate_limits() == []
    scripted.set_rate_limits([{"model": "amazon.*", "tpm": 100}])
    assert scripted.rate_limits() == [{"model": "amazon.*", "tpm": 100, "window_seconds": 60.0}]
    scripted.set_rate_limits([{"rpm": 1}])
    converse(client)
    scripted.clear_rate_limits()
    assert converse(client)["stopReason"] == "end_turn"


@pytest.mark.parametrize(
    ("limits", "complaint"),
    [
        ([{"model": "*"}], "a rate limit needs `rpm`, `tpm` or both"),
        ([{"rpm": 0}], "limits.0.rpm: Input should be greater than or equal to 1"),
        ([{"rpm": 1, "burst": 3}], "limits.0.burst: Extra inputs are not permitted"),
    ],
)
def test_invalid_limits_are_rejected_with_the_reason(bedrock_emulator, limits, complaint):
    with pytest.raises(AdminError) as caught:
        bedrock_emulator.set_rate_limits(limits)
    assert caught.value.status == 400
    assert complaint in caught.value.message
