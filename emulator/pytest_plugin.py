"""pytest plugin (entry point `pytest11: bedrock_emulator`): a Bedrock Runtime emulator for your tests.

Fixtures:
- `bedrock_emulator`: an `EmulatorAdmin` for the emulator (`.url`, `.script()`, `.fail()`, `.slow()`,
  `.set_rate_limits()`, `.invocations()`, `.boto3_client()`), reset before and after each test so no rule,
  fault or log entry leaks from one test into the next.
- `bedrock_client`: a boto3 `bedrock-runtime` client pointed at it (dummy credentials, us-east-1, boto3's
  standard retries as in production).
- `bedrock_env`: sets `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` (and `_BEDROCK`), dummy credentials and region for the test, so code that
  builds its own client reaches the emulator unmodified.
- `bedrock_cassette` (also a marker): record the test's calls to real Bedrock once, replay them after
  (`emulator/recording/pytest_cassette.py`).
- `bedrock_emulator_server`: the server itself, started in-process on a free loopback port once per session
  (ini `bedrock_emulator_scope = module|package|function` to change that).

Options: `--bedrock-emulator-url URL` (or env `BEDROCK_EMULATOR_URL`) uses a running emulator instead of starting
one; `--bedrock-emulator-admin-token TOKEN` (or env `BEDROCK_EMULATOR_ADMIN_TOKEN`) is the admin token sent to it
(and required by the in-process one); ini `bedrock_emulator_fixtures = DIR` loads rule files at start; ini
`bedrock_emulator_require_fixture_match = true` answers unmatched requests with an error instead of the model.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .admin_client import EmulatorAdmin

pytest_plugins = ["emulator.recording.pytest_cassette"]  # bedrock_cassette: record once, replay after


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bedrock-emulator")
    group.addoption("--bedrock-emulator-url", default=None,
                    help="use the Bedrock emulator running at URL instead of starting one in-process")
    group.addoption("--bedrock-emulator-admin-token", default=None,
                    help="the emulator's admin token (default $BEDROCK_EMULATOR_ADMIN_TOKEN); an in-process "
                         "emulator is started requiring it")
    parser.addini("bedrock_emulator_scope", default="session",
                  help="how long one in-process emulator lives: session (default), package, module or function")
    parser.addini("bedrock_emulator_fixtures", default="",
                  help="directory of scripted-response rule files loaded when the emulator starts")
    parser.addini("bedrock_emulator_require_fixture_match", type="bool", default=False,
                  help="answer requests that no rule matches with an error instead of the model")


def _scope(fixture_name: str, config: pytest.Config) -> str:
    return config.getini("bedrock_emulator_scope") or "session"


def _admin_token(config: pytest.Config) -> str | None:
    return config.getoption("--bedrock-emulator-admin-token") or os.environ.get("BEDROCK_EMULATOR_ADMIN_TOKEN") or None


def _fixtures_dir(config: pytest.Config) -> Path | None:
    value = config.getini("bedrock_emulator_fixtures")
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else Path(config.rootpath) / path


@pytest.fixture(scope=_scope)
def bedrock_emulator_server(request: pytest.FixtureRequest):
    """The emulator's base URL: a running one if given, else one started in-process for this scope."""
    url = request.config.getoption("--bedrock-emulator-url") or os.environ.get("BEDROCK_EMULATOR_URL")
    if url:
        EmulatorAdmin(url).wait_ready(60)
        yield url
        return
    from .app import Settings  # imported here: loading the plugin must stay cheap for runs that never use it
    from .protocol.access import AccessConfig
    from .server import BackgroundServer
    from .testing import TestKitConfig
    from .testing.rules import RuleBook, RuleError

    fixtures = _fixtures_dir(request.config)
    try:
        RuleBook(fixtures)  # read the rule files here first: a bad one is a usage error naming the problem
    except RuleError as exc:
        raise pytest.UsageError(f"bedrock emulator: invalid rule file:\n{exc}") from None
    testing = TestKitConfig(fixtures_dir=fixtures,
                            require_fixture_match=request.config.getini("bedrock_emulator_require_fixture_match"))
    access = AccessConfig(admin_token=_admin_token(request.config))
    server = BackgroundServer(Settings(testing=testing, access=access)).start()
    yield server.url
    server.stop()


@pytest.fixture
def bedrock_emulator(bedrock_emulator_server: str, request: pytest.FixtureRequest):
    """Script responses, inject faults, read the invocation log; reset before and after each test."""
    admin = EmulatorAdmin(bedrock_emulator_server, token=_admin_token(request.config))
    admin.reset()
    yield admin
    admin.reset()  # also leaves a shared server clean for tests that do not use this fixture


@pytest.fixture
def bedrock_client(bedrock_emulator: EmulatorAdmin):
    """A boto3 bedrock-runtime client for the emulator (boto3's default retries)."""
    return bedrock_emulator.boto3_client()


@pytest.fixture
def bedrock_env(bedrock_emulator: EmulatorAdmin, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point code that builds its own AWS clients at the emulator, through the environment, for one test."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", bedrock_emulator.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK", bedrock_emulator.url)  # the control plane (CreateGuardrail, ...)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)  # botocore would insist on https for it
    return bedrock_emulator.url
