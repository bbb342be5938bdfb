"""Record Bedrock traffic through the emulator, then replay it offline: boto3 and the JS SDK see the same bytes.

The upstream is a second emulator started with `--auth-keys` holding only the recorder's credentials (key, secret
and session token): the clients sign with other keys, so every accepted call proves the recorder re-signed it
with its own. The recorder and the replayer are emulators started with `--record` / `--replay` settings.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml
from botocore.eventstream import EventStream
from botocore.exceptions import EventStreamError

from conftest import HAIKU, make_client, raw_request, user
from jsnode import NodePackages, node_packages
from emulator.admin_client import AdminError, EmulatorAdmin
from emulator.app import Settings
from emulator.protocol.access import AccessConfig
from emulator.recording.mode import RecordingConfig
from emulator.server import BackgroundServer
from emulator.testing import TestKitConfig
from emulator.testing.rules import RuleBook

pytest_plugins = ["pytester"]

RECORDER_KEY = "AKIDRECORDERKEY00001"
RECORDER_SECRET = "recorder-secret-never-written"
RECORDER_TOKEN = "recorder-session-token-never-written"
CLIENT_KEY, CLIENT_SECRET = "AKIDEXAMPLE", "secret"  # what conftest.make_client signs with
JS_PACKAGES = ["@aws-sdk/client-bedrock-runtime@3.1163.0", "@smithy/node-http-handler@4.14.2"]

ANTHROPIC_BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 12,
                  "messages": [{"role": "user", "content": "Name a colour."}]}
# One call per recorded operation (params in the shape boto3 and the JS SDK share), and an error.
CALLS = [
    {"name": "converse", "op": "Converse",
     "params": {"modelId": HAIKU, "messages": [user("Say hello")], "inferenceConfig": {"maxTokens": 12}}},
    {"name": "converse_stream", "op": "ConverseStream",
     "params": {"modelId": HAIKU, "messages": [user("Count to three")], "inferenceConfig": {"maxTokens": 12}}},
    {"name": "invoke", "op": "InvokeModel", "params": {"modelId": HAIKU, "body": json.dumps(ANTHROPIC_BODY)}},
    {"name": "invoke_stream", "op": "InvokeModelWithResponseStream",
     "params": {"modelId": HAIKU, "body": json.dumps({**ANTHROPIC_BODY, "messages": [
         {"role": "user", "content": "Name a fruit."}]})}},
    {"name": "count_tokens", "op": "CountTokens",
     "params": {"modelId": HAIKU, "input": {"converse": {"messages": [user("How many tokens is this?")]}}}},
    {"name": "error", "op": "Converse", "params": {"modelId": "nonexistent.model-v1:0",
                                                    "messages": [user("Say hello")]}},
]
TOOLS = {"tools": [{"toolSpec": {"name": name, "description": f"{name} of a city",
                                 "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}},
                                                          "required": ["city"]}}}}
                   for name in ("get_weather", "get_time")]}
AGENT_RULES = [
    {"match": {"turn": 1, "contains": "Paris"}, "respond": {"tool_calls": [{"name": "get_weather", "input": {"city": "Paris"}}]}},
    {"match": {"turn": 2, "contains": "Paris"}, "respond": {"tool_calls": [{"name": "get_time", "input": {"city": "Paris"}}]}},
    {"match": {"turn": 3, "contains": "Paris"}, "respond": {"text": "Sunny, and it is noon in Paris."}},
]


# --- upstreams that accept only the recorder's credentials ----------------------------------------------

def keys_file(directory: Path) -> Path:
    path = directory / "auth-keys.ini"
    path.write_text(f"[recorder]\naws_access_key_id = {RECORDER_KEY}\naws_secret_access_key = {RECORDER_SECRET}\n"
                    f"aws_session_token = {RECORDER_TOKEN}\n")
    return path


def checked_upstream(directory: Path, replay: Path | None = None) -> BackgroundServer:
    """An emulator verifying SigV4 against the recorder's keys: the local model answers, or cassettes (`replay`)."""
    recording = RecordingConfig(mode="replay", directory=replay) if replay else RecordingConfig()
    return BackgroundServer(Settings(access=AccessConfig(auth_keys_path=keys_file(directory)),
                                     recording=recording)).start()


def calls_answered(upstream: BackgroundServer) -> list[dict]:
    return [e for e in EmulatorAdmin(upstream.url).invocations() if e["error"] is None or e["status"] < 403]


# --- driving calls the same way when recording and when replaying -------------------------------------

def plain(reply: dict) -> object:
    """A boto3 reply as comparable JSON: no ResponseMetadata, bodies read, streams as event lists."""
    reply = {k: v for k, v in reply.items() if k != "ResponseMetadata"}
    stream = reply.pop("stream", None) or (reply.pop("body") if isinstance(reply.get("body"), EventStream) else None)
    if stream is not None:
        events = []
        for event in stream:
            if "chunk" in event:
                event = {"chunk": {"bytes": event["chunk"]["bytes"].decode()}}
            events.append(event)
        reply["events"] = events
    if "body" in reply:
        reply["body"] = reply["body"].read().decode()
    return json.loads(json.dumps(reply, default=str))


def call_boto3(client, call: dict) -> dict:
    method = {"Converse": client.converse, "ConverseStream": client.converse_stream,
              "InvokeModel": client.invoke_model, "CountTokens": client.count_tokens,
              "InvokeModelWithResponseStream": client.invoke_model_with_response_stream}[call["op"]]
    try:
        return {"reply": plain(method(**call["params"]))}
    except client.exceptions.ClientError as error:
        return {"error": {"name": error.response["Error"]["Code"], "message": error.response["Error"]["Message"],
                          "status": error.response["ResponseMetadata"]["HTTPStatusCode"]}}


def agent_loop(client, ids: dict | None = None) -> list[dict]:
    """Three turns: two tool calls answered by local "tools", then the final answer. Returns each reply."""
    messages = [user("What is the weather and the time in Paris?")]
    replies = []
    for _ in range(3):
        reply = client.converse(modelId=HAIKU, messages=messages, toolConfig=TOOLS, inferenceConfig={"maxTokens": 64})
        replies.append(plain(reply))
        message = reply["output"]["message"]
        messages.append(message)
        uses = [block["toolUse"] for block in message["content"] if "toolUse" in block]
        if not uses:
            break
        messages.append({"role": "user", "content": [
            {"toolResult": {"toolUseId": (ids or {}).get(u["toolUseId"], u["toolUseId"]),
                            "content": [{"text": f"{u['name']} for {u['input']['city']}: ok"}]}} for u in uses]})
    return replies


@pytest.fixture(scope="module")
def js_sdk() -> NodePackages:
    """The JS SDK, installed once into its own cache folder (skipped only where node/npm cannot run)."""
    return node_packages("js-record", JS_PACKAGES)


@pytest.fixture(scope="module")
def recorder_credentials():
    """The recorder's own AWS credentials, from the environment (botocore's standard chain reads them)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", RECORDER_KEY)
        env.setenv("AWS_SECRET_ACCESS_KEY", RECORDER_SECRET)
        env.setenv("AWS_SESSION_TOKEN", RECORDER_TOKEN)
        for name in ("AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
            env.delenv(name, raising=False)
        env.setenv("AWS_CONFIG_FILE", "/nonexistent")  # no profile on this machine can interfere
        yield


@pytest.fixture(scope="module")
def recording(recorder_credentials, tmp_path_factory):
    """Record every call once through a recorder in front of a checking upstream, then stop both."""
    directory = tmp_path_factory.mktemp("cassettes")
    upstream = checked_upstream(tmp_path_factory.mktemp("upstream"))
    recorder = BackgroundServer(Settings(recording=RecordingConfig(
        mode="record", directory=directory, upstream=upstream.url))).start()
    try:
        client = make_client(recorder.url)
        results = {call["name"]: call_boto3(client, call) for call in CALLS}
        EmulatorAdmin(upstream.url).add_rules(AGENT_RULES)
        agent = agent_loop(client)
        direct = call_boto3(make_client(upstream.url), CALLS[0])  # the client's own keys, straight to the upstream
        answered = calls_answered(upstream)
        log = EmulatorAdmin(recorder.url).invocations()
    finally:
        recorder.stop()
        upstream.stop()
    return {"dir": directory, "results": results, "agent": agent, "direct": direct, "answered": answered, "log": log}


@pytest.fixture(scope="module")
def replayer(recording):
    srv = BackgroundServer(Settings(recording=RecordingConfig(mode="replay", directory=recording["dir"]))).start()
    yield srv
    srv.stop()


@pytest.fixture
def replay_admin(replayer):
    admin = EmulatorAdmin(replayer.url)
    admin.reset()
    yield admin
    admin.reset()


# --- recording --------------------------------------------------------------------------------------

def test_every_call_reached_the_upstream_re_signed_with_the_recorders_own_credentials(recording):
    assert recording["direct"]["error"] == {"name": "UnrecognizedClientException", "status": 403,
                                            "message": "The security token included in the request is invalid."}
    assert len(recording["answered"]) == len(CALLS) + 3  # six calls (one answered with an error) and three turns
    assert [e["operation"] for e in recording["answered"][:len(CALLS)]] == [c["op"] for c in CALLS]


def test_one_readable_cassette_per_exchange_named_by_operation_model_and_hash(recording):
    names = sorted(p.name for p in recording["dir"].iterdir())
    assert len(names) == 9
    for name in names:
        assert re.fullmatch(r"(Converse|ConverseStream|InvokeModel|InvokeModelWithResponseStream|CountTokens)_"
                            r"(anthropic\.claude-3-haiku-20240307-v1-0|nonexistent\.model-v1-0)_[0-9a-f]{8}\.yaml", name), name
    [stream] = [p for p in recording["dir"].glob("ConverseStream_*")]
    text = stream.read_text()
    assert "operation: ConverseStream" in text and "event: messageStart" in text and "offset_ms:" in text
    [chunks] = [p for p in recording["dir"].glob("InvokeModelWithResponseStream_*")]
    assert "event: chunk" in chunks.read_text() and "content_block_delta" in chunks.read_text()  # decoded chunk JSON


def test_no_credential_signature_or_token_is_written(recording):
    secrets = [RECORDER_KEY, RECORDER_SECRET, RECORDER_TOKEN, CLIENT_KEY, CLIENT_SECRET, "Signature=", "AWS4-HMAC",
               "Authorization", "X-Amz-Security-Token", "X-Amz-Date", "Credential="]
    for path in recording["dir"].iterdir():
        text = path.read_text().lower()
        assert not [s for s in secrets if s.lower() in text], path.name


def test_the_recorded_error_is_the_upstreams(recording):
    error = recording["results"]["error"]["error"]
    assert error == {"name": "ValidationException", "status": 400,
                     "message": "The provided model identifier is invalid."}


def test_the_recorders_invocation_log_has_every_forwarded_call(recording):
    log = recording["log"]
    assert [e["operation"] for e in log[:len(CALLS)]] == [c["op"] for c in CALLS]
    stream = log[1]
    assert stream["response"][0] == {"messageStart": {"role": "assistant"}}
    assert stream["inputTokens"] and stream["outputTokens"]


# --- replay -------------------------------------------------------------------------------------------

def test_boto3_replays_every_call_identically_with_the_upstream_gone(recording, replayer):
    client = make_client(replayer.url)
    for call in CALLS:
        assert call_boto3(client, call) == recording["results"][call["name"]], call["name"]


def test_replayed_streams_are_the_recorded_event_sequences(recording, replayer):
    recorded = recording["results"]["converse_stream"]["reply"]["events"]
    assert [next(iter(e)) for e in recorded][:2] == ["messageStart", "contentBlockDelta"]
    assert recorded[-1].keys() == {"metadata"}
    replayed = call_boto3(make_client(replayer.url), CALLS[1])["reply"]["events"]
    assert replayed == recorded


def test_the_js_sdk_replays_the_same_bodies_and_events(recording, replayer, js_sdk):
    results = {r["name"]: r for r in js_sdk.json_lines("replay.mjs", EP=replayer.url, CALLS=json.dumps(CALLS))}
    for call in CALLS:
        want, got = recording["results"][call["name"]], results[call["name"]]
        if "error" in want:
            assert got["error"] == want["error"]
        elif "events" in want["reply"]:
            assert got["events"] == want["reply"]["events"], call["name"]
        elif "body" in want["reply"]:
            assert (got["reply"]["body"], got["reply"]["contentType"]) == (want["reply"]["body"], want["reply"]["contentType"])
        else:
            assert got["reply"] == want["reply"], call["name"]


def test_an_agent_loop_of_three_turns_replays(recording, replayer):
    recorded = recording["agent"]
    assert [r["stopReason"] for r in recorded] == ["tool_use", "tool_use", "end_turn"]
    assert agent_loop(make_client(replayer.url)) == recorded


def test_tool_use_ids_are_ignored_when_matching(recording, replayer):
    """The client answers with other ids than the recording's (as a fresh run's model would produce): still a match."""
    first = recording["agent"][0]["output"]["message"]["content"]
    [use_id] = [b["toolUse"]["toolUseId"] for b in first if "toolUse" in b]
    replies = agent_loop(make_client(replayer.url), ids={use_id: "tooluse_someOtherId123"})
    assert [r["stopReason"] for r in replies] == ["tool_use", "tool_use", "end_turn"]


def test_an_unmatched_call_names_the_closest_cassette_and_the_difference(recording, replayer):
    client = make_client(replayer.url)
    with pytest.raises(client.exceptions.ValidationException) as caught:
        client.converse(modelId=HAIKU, messages=[user("Say hello!")], inferenceConfig={"maxTokens": 12})
    message = caught.value.response["Error"]["Message"]
    [cassette] = [p.name for p in recording["dir"].glob("Converse_*")
                  if "Say hello" in p.read_text() and "nonexistent" not in p.read_text()]
    assert message == (f"No recorded exchange matches this request (Converse, model {HAIKU}). The closest cassette is "
                       f"{cassette}, which differs in: messages[0].content[0].text: recorded 'Say hello', sent 'Say hello!'.")


def test_faults_rate_limits_and_the_invocation_log_apply_during_replay(replayer, replay_admin):
    client = make_client(replayer.url)
    replay_admin.fail("ThrottlingException", count=1)
    with pytest.raises(client.exceptions.ThrottlingException):
        client.converse(**CALLS[0]["params"])
    replay_admin.fail("modelStreamErrorException", after_events=1, count=1)
    seen = []
    with pytest.raises(EventStreamError) as caught:
        for event in client.converse_stream(**CALLS[1]["params"])["stream"]:
            seen.append(next(iter(event)))
    assert caught.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert seen == ["messageStart", "contentBlockDelta"]
    replay_admin.reset()
    replay_admin.set_rate_limits([{"model": "anthropic.*", "rpm": 1}])
    client.converse(**CALLS[0]["params"])
    with pytest.raises(client.exceptions.ThrottlingException):
        client.converse(**CALLS[0]["params"])
    [entry, throttled] = replay_admin.invocations()
    assert entry["scriptedRule"].startswith("Converse_") and entry["inputTokens"] and entry["outputTokens"]
    assert throttled["error"]["code"] == "ThrottlingException"


def test_replay_speed_one_keeps_the_recorded_pacing(recording, replayer, replay_admin):
    [path] = recording["dir"].glob("ConverseStream_*")
    last = yaml.safe_load(path.read_text())["response"]["events"][-1]["offset_ms"]
    replay_admin.set_recording("replay", recording["dir"], speed=1)
    try:
        started = time.monotonic()
        call_boto3(make_client(replayer.url), CALLS[1])
        paced = time.monotonic() - started
    finally:
        replay_admin.set_recording("replay", recording["dir"])
    started = time.monotonic()
    call_boto3(make_client(replayer.url), CALLS[1])
    instant = time.monotonic() - started
    assert paced >= last / 1000 * 0.9 and instant < paced


def test_cassettes_load_as_rule_files_with_the_same_matching(recording, tmp_path):
    [path] = [p for p in recording["dir"].glob("Converse_*") if "get_weather" in p.read_text()
              and "toolResult" not in p.read_text()]
    shutil.copy(path, tmp_path / path.name)
    (tmp_path / "scripted.yaml").write_text("rules:\n  - match: {contains: canned}\n    respond: {text: from a rule}\n")
    book = RuleBook(tmp_path)
    assert [Path(r["source"]).name for r in book.views()] == [path.name, "scripted.yaml"]
    srv = BackgroundServer(Settings(testing=TestKitConfig(fixtures_dir=tmp_path),
                                    recording=RecordingConfig(mode="replay", directory=tmp_path / "none"))).start()
    try:
        client = make_client(srv.url)
        reply = client.converse(modelId=HAIKU, messages=[user("What is the weather and the time in Paris?")],
                                toolConfig=TOOLS, inferenceConfig={"maxTokens": 64})
        assert plain(reply) == recording["agent"][0]
        # The admin API takes a cassette as it takes a rule.
        [stream] = recording["dir"].glob("ConverseStream_*")
        admin = EmulatorAdmin(srv.url)
        [added] = admin._call("POST", "/rules", yaml.safe_load(stream.read_text()))["rules"]
        assert (added["source"], added["match"]["operation"]) == ("api", ["ConverseStream"])
        assert call_boto3(client, CALLS[1]) == recording["results"]["converse_stream"]
    finally:
        srv.stop()


# --- the pytest plugin: record on the first run, replay after -----------------------------------------

INNER_TESTS = '''
import json

import pytest

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.mark.bedrock_cassette
def test_hello(bedrock_client):
    reply = bedrock_client.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Say hello"}]}],
                                    inferenceConfig={"maxTokens": 12})
    print("REPLY:", json.dumps(reply["output"]["message"]["content"][0]["text"]))  # one line, whatever the text


def test_named(bedrock_cassette, bedrock_client):
    assert bedrock_cassette.name == "test_named"
    bedrock_client.count_tokens(modelId=MODEL, input={"converse": {"messages": [
        {"role": "user", "content": [{"text": "How many tokens is this?"}]}]}})
'''


def test_the_bedrock_cassette_fixture_records_once_then_replays(recording, pytester, recorder_credentials, tmp_path):
    """The inner tests record through a plugin-driven emulator (upstream: a checking emulator replaying this
    module's recordings, standing in for Bedrock); with that upstream stopped, the second run replays."""
    pytester.makepyfile(test_inner=INNER_TESTS)
    upstream = checked_upstream(tmp_path, replay=recording["dir"])
    emulator = BackgroundServer(Settings(recording=RecordingConfig(mode="replay", directory=pytester.path / "none"))).start()
    args = ["-p", "no:cacheprovider", "-s", "-rs", "--bedrock-emulator-url", emulator.url]
    try:
        skipped = pytester.runpytest_subprocess(*args, timeout=300)
        skipped.assert_outcomes(skipped=2)
        skipped.stdout.fnmatch_lines(["*no cassettes in*test_hello: run once with --bedrock-record=new*"])
        first = pytester.runpytest_subprocess(*args, "--bedrock-record=new", "--bedrock-upstream", upstream.url,
                                              timeout=300)
        first.assert_outcomes(passed=2)
        assert [e["operation"] for e in calls_answered(upstream)] == ["Converse", "CountTokens"]
        upstream.stop()
        second = pytester.runpytest_subprocess(*args, timeout=300)
        second.assert_outcomes(passed=2)
        assert EmulatorAdmin(emulator.url).recording()["mode"] == "replay"  # each test's mode was undone
    finally:
        emulator.stop()
    replies = [line[line.index("REPLY:"):] for line in first.outlines + second.outlines if "REPLY:" in line]
    assert len(replies) == 2 and replies[0] == replies[1]
    want = recording["results"]["converse"]["reply"]["output"]["message"]["content"][0]["text"]
    assert replies[0] == f"REPLY: {json.dumps(want)}"
    cassettes = sorted(p.relative_to(pytester.path).as_posix() for p in (pytester.path / "cassettes").rglob("*.yaml"))
    assert [c.rsplit("_", 1)[0] for c in cassettes] == [
        "cassettes/test_inner/test_hello/Converse_anthropic.claude-3-haiku-20240307-v1-0",
        "cassettes/test_inner/test_named/CountTokens_anthropic.claude-3-haiku-20240307-v1-0"]


def test_record_missing_forwards_only_what_no_cassette_matches_and_redacts(recording, tmp_path):
    """The upstream answers from a cassette edited by hand (a system prompt and another reply): editing works too."""
    directory, edited = tmp_path / "cassettes", tmp_path / "edited"
    shutil.copytree(recording["dir"], directory)
    edited.mkdir()
    [source] = [p for p in recording["dir"].glob("Converse_*") if "Say hello" in p.read_text()
                and "nonexistent" not in p.read_text()]
    cassette = yaml.safe_load(source.read_text())
    cassette["request"]["body"]["system"] = [{"text": "the private system prompt"}]
    cassette["response"]["body"]["output"]["message"]["content"] = [{"text": "Hello from upstream"}]
    (edited / "hand-edited.yaml").write_text(yaml.safe_dump(cassette))
    upstream = checked_upstream(tmp_path, replay=edited)
    srv = BackgroundServer(Settings(recording=RecordingConfig(
        mode="record-missing", directory=directory, upstream=upstream.url, redact=["system"]))).start()
    try:
        client = make_client(srv.url)
        assert call_boto3(client, CALLS[0]) == recording["results"]["converse"]  # replayed: not forwarded
        assert calls_answered(upstream) == []
        new = {**CALLS[0]["params"], "system": [{"text": "the private system prompt"}]}
        first = plain(client.converse(**new))
        assert first["output"]["message"]["content"] == [{"text": "Hello from upstream"}]
        assert len(calls_answered(upstream)) == 1
        again = plain(client.converse(**{**new, "system": [{"text": "another private prompt"}]}))  # redacted: ignored
        assert len(calls_answered(upstream)) == 1 and again == first
    finally:
        srv.stop()
        upstream.stop()
    [written] = set(p.name for p in directory.iterdir()) - set(p.name for p in recording["dir"].iterdir())
    text = (directory / written).read_text()
    assert "private" not in text and "system: <redacted>" in text and "ignore: [system]" in text


def test_a_bearer_token_is_never_sent_over_plain_http(recorder_credentials, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-never-written")
    srv = BackgroundServer(Settings(recording=RecordingConfig(
        mode="record", directory=tmp_path, upstream="http://127.0.0.1:9"))).start()
    try:  # raw HTTP: boto3 itself would see the token in the environment and refuse plain HTTP first
        reply = raw_request(srv.url, f"/model/{HAIKU}/converse", json.dumps({"messages": [user("Say hello")]}).encode())
    finally:
        srv.stop()
    assert (reply.status, reply.headers["x-amzn-ErrorType"]) == (500, "InternalServerException")
    assert json.loads(reply.body) == {"message": "The emulator cannot forward to http://127.0.0.1:9: Invalid endpoint "
                                                 "configuration: Bearer authorization requires an HTTPS endpoint."}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("settings, problem", [
    ({"mode": "play"}, "`mode` is off, record, replay or record-missing"),
    ({"mode": "replay"}, "recording mode replay needs a cassette directory"),
    ({"mode": "off", "speed": -1}, "the replay speed is 0 (at once) or a positive factor"),
    ({"mode": "off", "upstream": "file:///etc"}, "the upstream is an http(s)://host[:port] URL, not 'file:///etc'"),
    ({"mode": "off", "ignore": "toolUseId"}, "`ignore` is a list of body keys"),
    ({"mode": "off", "speeds": 1}, "unknown field(s) speeds"),
])
def test_recording_settings_are_checked_and_a_refusal_changes_nothing(replayer, replay_admin, settings, problem):
    before = replay_admin.recording()
    with pytest.raises(AdminError) as caught:
        replay_admin._call("PUT", "/recording", settings)
    assert (caught.value.status, caught.value.message) == (400, f"Invalid recording settings: {problem}")
    assert replay_admin.recording() == before
