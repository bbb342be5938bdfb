"""pytest: the `bedrock_cassette` fixture and marker. A test's Bedrock calls are recorded on its first run and
replayed offline after (loaded by `emulator.pytest_plugin`).

    @pytest.mark.bedrock_cassette                  # or request the `bedrock_cassette` fixture (the directory)
    def test_summary(bedrock_client): ...

Cassettes live in `<ini bedrock_emulator_cassettes, default "cassettes">/<test module>/<test name>/`, or under the
marker's name: `@pytest.mark.bedrock_cassette("shared/summary")`. `--bedrock-record` says what to do:
`none` (default: replay; a test without cassettes is skipped, saying how to record them), `new` (record the tests
that have no cassettes yet, replay the others), `missing` (replay, and record the calls no cassette matches),
`all` (record everything again). Recording needs AWS credentials where the emulator runs (botocore's chain, or
AWS_BEARER_TOKEN_BEDROCK) and forwards to `--bedrock-upstream URL` (default: Bedrock in the request's region).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

RECORD_MODES = ("none", "new", "missing", "all")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bedrock-emulator")
    group.addoption("--bedrock-record", choices=RECORD_MODES, default="none",
                    help="bedrock_cassette tests: none (replay only, default), new (record tests without cassettes), "
                         "missing (record unmatched calls), all (record again)")
    group.addoption("--bedrock-upstream", default=None, metavar="URL",
                    help="where recording forwards calls (default: the Bedrock endpoint of each request's region)")
    parser.addini("bedrock_emulator_cassettes", default="cassettes",
                  help="directory of bedrock_cassette recordings (relative to the rootdir)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bedrock_cassette(name=None): record this test's Bedrock calls once, "
                                       "then replay them (see --bedrock-record)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:  # the marker alone is enough: it brings the fixture
        if item.get_closest_marker("bedrock_cassette") and "bedrock_cassette" not in getattr(item, "fixturenames", ()):
            item.fixturenames.append("bedrock_cassette")


def _directory(request: pytest.FixtureRequest) -> Path:
    root = Path(request.config.getini("bedrock_emulator_cassettes") or "cassettes")
    if not root.is_absolute():
        root = Path(request.config.rootpath) / root
    marker = request.node.get_closest_marker("bedrock_cassette")
    name = marker.args[0] if marker and marker.args else marker.kwargs.get("name") if marker else None
    if name:
        return root / name
    test = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")
    return root / request.node.path.stem / test


def _credentials_present() -> bool:
    if os.environ.get("AWS_BEARER_TOKEN_BEDROCK"):
        return True
    import botocore.session

    return botocore.session.Session().get_credentials() is not None


@pytest.fixture
def bedrock_cassette(request: pytest.FixtureRequest, bedrock_emulator) -> Path:
    """This test's cassette directory; the emulator records into it or replays from it for the test's duration."""
    directory = _directory(request)
    option = request.config.getoption("--bedrock-record")
    recorded = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    if option == "all":
        mode = "record"
        for path in recorded:
            path.unlink()
    elif option == "missing":
        mode = "record-missing"
    elif option == "new" and not recorded:
        mode = "record"
    elif recorded:
        mode = "replay"
    else:
        pytest.skip(f"no cassettes in {directory}: run once with --bedrock-record=new and AWS credentials to record them")
    if mode != "replay" and not _credentials_present():
        pytest.skip("recording Bedrock calls needs AWS credentials (environment, profile, SSO, role or "
                    "AWS_BEARER_TOKEN_BEDROCK)")
    before = bedrock_emulator.recording()
    bedrock_emulator.set_recording(mode, directory.resolve(), upstream=request.config.getoption("--bedrock-upstream"))
    yield directory
    bedrock_emulator.set_recording(before["mode"], before["directory"], upstream=before["upstream"],
                                   speed=before["speed"], ignore=before["ignore"], redact=before["redact"])
