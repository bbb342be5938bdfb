"""Injected faults reach clients exactly as AWS sends them, so boto3's retry logic decides as it would against AWS.

botocore's standard retry mode (3 attempts) retries 429 ThrottlingException, 5xx, and ModelNotReadyException (a
modeled `retryable` error); it never retries ModelTimeoutException (408), ModelErrorException (424) or
ValidationException. In-stream exceptions surface as `EventStreamError` with the lowerCamel member as the code.
"""

from __future__ import annotations

import random
import time

import pytest
from botocore.exceptions import ClientError, EventStreamError
from conftest import HAIKU, user

from emulator.admin_client import AdminError
from emulator.protocol.errors import MODELED

NOVA = "amazon.nova-micro-v1:0"


@pytest.fixture
def retrying_client(bedrock_emulator):
    """boto3 with standard-mode retries (3 attempts), stated explicitly: the default mode differs across botocore
    versions (1.44 defaults to standard; 1.43 to legacy, 5 attempts)."""
    return bedrock_emulator.boto3_client(retries={"mode": "standard", "total_max_attempts": 3})


@pytest.fixture
def scripted(bedrock_emulator):
    """Every call answered by a script (no model work), so each test sees only what its faults do."""
    bedrock_emulator.script("one two three four five", usage={"input_tokens": 3, "output_tokens": 5})
    return bedrock_emulator


def converse(client, model=HAIKU):
    return client.converse(modelId=model, messages=[user("hello")])


def test_boto3_retries_a_throttle_and_then_succeeds(retrying_client, scripted):
    """With boto3's retries on: one ThrottlingException, then the answer; the log shows both attempts."""
    scripted.fail("ThrottlingException", count=1)
    reply = converse(retrying_client)
    assert reply["output"]["message"]["content"][0]["text"] == "one two three four five"
    assert reply["ResponseMetadata"]["RetryAttempts"] == 1
    attempts = scripted.invocations()
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, 429), (2, 200)]
    assert attempts[0]["error"]["code"] == "ThrottlingException"
    assert attempts[0]["faults"] and not attempts[1]["faults"]
    assert attempts[0]["sdkInvocationId"] == attempts[1]["sdkInvocationId"]  # one SDK call, two HTTP attempts
    assert scripted.faults() == []  # a fault for the next N calls retires after N


@pytest.mark.parametrize(
    ("code", "attempts"),
    [
        ("ServiceUnavailableException", 3),  # 503: retried as a 5xx
        ("ModelNotReadyException", 3),  # 429 but not a throttling code: retried because the model marks it retryable
        ("ModelTimeoutException", 1),  # 408: not retried
        ("ModelErrorException", 1),  # 424: not retried
    ],
)
def test_boto3_retry_decisions_match_aws(retrying_client, scripted, code, attempts):
    scripted.fail(code)  # every call, until cleared
    with pytest.raises(ClientError) as caught:
        converse(retrying_client)
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == MODELED[code][0]
    assert len(scripted.invocations()) == attempts


@pytest.mark.parametrize("code", sorted(set(MODELED) - {"ConflictException", "ModelStreamErrorException"}))
def test_each_modeled_exception_has_aws_status_header_and_message(client, scripted, code):
    scripted.fail(code, count=1, operation="InvokeModel" if code == "ServiceQuotaExceededException" else "Converse")
    call = (lambda: client.invoke_model(modelId=HAIKU, body=b"{}")) if code == "ServiceQuotaExceededException" \
        else (lambda: converse(client))
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    status, message = MODELED[code]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == code
    assert response["Error"] == {"Code": code, "Message": message}
    assert type(caught.value).__name__ == code  # boto3's modeled exception class, as against AWS


def test_modeled_extra_members_reach_the_client(client, scripted):
    scripted.fail("ModelErrorException", count=1, message="upstream failed",
                  extra={"originalStatusCode": 503, "resourceName": "arn:aws:bedrock:us-east-1::foundation-model/x"})
    with pytest.raises(client.exceptions.ModelErrorException) as caught:
        converse(client)
    assert caught.value.response["originalStatusCode"] == 503
    assert caught.value.response["resourceName"] == "arn:aws:bedrock:us-east-1::foundation-model/x"


STREAM_MEMBERS = ["internalServerException", "modelStreamErrorException", "validationException",
                  "throttlingException", "serviceUnavailableException"]


@pytest.mark.parametrize("member", STREAM_MEMBERS)
def test_mid_stream_failure_is_an_event_stream_error_after_k_deltas(client, scripted, member):
    scripted.fail(member, after_events=2, message="broke mid-stream")
    stream = client.converse_stream(modelId=HAIKU, messages=[user("hello")])["stream"]
    seen = []
    with pytest.raises(EventStreamError) as caught:
        for event in stream:
            seen.append(event)
    assert caught.value.response["Error"] == {"Code": member, "Message": "broke mid-stream"}
    assert seen == [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "one"}, "contentBlockIndex": 0}},
        {"contentBlockDelta": {"delta": {"text": " two"}, "contentBlockIndex": 0}},
    ]


def test_mid_stream_model_timeout_on_invoke_model_stream(client, scripted):
    """ResponseStream (unlike ConverseStreamOutput) has a modelTimeoutException member."""
    scripted.fail("ModelTimeoutException", after_events=1, operation="InvokeModelWithResponseStream")
    body = b'{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}'
    stream = client.invoke_model_with_response_stream(modelId=HAIKU, body=body)["body"]
    chunks = []
    with pytest.raises(EventStreamError) as caught:
        for event in stream:
            chunks.append(event)
    assert caught.value.response["Error"]["Code"] == "modelTimeoutException"
    assert chunks and all("chunk" in c for c in chunks)


def test_a_stream_shorter_than_k_fails_at_its_end(client, bedrock_emulator):
    bedrock_emulator.script("short")
    bedrock_emulator.fail("throttlingException", after_events=5)
    stream = client.converse_stream(modelId=HAIKU, messages=[user("hello")])["stream"]
    seen = []
    with pytest.raises(EventStreamError):
        for event in stream:
            seen.append(event)
    assert [e for e in seen if "contentBlockDelta" in e] == [
        {"contentBlockDelta": {"delta": {"text": "short"}, "contentBlockIndex": 0}}]
    assert not any("messageStop" in e for e in seen)


@pytest.mark.parametrize(
    ("fault", "complaint"),
    [
        ({"error": "ModelTimeoutException", "after_events": 1},
         "ConverseStream's event stream has no ModelTimeoutException member"),
        ({"error": "throttlingException", "after_events": 1, "operation": "Converse"},
         "`after_events` is a mid-stream failure; Converse does not stream"),
        ({"error": "ConflictException", "operation": "Converse"}, "Converse never returns ConflictException"),
        ({"error": "ThrottlingException", "rate": 1.5}, "rate: Input should be less than or equal to 1"),
        ({"count": 2}, "a fault needs an `error` or a latency"),
        ({"error": "ThrottlingException", "operation": "Conversation"}, "unknown operation(s) Conversation"),
    ],
)
def test_invalid_faults_are_rejected_with_the_reason(bedrock_emulator, fault, complaint):
    with pytest.raises(AdminError) as caught:
        bedrock_emulator.add_fault(fault)
    assert caught.value.status == 400
    assert complaint in caught.value.message


def test_faults_are_scoped_by_operation_and_model(client, scripted):
    scripted.fail("ServiceUnavailableException", operation="ConverseStream")
    scripted.fail("AccessDeniedException", model="amazon.nova-*")
    assert converse(client)["stopReason"] == "end_turn"  # Converse on Claude: neither fault applies
    with pytest.raises(ClientError) as nova:
        converse(client, NOVA)
    assert nova.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError) as streaming:
        client.converse_stream(modelId=HAIKU, messages=[user("hello")])
    assert streaming.value.response["Error"]["Code"] == "ServiceUnavailableException"


def test_an_unscoped_fault_only_fires_where_the_operation_can_return_it(client, scripted):
    """ServiceQuotaExceededException is in InvokeModel's error list, not Converse's."""
    scripted.fail("ServiceQuotaExceededException")
    assert converse(client)["stopReason"] == "end_turn"
    assert scripted.faults()[0]["fired"] == 0


def test_a_fraction_of_calls_fails_repeatably_with_a_seed(client, scripted):
    scripted.fail("InternalServerException", rate=0.5, seed=7)
    outcomes = []
    for _ in range(12):
        try:
            converse(client)
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
    rng = random.Random(7)
    assert outcomes == ["InternalServerException" if rng.random() < 0.5 else "ok" for _ in range(12)]
    assert 0 < outcomes.count("ok") < 12


def test_added_latency_before_first_byte_and_between_deltas(client, scripted):
    scripted.slow(first_byte_ms=300, token_ms=60)
    started = time.monotonic()
    stream = client.converse_stream(modelId=HAIKU, messages=[user("hello")])["stream"]
    first_byte = time.monotonic() - started
    arrivals = [time.monotonic() for e in stream if "contentBlockDelta" in e]
    assert first_byte >= 0.3
    assert len(arrivals) == 5 and arrivals[-1] - arrivals[0] >= 4 * 0.06 * 0.95
    assert scripted.invocations()[-1]["firstByteMs"] >= 300


def test_faults_can_be_listed_removed_and_cleared(bedrock_emulator):
    first = bedrock_emulator.fail("ThrottlingException", count=3)
    second = bedrock_emulator.slow(first_byte_ms=10)
    assert [(f["id"], f.get("remaining")) for f in bedrock_emulator.faults()] == [(first["id"], 3), (second["id"], None)]
    bedrock_emulator.remove_fault(first["id"])
    assert [f["id"] for f in bedrock_emulator.faults()] == [second["id"]]
    bedrock_emulator.clear_faults()
    assert bedrock_emulator.faults() == []
