"""Bad requests get Bedrock's modeled error: exact status, `x-amzn-ErrorType`, `{"message"}` and a request id.

Service-model constraints use the Coral wording (`1 validation error detected: Value '0' at
'inferenceConfig.maxTokens' failed to satisfy constraint: ...`, list members as `messages.1.member`); Bedrock's
own conversation rules use its own sentences (list indices from 0). Requests no SDK would send are made raw;
the rest go through boto3, with its client-side checks switched off where boto3 would refuse to send them.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid

import pytest
from botocore.exceptions import ClientError
from conftest import HAIKU, make_client, raw_request, user

from emulator.protocol.shapes import operation

CONVERSE = "/model/" + urllib.parse.quote(HAIKU, safe="") + "/converse"
CONVERSE_STREAM = "/model/" + urllib.parse.quote(HAIKU, safe="") + "/converse-stream"
MODEL_ID_PATTERN = operation("Converse").input_shape.members["modelId"].metadata["pattern"]
ROLES = ", ".join(operation("Converse").input_shape.members["messages"].member.members["role"].enum)

INVALID_MODEL = "The provided model identifier is invalid."
MUST_START_WITH_USER = "A conversation must start with a user message. Try again with a conversation that starts with a user message."
MUST_ALTERNATE = (
    "A conversation must alternate between user and assistant roles. "
    "Make sure the conversation alternates between user and assistant roles and try again."
)


def coral(*errors: str) -> str:
    noun = "error" if len(errors) == 1 else "errors"
    return f"{len(errors)} validation {noun} detected: " + "; ".join(errors)


def body(**members) -> bytes:
    return json.dumps({"messages": [user("Hi")], **members}).encode()


# (name, raw body, the exact message) — every one a 400 ValidationException.
CASES = [
    ("malformed JSON", b'{"messages": [', "Malformed request body: invalid JSON (Expecting value at position 14)."),
    ("JSON array body", b'[{"role": "user"}]', "Malformed request body: expected a JSON object."),
    ("invalid UTF-8", b'{"messages": [{"role": "user", "content": [{"text": "\xff\xfe"}]}]}',
     "Malformed request body: the body is not valid UTF-8."),
    ("NaN is not JSON", b'{"inferenceConfig": {"temperature": NaN}}', "Malformed request body: invalid JSON (NaN is not a JSON value)."),
    ("JSON nested too deeply", b'{"system": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     "Malformed request body: invalid JSON (nested too deeply)."),
    ("integer of 5000 digits", b'{"inferenceConfig": {"maxTokens": ' + b"9" * 5000 + b"}}",
     "Malformed request body: invalid JSON (a number has too many digits)."),
    ("messages not a list", json.dumps({"messages": "Hi"}).encode(),
     coral("Value 'Hi' at 'messages' failed to satisfy constraint: Member must be a list")),
    ("null message", json.dumps({"messages": [None]}).encode(),
     coral("Value null at 'messages.1.member' failed to satisfy constraint: Member must not be null")),
    ("role missing", json.dumps({"messages": [{"content": [{"text": "Hi"}]}]}).encode(),
     coral("Value null at 'messages.1.member.role' failed to satisfy constraint: Member must not be null")),
    ("role not in enum", json.dumps({"messages": [{"role": "tool", "content": [{"text": "Hi"}]}]}).encode(),
     coral(f"Value 'tool' at 'messages.1.member.role' failed to satisfy constraint: Member must satisfy enum value set: [{ROLES}]")),
    ("maxTokens is a string", body(inferenceConfig={"maxTokens": "5"}),
     coral("Value '5' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must be an integer")),
    ("maxTokens is fractional", body(inferenceConfig={"maxTokens": 2.5}),
     coral("Value '2.5' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must be an integer")),
    ("three range errors, in model order", body(inferenceConfig={"topP": 2, "temperature": 1.5, "maxTokens": 0}),
     coral("Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1",
           "Value '1.5' at 'inferenceConfig.temperature' failed to satisfy constraint: Member must have value less than or equal to 1",
           "Value '2' at 'inferenceConfig.topP' failed to satisfy constraint: Member must have value less than or equal to 1")),
    ("content block with two members", json.dumps({"messages": [{"role": "user", "content": [
        {"text": "Hi", "image": {"format": "png", "source": {"bytes": "aGk="}}}]}]}).encode(),
     coral("Value at 'messages.1.member.content.1.member' failed to satisfy constraint: Member must have exactly one member set")),
    ("too many response field paths", body(additionalModelResponseFieldPaths=[f"/f{i}" for i in range(11)]),
     coral("Value '...' at 'additionalModelResponseFieldPaths' failed to satisfy constraint: Member must have length less than or equal to 10")),
    ("response field path not a pointer", body(additionalModelResponseFieldPaths=["stop_sequence"]),
     "The value at additionalModelResponseFieldPaths.0 is not a valid JSON Pointer. Use a path such as /stop_sequence and try again."),
    ("additional request fields not an object", body(additionalModelRequestFields=[1, 2]),
     "The additionalModelRequestFields value must be a JSON object. Reformat it and try again."),
    ("no messages", b"{}", MUST_START_WITH_USER),
    ("starts with assistant", json.dumps({"messages": [{"role": "assistant", "content": [{"text": "Hi"}]}]}).encode(),
     MUST_START_WITH_USER),
    ("two user turns in a row", json.dumps({"messages": [user("Hi"), user("Hi again")]}).encode(), MUST_ALTERNATE),
    ("empty content", json.dumps({"messages": [user("Hi"), {"role": "assistant", "content": []}, user("Hi")]}).encode(),
     "The content field in the Message object at messages.1 is empty. Add a ContentBlock object to the content field and try again."),
    ("blank text", json.dumps({"messages": [{"role": "user", "content": [{"text": "Look:"}, {"text": " \n "}]}]}).encode(),
     "The text field in the ContentBlock object at messages.0.content.1 is blank. Add text to the text field, and try again."),
    ("maxTokens over the model's limit", body(inferenceConfig={"maxTokens": 4097}),
     "The maximum tokens you requested exceeds the model limit of 4096. Try again with a maximum tokens value that is lower than 4096."),
    ("top_k of the wrong type", body(additionalModelRequestFields={"top_k": "one"}),
     "Malformed input request: #/top_k: expected type: Integer, found: String, please reformat your input and try again."),
    ("prompt longer than the model's context", json.dumps({"messages": [user("hello " * 9000)]}).encode(),
     "Input is too long for requested model."),
]


def assert_modeled(reply, status: int, code: str, message: str) -> None:
    assert reply.status == status
    assert reply.headers["x-amzn-ErrorType"] == code
    assert reply.headers["Content-Type"] == "application/json"
    assert json.loads(reply.body) == {"message": message}
    assert str(uuid.UUID(reply.headers["x-amzn-RequestId"])) == reply.headers["x-amzn-RequestId"]


@pytest.mark.parametrize("path", [CONVERSE, CONVERSE_STREAM], ids=["Converse", "ConverseStream"])
@pytest.mark.parametrize(("raw", "message"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_request_is_a_validation_exception(server, path, raw, message):
    assert_modeled(raw_request(server.url, path, raw), 400, "ValidationException", message)


def test_body_that_does_not_decode_with_its_content_encoding(server):
    reply = raw_request(server.url, CONVERSE, b"not gzip at all", headers={"Content-Encoding": "gzip"})
    assert_modeled(reply, 400, "ValidationException", "Malformed request body: Can not decode content-encoding: gzip.")


@pytest.mark.parametrize(
    ("path", "method", "message"),
    [
        ("/nothing-here", "POST", "No operation matches POST /nothing-here."),
        (CONVERSE, "GET", f"No operation matches GET {urllib.parse.unquote(CONVERSE)}."),
        ("/model/../../etc/passwd/converse", "POST", "No operation matches POST /model/../../etc/passwd/converse."),
    ],
)
def test_unknown_operation_is_a_modeled_404(server, path, method, message):
    assert_modeled(raw_request(server.url, path, body(), method=method), 404, "UnknownOperationException", message)


@pytest.fixture(scope="module")
def unchecked(server):
    """boto3 without its client-side checks (required, min, types), as the JS SDK and curl behave."""
    return make_client(server.url, parameter_validation=False)


def error_of(call) -> dict:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    assert str(uuid.UUID(response["ResponseMetadata"]["RequestId"])) == response["ResponseMetadata"]["RequestId"]
    return {"status": response["ResponseMetadata"]["HTTPStatusCode"], **response["Error"]}


def test_boto3_sees_max_tokens_zero_as_validation_exception(unchecked):
    error = error_of(lambda: unchecked.converse(modelId=HAIKU, messages=[user("Hi")], inferenceConfig={"maxTokens": 0}))
    assert error == {
        "status": 400,
        "Code": "ValidationException",
        "Message": coral("Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1"),
    }


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"temperature": 1.5}, "Value '1.5' at 'inferenceConfig.temperature' failed to satisfy constraint: Member must have value less than or equal to 1"),
        ({"topP": 2.0}, "Value '2.0' at 'inferenceConfig.topP' failed to satisfy constraint: Member must have value less than or equal to 1"),
    ],
)
def test_ranges_boto3_does_not_check_are_checked_by_the_server(client, config, expected):
    """boto3 validates only `min`, so these reach the server through the ordinary, checking client."""
    error = error_of(lambda: client.converse(modelId=HAIKU, messages=[user("Hi")], inferenceConfig=config))
    assert error == {"status": 400, "Code": "ValidationException", "Message": coral(expected)}
    with pytest.raises(client.exceptions.ValidationException):
        client.converse_stream(modelId=HAIKU, messages=[user("Hi")], inferenceConfig=config)


def test_missing_required_member_through_boto3(unchecked):
    error = error_of(lambda: unchecked.converse(modelId=HAIKU, messages=[{"role": "user"}]))
    assert error["Message"] == coral("Value null at 'messages.1.member.content' failed to satisfy constraint: Member must not be null")
    assert (error["status"], error["Code"]) == (400, "ValidationException")


@pytest.mark.parametrize("model_id", ["has space", "../../etc/passwd", "anthropic.claude/3"])
def test_model_id_must_fully_match_the_pattern(client, model_id):
    error = error_of(lambda: client.converse(modelId=model_id, messages=[user("Hi")]))
    expected = f"Value '{model_id}' at 'modelId' failed to satisfy constraint: Member must satisfy regular expression pattern: {MODEL_ID_PATTERN}"
    assert error == {"status": 400, "Code": "ValidationException", "Message": coral(expected)}


def test_model_id_longer_than_2048_characters(client):
    model_id = "a" * 2049
    error = error_of(lambda: client.converse(modelId=model_id, messages=[user("Hi")]))
    expected = f"Value '{model_id}' at 'modelId' failed to satisfy constraint: Member must have length less than or equal to 2048"
    assert error["Message"] == coral(expected)


@pytest.mark.parametrize("model_id", ["nobody.no-such-model-v1:0", "anthropic", "gpt-4o"])
def test_unknown_model_id_is_bedrocks_invalid_identifier(client, model_id):
    error = error_of(lambda: client.converse(modelId=model_id, messages=[user("Hi")]))
    assert error == {"status": 400, "Code": "ValidationException", "Message": INVALID_MODEL}
    with pytest.raises(client.exceptions.ValidationException):
        client.converse_stream(modelId=model_id, messages=[user("Hi")])


def test_request_ids_differ_per_response(server):
    ids = {raw_request(server.url, CONVERSE, b"[]").headers["x-amzn-RequestId"] for _ in range(3)}
    assert len(ids) == 3
