"""Helpers for InvokeModel tests: call with boto3, decode replies and streams with boto3's own parsers."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

METRICS = "amazon-bedrock-invocationMetrics"
QUESTION = "What is the capital of France?"


def invoke(client, model_id: str, body, **kwargs) -> tuple[dict, dict]:
    """(parsed reply, lower-cased HTTP headers) of one InvokeModel call."""
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    reply = client.invoke_model(modelId=model_id, body=raw, **kwargs)
    assert reply["contentType"] == "application/json"
    return json.loads(reply["body"].read()), reply["ResponseMetadata"]["HTTPHeaders"]


def stream(client, model_id: str, body, **kwargs) -> tuple[list[dict], dict]:
    """(decoded native chunks, HTTP headers) of one InvokeModelWithResponseStream call."""
    reply = client.invoke_model_with_response_stream(modelId=model_id, body=json.dumps(body), **kwargs)
    assert reply["contentType"] == "application/json"  # X-Amzn-Bedrock-Content-Type
    chunks = [json.loads(event["chunk"]["bytes"]) for event in reply["body"]]
    return chunks, reply["ResponseMetadata"]["HTTPHeaders"]


def metrics_only_last(chunks: list[dict]) -> dict:
    """Bedrock's invocation metrics ride on the last chunk and nowhere else."""
    assert all(METRICS not in chunk for chunk in chunks[:-1])
    metrics = chunks[-1][METRICS]
    assert set(metrics) >= {"inputTokenCount", "outputTokenCount", "invocationLatency", "firstByteLatency"}
    return metrics


def token_headers(headers: dict) -> tuple[int, int]:
    assert int(headers["x-amzn-bedrock-invocation-latency"]) >= 0
    return int(headers["x-amzn-bedrock-input-token-count"]), int(headers["x-amzn-bedrock-output-token-count"])


def count_invoke_tokens(client, model_id: str, body: dict) -> int:
    return client.count_tokens(modelId=model_id, input={"invokeModel": {"body": json.dumps(body).encode()}})["inputTokens"]


def rejected(call, code: str = "ValidationException", status: int = 400) -> str:
    """The message of the modeled error a call must fail with."""
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response
    assert error["Error"]["Code"] == code
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    return error["Error"]["Message"]


def malformed(detail: str) -> str:
    return f"Malformed input request: {detail}, please reformat your input and try again."
