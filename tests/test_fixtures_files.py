"""Rule files loaded at start (`--fixtures DIR`): the repository's examples answer as they say, bad files are refused.

The server here has no local model at all: scripted answers need none, so it is healthy at once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from conftest import HAIKU, make_client, user

from emulator.admin_client import EmulatorAdmin
from emulator.app import Settings
from emulator.server import BackgroundServer
from emulator.testing import TestKitConfig

EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(scope="module")
def fixture_server(tmp_path_factory):
    catalog = tmp_path_factory.mktemp("fixture-server") / "catalog.yaml"
    catalog.write_text("models:\n  - {match: 'anthropic.*', family: anthropic}\n  - {match: 'amazon.nova-*', family: nova}\n")
    server = BackgroundServer(Settings(catalog_path=catalog, testing=TestKitConfig(fixtures_dir=EXAMPLES))).start()
    yield server
    server.stop()


@pytest.fixture
def admin(fixture_server):
    admin = EmulatorAdmin(fixture_server.url)
    admin.reset()
    yield admin
    admin.reset()


@pytest.fixture
def client(fixture_server):
    return make_client(fixture_server.url)


def test_file_rules_are_listed_with_their_source(admin):
    listed = {rule["name"]: rule["source"] for rule in admin.rules()}
    assert listed == {
        "throttled": str(EXAMPLES / "errors.yaml"),
        "model error": str(EXAMPLES / "errors.yaml"),
        "cut short": str(EXAMPLES / "errors.yaml"),
        "greeting": str(EXAMPLES / "greetings.json"),
        "weather tool call": str(EXAMPLES / "weather-agent.yaml"),
        "weather answer": str(EXAMPLES / "weather-agent.yaml"),
    }


def test_the_json_greeting_rule_answers_claude_but_not_nova(client, admin):
    reply = client.converse(modelId=HAIKU, messages=[user("Hello there")])
    assert reply["output"]["message"]["content"] == [{"text": "Hello! How can I help you today?"}]
    admin.update_settings(require_fixture_match=True)
    with pytest.raises(ClientError) as caught:
        client.converse(modelId="amazon.nova-micro-v1:0", messages=[user("Hello there")])
    assert "No scripted response rule matched" in caught.value.response["Error"]["Message"]


def test_the_error_rules_answer_with_modeled_exceptions(client):
    with pytest.raises(client.exceptions.ThrottlingException):
        client.converse(modelId=HAIKU, messages=[user("please [throttle me]")])
    with pytest.raises(client.exceptions.ModelErrorException) as caught:
        client.converse_stream(modelId=HAIKU, messages=[user("[model error] now")])
    assert caught.value.response["originalStatusCode"] == 500
    reply = client.converse(modelId=HAIKU, messages=[user("[max tokens]")])
    assert reply["stopReason"] == "max_tokens"


def test_run_time_rules_come_first_and_reset_restores_the_files(client, admin):
    admin.script("run-time rule wins", contains="Hello")
    assert client.converse(modelId=HAIKU, messages=[user("Hello")])["output"]["message"]["content"][0]["text"] \
        == "run-time rule wins"
    greeting = next(rule for rule in admin.rules() if rule.get("name") == "greeting")
    admin.remove_rule(greeting["id"])
    admin.clear_rules()  # run-time rules only
    assert "greeting" not in [rule.get("name") for rule in admin.rules()]
    admin.reset()
    assert [rule["id"] for rule in admin.rules() if rule.get("name") == "greeting"] == [greeting["id"]]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emulator", "--port", "0", *args],
                          capture_output=True, text=True, timeout=120)


def test_the_cli_refuses_a_bad_rule_file_and_says_why(tmp_path):
    (tmp_path / "good.yaml").write_text("rules:\n  - respond: {text: fine}\n")
    (tmp_path / "broken.yaml").write_text(
        "rules:\n  - match: {turn: 0}\n    respond: {text: hi, stop_reason: finished}\n"
    )
    result = run_cli("--fixtures", str(tmp_path))
    assert result.returncode != 0
    assert "invalid testing configuration" in result.stderr
    assert f"{tmp_path / 'broken.yaml'}: rules.0.match.turn: Input should be greater than or equal to 1" in result.stderr
    assert f"{tmp_path / 'broken.yaml'}: rules.0.respond.stop_reason: Input should be 'end_turn'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_weather_agent_example_is_a_tool_round_trip(client):
    tools = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]}
    history = [user("What's the weather in Paris?")]
    first = client.converse(modelId=HAIKU, messages=history, toolConfig=tools)
    assert first["stopReason"] == "tool_use"
    text, call = first["output"]["message"]["content"]
    assert text == {"text": "Let me look that up."}
    assert (call["toolUse"]["name"], call["toolUse"]["input"]) == ("get_weather", {"city": "Paris", "unit": "celsius"})
    assert first["usage"] == {"inputTokens": 42, "outputTokens": 18, "totalTokens": 60}
    history += [first["output"]["message"], {"role": "user", "content": [{"toolResult": {
        "toolUseId": call["toolUse"]["toolUseId"], "content": [{"text": "sunny, 21 °C"}]}}]}]
    second = client.converse(modelId=HAIKU, messages=history, toolConfig=tools)
    assert second["output"]["message"]["content"] == [{"text": "It is sunny in Paris, 21 °C."}]
    assert second["stopReason"] == "end_turn"
