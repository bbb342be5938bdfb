"""The inspector page in a real browser: Debian's chromium, headless, driven by Playwright (no browser download).

Calls made with boto3 must appear in the list without a reload; a streamed call opens as a timeline of its events;
a filter narrows the list; "Copy as rule" gives a rule the admin API accepts; the log is cleared from the page.
A screenshot is left in `test-artifacts/inspector.png`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from emulator.admin_client import EmulatorAdmin

from conftest import HAIKU, make_client, user

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
WAIT_MS = 20_000


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no chromium on PATH (scripts/test installs Debian's `chromium` when it runs as root with apt)")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def admin(server):
    admin = EmulatorAdmin(server.url)
    admin.reset()
    yield admin
    admin.reset()


@pytest.fixture
def page(browser, server, admin):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.url + "/_emulator/ui")
    page.wait_for_selector("#empty:not(.hidden)", timeout=WAIT_MS)
    yield page
    context.close()
    assert errors == [], f"the page's scripts failed: {errors}"


def expect_rows(page, count: int) -> None:
    """Wait until the list shows `count` calls (with no reload: the page polls the log by itself)."""
    from playwright.sync_api import expect

    expect(page.locator("#calls tbody tr")).to_have_count(count, timeout=WAIT_MS)


def rows(page) -> list[list[str]]:
    return page.eval_on_selector_all(
        "#calls tbody tr", "trs => trs.map(tr => [...tr.children].map(td => td.textContent))")


def test_calls_appear_live_and_a_stream_opens_as_a_timeline(page, server, client, admin):
    admin.script("Bonjour de Paris.", contains="scripted hello", name="hello")
    client.converse(modelId=HAIKU, messages=[user("scripted hello")])
    expect_rows(page, 1)
    first = rows(page)[0]
    assert first[2] == "Converse" and first[3] == HAIKU and first[4] == "200" and "rule hello" in first[7]

    streamed = list(client.converse_stream(modelId=HAIKU, messages=[user("Name three colours.")],
                                           inferenceConfig={"maxTokens": 12, "temperature": 0})["stream"])
    expect_rows(page, 2)
    newest = rows(page)[0]  # newest first
    assert newest[2] == "ConverseStream"

    page.click("#calls tbody tr:first-child")
    page.wait_for_selector("#timeline-chart polyline.pace")
    events = page.eval_on_selector_all(".events tbody tr", "trs => trs.map(tr => tr.children[1].textContent)")
    assert events == [next(iter(event)) for event in streamed]  # messageStart ... metadata, in order
    logged = admin.invocations()[-1]
    offsets = page.eval_on_selector_all(".events tbody tr", "trs => trs.map(tr => Number(tr.children[0].textContent))")
    assert offsets == logged["frameOffsetsMs"] and offsets == sorted(offsets)
    assert page.locator("#timeline-chart .first-byte").count() == 1
    assert f"first byte {logged['firstByteMs']} ms" in page.text_content("#timeline-chart")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "inspector.png"))


def test_an_in_stream_exception_is_marked_on_the_timeline(page, client, admin):
    admin.script("one two three four five six", pace_ms=5, name="paced")
    admin.fail("ModelStreamErrorException", count=1, operation="ConverseStream", after_events=2)
    with pytest.raises(Exception):
        list(client.converse_stream(modelId=HAIKU, messages=[user("go")])["stream"])
    expect_rows(page, 1)
    assert "(in stream)" in rows(page)[0][4]
    page.click("#calls tbody tr:first-child")
    page.wait_for_selector("#timeline-chart .exception-mark")
    assert page.eval_on_selector_all(".events tr.exception", "trs => trs.length") == 1


def test_filters_copy_as_rule_and_clear_from_the_page(page, server, client, admin):
    admin.script("Scripted answer.", contains="filter me", name="filtered")
    client.converse(modelId=HAIKU, messages=[user("filter me")])
    client.count_tokens(modelId=HAIKU, input={"converse": {"messages": [user("count me")]}})
    expect_rows(page, 2)

    page.select_option("#f-operation", "CountTokens")
    assert [row[2] for row in rows(page)] == ["CountTokens"]
    page.select_option("#f-operation", "")
    page.fill("#f-text", "filter me")
    assert [row[2] for row in rows(page)] == ["Converse"]

    page.click("#calls tbody tr:first-child")
    page.click("#copy-rule")
    rule = json.loads(page.text_content("#copied"))
    assert rule["match"] == {"model": HAIKU, "contains": "filter me"}
    assert rule["respond"]["text"] == "Scripted answer."
    # The copied rule is one the admin API takes, and it answers the same call the same way.
    admin.reset()
    admin.add_rules([rule])
    again = client.converse(modelId=HAIKU, messages=[user("filter me")])
    assert again["output"]["message"]["content"][0]["text"] == "Scripted answer."

    page.click("#clear-log")
    expect_rows(page, 0)
    assert admin.invocations() == []


def test_with_an_admin_token_the_page_sends_it(browser, server):
    """With --admin-token the page loads without it (static files hold no data) and reads the log with it."""
    from emulator.app import Settings
    from emulator.protocol.access import AccessConfig
    from sibling_server import sibling

    with sibling(server, Settings(access=AccessConfig(admin_token="s3cret"))) as srv:
        context = browser.new_context()
        page = context.new_page()
        asked: list[str] = []

        def answer(dialog):  # no token in the URL: the page asks for it when the API says 401
            asked.append(dialog.message)
            dialog.accept("s3cret")

        page.on("dialog", answer)
        page.goto(srv.url + "/_emulator/ui")
        EmulatorAdmin(srv.url, token="s3cret").script("Tokened.", contains="with token")
        make_client(srv.url).converse(modelId=HAIKU, messages=[user("with token")])
        expect_rows(page, 1)
        assert asked and "admin token" in asked[0]
        assert rows(page)[0][2] == "Converse"
        context.close()
