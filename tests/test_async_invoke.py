"""StartAsyncInvoke / GetAsyncInvoke / ListAsyncInvokes through boto3: jobs run the InvokeModel path in the background."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from emulator.api.async_invoke import JOBS

S3 = {"s3OutputDataConfig": {"s3Uri": "s3://my-bucket/jobs"}}
TITAN_BODY = {"inputText": "Say hi.", "textGenerationConfig": {"maxTokenCount": 5, "temperature": 0}}


def wait_done(client, arn: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get_async_invoke(invocationArn=arn)
        if job["status"] != "InProgress":
            return job
        time.sleep(0.1)
    raise AssertionError(f"{arn} still in progress after {timeout}s")


def test_text_job_completes_and_writes_the_invokemodel_reply(client, server):
    arn = client.start_async_invoke(modelId="amazon.titan-text-express-v1", modelInput=TITAN_BODY,
                                    outputDataConfig=S3)["invocationArn"]
    assert arn.startswith("arn:aws:bedrock:us-east-1:000000000000:async-invoke/")
    job = wait_done(client, arn)
    invocation_id = arn.rsplit("/", 1)[1]
    assert job["status"] == "Completed"
    assert job["modelArn"] == "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-text-express-v1"
    assert job["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"] == f"s3://my-bucket/jobs/{invocation_id}"
    assert job["endTime"] >= job["submitTime"]
    folder = server.app[JOBS].output_dir / "my-bucket" / "jobs" / invocation_id
    reply = json.loads((folder / "output.json").read_text())
    assert reply["results"][0]["tokenCount"] == 5  # maxTokenCount honoured, in Titan's native shape


def test_bad_model_input_is_rejected_at_start(client):
    with pytest.raises(ClientError) as err:
        client.start_async_invoke(modelId="amazon.titan-text-express-v1", modelInput={"prompt": "x"}, outputDataConfig=S3)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["Error"]["Message"].startswith("Malformed input request")


def test_same_token_same_request_is_idempotent_and_a_changed_request_conflicts(client):
    first = client.start_async_invoke(modelId="amazon.titan-text-express-v1", modelInput=TITAN_BODY,
                                      outputDataConfig=S3, clientRequestToken="token-123")
    again = client.start_async_invoke(modelId="amazon.titan-text-express-v1", modelInput=TITAN_BODY,
                                      outputDataConfig=S3, clientRequestToken="token-123")
    assert again["invocationArn"] == first["invocationArn"]
    with pytest.raises(ClientError) as err:
        client.start_async_invoke(modelId="amazon.titan-text-express-v1", modelInput={**TITAN_BODY, "inputText": "Other"},
                                  outputDataConfig=S3, clientRequestToken="token-123")
    assert err.value.response["Error"]["Code"] == "ConflictException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    wait_done(client, first["invocationArn"])


def test_list_filters_sorts_and_pages(client):
    arns = [
        client.start_async_invoke(modelId="amazon.titan-text-express-v1", modelInput=TITAN_BODY, outputDataConfig=S3)["invocationArn"]
        for _ in range(3)
    ]
    for arn in arns:
        wait_done(client, arn)
    newest_first = client.list_async_invokes(statusEquals="Completed", maxResults=1000)["asyncInvokeSummaries"]
    listed = [s["invocationArn"] for s in newest_first]
    assert listed.index(arns[2]) < listed.index(arns[1]) < listed.index(arns[0])
    oldest_first = client.list_async_invokes(sortOrder="Ascending")["asyncInvokeSummaries"]
    assert [s["invocationArn"] for s in oldest_first if s["invocationArn"] in arns] == arns
    paged = [s["invocationArn"] for page in client.get_paginator("list_async_invokes").paginate(
        statusEquals="Completed", PaginationConfig={"PageSize": 2}) for s in page["asyncInvokeSummaries"]]
    assert paged == listed
    assert client.list_async_invokes(statusEquals="InProgress")["asyncInvokeSummaries"] == []
    assert client.list_async_invokes(submitTimeAfter="2999-01-01T00:00:00Z")["asyncInvokeSummaries"] == []


def test_unknown_invocation_arn_is_a_validation_error(client):
    with pytest.raises(ClientError) as err:
        client.get_async_invoke(invocationArn="arn:aws:bedrock:us-east-1:000000000000:async-invoke/abcdefabcdef")
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_malformed_invocation_arn_fails_the_service_pattern(client):
    with pytest.raises(ClientError) as err:
        client.get_async_invoke(invocationArn="arn:aws:bedrock:us-east-1:000000000000:async-invoke/UPPER")
    assert "failed to satisfy constraint: Member must satisfy regular expression pattern" in err.value.response["Error"]["Message"]


def test_s3_uri_must_match_the_service_pattern(client):
    with pytest.raises(ClientError) as err:
        client.start_async_invoke(modelId="amazon.titan-text-express-v1", modelInput=TITAN_BODY,
                                  outputDataConfig={"s3OutputDataConfig": {"s3Uri": "http://not-s3"}})
    assert "at 'outputDataConfig.s3OutputDataConfig.s3Uri'" in err.value.response["Error"]["Message"]
