"""`--auth-keys`: SigV4 and Bedrock API key (bearer) verification, with AWS's own codes and wording.

Real clients sign real requests (boto3, the Anthropic SDK, botocore's signer for hand-built ones); the server
recomputes each signature with botocore over what it received.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
from datetime import datetime, timedelta, timezone

import boto3
import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from conftest import HAIKU, raw_request, user
from sibling_server import sibling

from emulator.admin_client import EmulatorAdmin
from emulator.app import Settings
from emulator.protocol.access import AccessConfig
from emulator.protocol.auth import AuthKeys, AuthKeysError

KEY, SECRET = "AKIDEMULATORTEST", "emulator-secret/with+chars"
SESSION_KEY, SESSION_SECRET, SESSION_TOKEN = "ASIAEMULATORTEST", "session-secret", "FwoGZXIvYXdzEXAMPLEtoken"
ANY_REGION_KEY = "AKIDANYREGION"
BEARER = "ABSKZW11bGF0b3ItdGVzdC1rZXk="
KEYS = f"""
[ci]
aws_access_key_id = {KEY}
aws_secret_access_key = {SECRET}
region = us-east-1, eu-west-1
bearer_token = {BEARER}

[session]
aws_access_key_id = {SESSION_KEY}
aws_secret_access_key = {SESSION_SECRET}
aws_session_token = {SESSION_TOKEN}

[anywhere]
aws_access_key_id = {ANY_REGION_KEY}
aws_secret_access_key = {SECRET}
"""
MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your AWS Secret "
            "Access Key and signing method. Consult the service documentation for details.")
CONVERSE_PATH = f"/model/{urllib.parse.quote(HAIKU, safe='')}/converse"
BODY = json.dumps({"messages": [user("hi")]}).encode()


@pytest.fixture(scope="module")
def checked(server, tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys") / "credentials"
    keys.write_text(KEYS)
    with sibling(server, Settings(access=AccessConfig(auth_keys_path=keys))) as srv:
        yield srv


@pytest.fixture
def admin(checked):
    admin = EmulatorAdmin(checked.url)
    admin.reset()
    admin.script("Verified.")
    yield admin
    admin.reset()


@pytest.fixture(autouse=True)
def no_bearer_env(monkeypatch):
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)


def client(url, key=KEY, secret=SECRET, region="us-east-1", token=None, **config):
    return boto3.client("bedrock-runtime", endpoint_url=url, region_name=region, aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token,
                        config=Config(retries={"total_max_attempts": 1}, **config))


def refusal(call) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response
    return error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"], error["Error"]["Message"]


def converse(c):
    return c.converse(modelId=HAIKU, messages=[user("hi")])


def signed_headers(url: str, path: str, body: bytes, key=KEY, secret=SECRET, region="us-east-1",
                   service="bedrock", **extra: str) -> dict:
    """Headers of a request signed by botocore's own signer (as any botocore-based client would send them)."""
    request = AWSRequest("POST", url + path, data=body, headers={"Content-Type": "application/json", **extra})
    SigV4Auth(Credentials(key, secret), service, region).add_auth(request)
    return dict(request.headers.items())


def test_the_right_key_passes_and_the_call_is_answered(checked, admin):
    reply = converse(client(checked.url))
    assert reply["output"]["message"]["content"] == [{"text": "Verified."}]
    assert converse(client(checked.url, region="eu-west-1"))["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert converse(client(checked.url, key=ANY_REGION_KEY, region="ap-south-1"))["stopReason"] == "end_turn"
    assert len(admin.invocations()) == 3


def test_a_wrong_secret_is_an_invalid_signature_naming_the_expected_canonical_request(checked, admin, caplog):
    with caplog.at_level(logging.DEBUG, logger="botocore.auth"):
        status, code, message = refusal(lambda: converse(client(checked.url, secret="not-the-secret")))
    assert (status, code) == (403, "InvalidSignatureException")
    # The client's own canonical request (botocore logs it) is exactly what the server says it should have been.
    [client_canonical] = [r.args[0] for r in caplog.records if r.msg.startswith("CanonicalRequest")]
    [client_to_sign] = [r.args[0] for r in caplog.records if r.msg.startswith("StringToSign")]
    assert message == (f"{MISMATCH}\n\nThe Canonical String for this request should have been\n'{client_canonical}'"
                       f"\n\nThe String-to-Sign should have been\n'{client_to_sign}'\n")
    assert "\n/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse\n" in message  # AWS double-encodes
    assert admin.invocations() == []


def test_an_unknown_access_key_is_an_unrecognized_client(checked, admin):
    assert refusal(lambda: converse(client(checked.url, key="AKIDNOBODYHASTHIS"))) == (
        403, "UnrecognizedClientException", "The security token included in the request is invalid.")


def test_session_credentials_need_their_token(checked, admin):
    ok = client(checked.url, key=SESSION_KEY, secret=SESSION_SECRET, token=SESSION_TOKEN)
    assert converse(ok)["output"]["message"]["content"] == [{"text": "Verified."}]
    for token in (None, "another-token"):
        bad = client(checked.url, key=SESSION_KEY, secret=SESSION_SECRET, token=token)
        assert refusal(lambda: converse(bad))[1:] == (
            "UnrecognizedClientException", "The security token included in the request is invalid.")


@pytest.mark.parametrize("skew, words", [(-timedelta(minutes=10), ("Signature expired", "is now earlier than", "-")),
                                         (timedelta(minutes=10), ("Signature not yet current",
                                                                  "is still later than", "+"))])
def test_a_stale_or_future_date_is_refused_in_aws_format(checked, admin, monkeypatch, skew, words):
    signing_time = datetime.now(timezone.utc).replace(microsecond=0) + skew
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: signing_time.replace(tzinfo=None))
    status, code, message = refusal(lambda: converse(client(checked.url)))
    assert (status, code) == (403, "InvalidSignatureException")
    prefix, relation, sign = words
    found = re.fullmatch(rf"{prefix}: (\d{{8}}T\d{{6}}Z) {relation} (\d{{8}}T\d{{6}}Z) \((\d{{8}}T\d{{6}}Z) "
                         rf"\{sign} 5 min\.\)", message)
    assert found, message
    sent, bound, now = (datetime.strptime(v, "%Y%m%dT%H%M%SZ") for v in found.groups())
    assert sent == signing_time.replace(tzinfo=None)
    assert bound - now == (timedelta(minutes=5) if sign == "+" else -timedelta(minutes=5))
    assert abs(now - datetime.now(timezone.utc).replace(tzinfo=None)) < timedelta(minutes=1)


def test_a_wrong_region_is_refused(checked, admin):
    assert refusal(lambda: converse(client(checked.url, region="us-west-2"))) == (
        403, "InvalidSignatureException", "Credential should be scoped to a valid region, not 'us-west-2'. ")


def test_a_wrong_service_in_the_scope_is_refused(checked, admin):
    headers = signed_headers(checked.url, CONVERSE_PATH, BODY, service="bedrock-runtime")
    reply = raw_request(checked.url, CONVERSE_PATH, BODY, headers=headers)
    assert reply.status == 403
    assert reply.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert json.loads(reply.body) == {"message": "Credential should be scoped to correct service: 'bedrock'. "}


def test_a_request_without_credentials_gets_bedrocks_missing_header_answer(checked, admin):
    reply = raw_request(checked.url, CONVERSE_PATH, BODY)
    assert reply.status == 403
    assert reply.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert json.loads(reply.body) == {"Message": "Authorization header is missing"}  # capital M, as Bedrock sends
    from botocore import UNSIGNED

    assert refusal(lambda: converse(client(checked.url, signature_version=UNSIGNED))) == (
        403, "AccessDeniedException", "Authorization header is missing")


def test_an_incomplete_authorization_header_lists_what_is_missing(checked, admin):
    header = f"AWS4-HMAC-SHA256 Credential={KEY}/20261201/us-east-1/bedrock/aws4_request"
    reply = raw_request(checked.url, CONVERSE_PATH, BODY, headers={"Authorization": header})
    assert reply.status == 403
    assert reply.headers["x-amzn-ErrorType"] == "IncompleteSignatureException"
    assert json.loads(reply.body)["message"] == (
        "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' "
        "parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        f"Authorization={header}")
    headers = signed_headers(checked.url, CONVERSE_PATH, BODY)
    headers["Authorization"] = headers["Authorization"].replace(f"{KEY}/", f"{KEY}/x/", 1)
    reply = raw_request(checked.url, CONVERSE_PATH, BODY, headers=headers)
    assert json.loads(reply.body)["message"].startswith(
        f"Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{KEY}/x/")


def test_a_signed_payload_hash_header_is_checked_against_the_body(checked, admin):
    """The JS SDK signs x-amz-content-sha256; a body changed after signing must not pass."""
    import hashlib

    headers = signed_headers(checked.url, CONVERSE_PATH, BODY,
                             **{"X-Amz-Content-SHA256": hashlib.sha256(BODY).hexdigest()})
    assert "x-amz-content-sha256" in headers["Authorization"]
    assert raw_request(checked.url, CONVERSE_PATH, BODY, headers=headers).status == 200
    tampered = BODY.replace(b"hi", b"ho")
    reply = raw_request(checked.url, CONVERSE_PATH, tampered, headers=headers)
    assert (reply.status, reply.headers["x-amzn-ErrorType"]) == (403, "InvalidSignatureException")
    assert json.loads(reply.body) == {"message": MISMATCH}
    unsigned = signed_headers(checked.url, CONVERSE_PATH, BODY)  # payload hashed by the signer, no header
    assert raw_request(checked.url, CONVERSE_PATH, tampered, headers=unsigned).status == 403


def test_converse_stream_is_verified_too(checked, admin):
    events = list(client(checked.url).converse_stream(modelId=HAIKU, messages=[user("hi")])["stream"])
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "Verified."
    status, code, message = refusal(lambda: client(checked.url, secret="wrong").converse_stream(
        modelId=HAIKU, messages=[user("hi")]))
    assert (status, code) == (403, "InvalidSignatureException") and message.startswith(MISMATCH)
    body = json.dumps({"inputText": "hi"})
    stream = client(checked.url).invoke_model_with_response_stream(modelId="amazon.titan-text-express-v1", body=body)
    assert [json.loads(e["chunk"]["bytes"])["outputText"] for e in stream["body"]] != []
    assert refusal(lambda: client(checked.url, key="AKIDNOBODY").invoke_model_with_response_stream(
        modelId="amazon.titan-text-express-v1", body=body))[1] == "UnrecognizedClientException"


def test_the_anthropic_sdk_signs_and_passes(checked, admin):
    """Raw `:` in the path and a dozen signed x-stainless headers: the canonical request must match exactly."""
    from anthropic import AnthropicBedrock, PermissionDeniedError

    def ask(**credentials):
        claude = AnthropicBedrock(base_url=checked.url, aws_region="us-east-1", max_retries=0, **credentials)
        return claude.messages.create(model=HAIKU, max_tokens=10, messages=[{"role": "user", "content": "hi"}])

    assert ask(aws_access_key=KEY, aws_secret_key=SECRET).content[0].text == "Verified."
    with pytest.raises(PermissionDeniedError):
        ask(aws_access_key=KEY, aws_secret_key="wrong")
    assert ask(api_key=BEARER).content[0].text == "Verified."  # Bedrock API key: Authorization: Bearer, over http


def test_bearer_tokens_are_checked(checked, admin):
    reply = raw_request(checked.url, CONVERSE_PATH, BODY, headers={"Authorization": f"Bearer {BEARER}"})
    assert reply.status == 200
    assert json.loads(reply.body)["output"]["message"]["content"] == [{"text": "Verified."}]
    for token in ("ABSKwrong", BEARER + "x", ""):
        reply = raw_request(checked.url, CONVERSE_PATH, BODY, headers={"Authorization": f"Bearer {token}"})
        assert (reply.status, reply.headers["x-amzn-ErrorType"]) == (403, "AccessDeniedException")
        assert json.loads(reply.body) == {"Message": "Authentication failed: Please make sure your API Key is valid."}


def test_the_admin_api_and_health_do_not_need_aws_credentials(checked, admin):
    assert raw_request(checked.url, "/_emulator/health", method="GET").status == 200
    assert raw_request(checked.url, "/_emulator/rules", method="GET").status == 200


def test_without_a_keys_file_nothing_is_checked(server, bedrock_emulator):
    bedrock_emulator.script("Unchecked.")
    reply = raw_request(server.url, CONVERSE_PATH, BODY)
    assert reply.status == 200


@pytest.mark.parametrize("text, complaint", [
    ("[a]\naws_access_key_id = K\n", "profile [a] needs both aws_access_key_id and aws_secret_access_key"),
    ("[a]\nregion = us-east-1\n", "profile [a] has neither an access key pair nor a bearer_token"),
    ("[a]\nbearer_token = t\naws_secret = x\n", "profile [a] has unknown keys: aws_secret"),
    ("", "no profiles"),
    ("[a]\nbearer_token = t\n[b]\naws_access_key_id = K\naws_secret_access_key = s\n"
     "[c]\naws_access_key_id = K\naws_secret_access_key = s\n", "access key K appears in more than one profile"),
    ("not ini", "cannot read the auth keys file"),
])
def test_a_bad_keys_file_is_refused_naming_the_problem(tmp_path, text, complaint):
    path = tmp_path / "keys"
    path.write_text(text)
    with pytest.raises(AuthKeysError, match=re.escape(complaint)):
        AuthKeys.load(path)


def test_a_signed_header_that_is_not_utf8_is_a_mismatch_not_a_500(checked, admin):
    headers = signed_headers(checked.url, CONVERSE_PATH, BODY, **{"X-Custom": "abc"})
    headers["X-Custom"] = "caf\xe9"  # sent as one latin-1 byte, not UTF-8
    reply = raw_request(checked.url, CONVERSE_PATH, BODY, headers=headers)
    assert (reply.status, reply.headers.get("x-amzn-ErrorType")) == (403, "InvalidSignatureException")
