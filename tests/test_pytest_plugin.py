"""The pytest plugin, exercised the way users meet it: pytest runs test files that only use its fixtures.

Each inner run is a separate pytest process (pytester), so the plugin loads through its `pytest11` entry point,
exactly as in a user's project.
"""

from __future__ import annotations

import re
from pathlib import Path

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    """The README's complete example test (the python block that starts with `# test_weather_bot.py`)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    [example] = [block for block in blocks if block.startswith("# test_weather_bot.py")]
    return example


def test_the_readme_example_passes_against_an_in_process_emulator(pytester):
    """A fresh session: the plugin starts its own emulator, once, and resets it around every test."""
    pytester.makepyfile(test_weather_bot=readme_example())
    (pytester.path / "rules").mkdir()
    (pytester.path / "rules" / "canned.yaml").write_text(
        "rules:\n  - match: {contains: canned}\n    respond: {text: from the rule file}\n")
    pytester.makeini("[pytest]\nbedrock_emulator_fixtures = rules\n")
    pytester.makepyfile(test_plugin_state='''
        from pathlib import Path

        import boto3

        SERVERS = set()
        MODEL = "anthropic.claude-3-haiku-20240307-v1:0"

        def test_one_server_per_session_first(bedrock_emulator):
            SERVERS.add(bedrock_emulator.url)
            bedrock_emulator.script("leftover")
            bedrock_emulator.fail("ThrottlingException")

        def test_one_server_per_session_second(bedrock_emulator):
            SERVERS.add(bedrock_emulator.url)
            assert len(SERVERS) == 1

        def test_nothing_leaks_between_tests(bedrock_emulator):
            assert bedrock_emulator.faults() == []
            assert [Path(rule["source"]).name for rule in bedrock_emulator.rules()] == ["canned.yaml"]
            assert bedrock_emulator.invocations() == []

        def test_ini_fixtures_and_env_redirection(bedrock_env, bedrock_emulator):
            client = boto3.client("bedrock-runtime")  # no endpoint in code: the environment points it at us
            reply = client.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "canned please"}]}])
            assert reply["output"]["message"]["content"] == [{"text": "from the rule file"}]
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=600)
    result.assert_outcomes(passed=7)


def test_the_plugin_can_use_an_emulator_that_is_already_running(pytester, server):
    pytester.makepyfile(test_weather_bot=readme_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--bedrock-emulator-url={server.url}",
                                           timeout=300)
    result.assert_outcomes(passed=3)


def test_a_bad_rule_file_is_a_usage_error_naming_the_problem(pytester):
    (pytester.path / "rules").mkdir()
    (pytester.path / "rules" / "bad.yaml").write_text("rules:\n  - respond: {text: hi, pace_ms: -1}\n")
    pytester.makeini("[pytest]\nbedrock_emulator_fixtures = rules\n")
    pytester.makepyfile("def test_uses_it(bedrock_client):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*bad.yaml: rules.0.respond.pace_ms: Input should be greater than or equal to 0*"])
