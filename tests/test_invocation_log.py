"""The invocation log records exactly what a client sent and got back, and writes Bedrock's log records to a file."""

from __future__ import annotations

import json
import re

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError
from conftest import HAIKU, user

from emulator.admin_client import EmulatorAdmin
from emulator.app import Settings
from emulator.server import BackgroundServer
from emulator.testing import TestKitConfig


def without_metadata(reply: dict) -> dict:
    return {key: value for key, value in reply.items() if key != "ResponseMetadata"}


def test_the_log_shows_exactly_what_was_sent_and_returned(client, bedrock_emulator):
    bedrock_emulator.script("Logged answer.", usage={"input_tokens": 9, "output_tokens": 3})
    request = {
        "messages": [user("What did I send?")],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.2, "stopSequences": ["END"]},
        "additionalModelRequestFields": {"top_k": 5},
    }
    reply = client.converse(modelId=HAIKU, **request)
    [entry] = bedrock_emulator.invocations()
    assert entry["request"] == request  # the JSON body as boto3 put it on the wire (modelId travels in the path)
    assert entry["response"] == without_metadata(reply)
    assert (entry["operation"], entry["modelId"], entry["status"], entry["error"]) == ("Converse", HAIKU, 200, None)
    assert (entry["inputTokens"], entry["outputTokens"]) == (9, 3)
    assert entry["requestId"] == reply["ResponseMetadata"]["RequestId"]
    assert entry["scriptedRule"] == bedrock_emulator.rules()[0]["id"]
    assert 0 <= entry["firstByteMs"] <= entry["latencyMs"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["timestamp"])


def test_a_stream_is_logged_as_the_events_the_client_received(client, bedrock_emulator):
    bedrock_emulator.script("Streamed and logged.")
    events = list(client.converse_stream(modelId=HAIKU, messages=[user("stream please")])["stream"])
    [entry] = bedrock_emulator.invocations()
    assert entry["operation"] == "ConverseStream"
    assert entry["response"] == events
    assert entry["outputTokens"] == events[-1]["metadata"]["usage"]["outputTokens"]


def test_native_bodies_are_logged_as_sent_and_answered(client, bedrock_emulator):
    bedrock_emulator.script("Native answer.")
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 20,
            "messages": [{"role": "user", "content": "native hello"}]}
    reply = json.loads(client.invoke_model(modelId=HAIKU, body=json.dumps(body))["body"].read())
    stream = client.invoke_model_with_response_stream(modelId=HAIKU, body=json.dumps(body))["body"]
    chunks = [json.loads(event["chunk"]["bytes"]) for event in stream]
    invoke, invoke_stream = bedrock_emulator.invocations()
    assert invoke["request"] == body and invoke["response"] == reply
    assert invoke["outputTokens"] == reply["usage"]["output_tokens"]
    assert invoke_stream["request"] == body and invoke_stream["response"] == chunks


def test_errors_are_logged_with_code_and_status(client, bedrock_emulator):
    with pytest.raises(ClientError):
        client.converse(modelId=HAIKU, messages=[user("x")], inferenceConfig={"temperature": 5.0})
    bedrock_emulator.script("one two three")
    bedrock_emulator.fail("throttlingException", after_events=1)
    with pytest.raises(EventStreamError):
        list(client.converse_stream(modelId=HAIKU, messages=[user("x")])["stream"])
    invalid, broken = bedrock_emulator.invocations()
    assert invalid["status"] == 400 and invalid["error"]["code"] == "ValidationException"
    assert not invalid["error"]["inStream"] and "inferenceConfig.temperature" in invalid["error"]["message"]
    assert broken["status"] == 200
    assert broken["error"] == {"code": "ThrottlingException", "inStream": True,
                               "message": "Too many requests, please wait before trying again."}
    assert broken["response"][-1] == {"throttlingException": {"message": broken["error"]["message"]}}


def test_the_log_can_be_limited_and_cleared(client, bedrock_emulator):
    for word in ("first", "second", "third"):
        bedrock_emulator.script(word, times=1)
    for _ in range(3):
        client.converse(modelId=HAIKU, messages=[user("x")])
    last_two = bedrock_emulator.invocations(limit=2)
    assert [e["response"]["output"]["message"]["content"][0]["text"] for e in last_two] == ["second", "third"]
    bedrock_emulator.clear_invocations()
    assert bedrock_emulator.invocations() == []


# --- a server of its own: a bounded log written to a file ---------------------------------------------------

@pytest.fixture(scope="module")
def logging_server(tmp_path_factory):
    """No local model (scripted answers need none), a 3-entry log, JSON lines to a file."""
    folder = tmp_path_factory.mktemp("invocation-log")
    catalog = folder / "catalog.yaml"
    catalog.write_text("models:\n  - {match: 'anthropic.*', family: anthropic}\n")
    config = TestKitConfig(invocation_log_path=folder / "invocations.jsonl", invocation_log_size=3)
    server = BackgroundServer(Settings(catalog_path=catalog, testing=config)).start()
    yield server, config.invocation_log_path
    server.stop()


@pytest.fixture
def logged(logging_server):
    server, path = logging_server
    admin = EmulatorAdmin(server.url)
    admin.reset()
    path.write_text("")
    # A region other than the default: the record's region comes from the request's SigV4 credential scope.
    client = boto3.client("bedrock-runtime", endpoint_url=server.url, region_name="eu-west-1",
                          aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                          config=Config(retries={"total_max_attempts": 1}))
    return admin, client, path


def records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_log_file_holds_bedrock_model_invocation_records(logged):
    admin, client, path = logged
    admin.script("Filed away.", usage={"input_tokens": 4, "output_tokens": 2})
    reply = client.converse(modelId=HAIKU, messages=[user("log me")])
    [record] = records(path)
    assert record == {
        "schemaType": "ModelInvocationLog",
        "schemaVersion": "1.0",
        "timestamp": record["timestamp"],
        "accountId": "000000000000",
        "region": "eu-west-1",
        "requestId": reply["ResponseMetadata"]["RequestId"],
        "operation": "Converse",
        "modelId": HAIKU,
        "input": {"inputContentType": "application/json", "inputBodyJson": {"messages": [user("log me")]},
                  "inputTokenCount": 4},
        "output": {"outputContentType": "application/json", "outputBodyJson": without_metadata(reply),
                   "outputTokenCount": 2},
    }
    assert admin.invocations(bedrock_format=True) == [record]


def test_failed_calls_are_filed_with_their_error(logged):
    admin, client, path = logged
    admin.fail("ThrottlingException", count=1)
    with pytest.raises(ClientError):
        client.converse(modelId=HAIKU, messages=[user("x")])
    [record] = records(path)
    assert (record["errorCode"], record["errorMessage"]) == ("ThrottlingException", "Too many requests, please wait before trying again.")
    assert "output" not in record


def test_the_in_memory_log_is_bounded_and_keeps_the_newest(logged):
    admin, client, path = logged
    for i in range(5):
        admin.script(f"answer {i}", times=1)
    for _ in range(5):
        client.converse(modelId=HAIKU, messages=[user("x")])
    kept = admin.invocations()
    assert [e["response"]["output"]["message"]["content"][0]["text"] for e in kept] == ["answer 2", "answer 3", "answer 4"]
    assert len(records(path)) == 5  # the file keeps everything
