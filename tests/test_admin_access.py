"""Who may use the admin API: loopback Hosts, no foreign Origins, JSON-only writes, the admin token.

Each refusal is checked over a real socket with the exact request a web page (or DNS rebinding) would send.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse

import pytest
from conftest import HAIKU, RawReply, make_client, user
from sibling_server import sibling

from emulator.admin_client import AdminError, EmulatorAdmin
from emulator.app import Settings
from emulator.protocol.access import AccessConfig

pytest_plugins = ["pytester"]

RULE = json.dumps({"match": {"contains": "weather"}, "respond": {"text": "Scripted by a web page."}}).encode()
TOKEN = "admin-token-for-tests"


def admin_call(url: str, path: str, method: str = "GET", body: bytes | None = None, **headers: str) -> RawReply:
    """One admin request with exactly these headers (http.client adds only Host, unless given, and Content-Length)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request(method, "/_emulator" + path, body=body, headers=headers)
        reply = conn.getresponse()
        return RawReply(reply.status, reply.headers, reply.read())
    finally:
        conn.close()


def assert_refused(reply, status: int, code: str, *words: str) -> None:
    assert reply.status == status, reply.body
    assert reply.headers["x-amzn-ErrorType"] == code
    assert reply.headers["Content-Type"] == "application/json"
    message = json.loads(reply.body)["message"]
    for word in words:
        assert word in message


@pytest.fixture
def admin(bedrock_emulator):
    return bedrock_emulator


def test_a_text_plain_post_from_a_foreign_page_cannot_script_an_answer(server, admin):
    """The request a page on another site can send with no CORS preflight."""
    reply = admin_call(server.url, "/rules", "POST", RULE, **{"Content-Type": "text/plain;charset=UTF-8",
                                                             "Origin": "http://evil.example"})
    assert_refused(reply, 403, "AccessDeniedException", "Origin 'http://evil.example' is refused")
    assert admin.rules() == []
    reply = make_client(server.url).converse(modelId=HAIKU, messages=[user("What is the weather?")],
                                             inferenceConfig={"maxTokens": 5})
    assert reply["output"]["message"]["content"][0]["text"] != "Scripted by a web page."


def test_a_foreign_origin_is_refused_even_on_reads_and_resets(server, admin):
    admin.script("kept")
    for method, path in (("GET", "/invocations"), ("POST", "/reset"), ("DELETE", "/rules")):
        reply = admin_call(server.url, path, method, Origin="https://attacker.example:8443")
        assert_refused(reply, 403, "AccessDeniedException", "other origins")
    reply = admin_call(server.url, "/invocations", Origin="null")  # sandboxed iframes, file:// pages
    assert_refused(reply, 403, "AccessDeniedException", "Origin 'null'")
    assert [r["respond"]["text"] for r in admin.rules()] == ["kept"]


def test_a_loopback_origin_is_allowed(server, admin):
    for origin in ("http://localhost:3000", "http://127.0.0.1:8599", "http://[::1]:5173"):
        assert admin_call(server.url, "/settings", Origin=origin).status == 200


def test_text_plain_and_form_bodies_are_refused_without_an_origin_too(server, admin):
    """No write can be a CORS-simple request, whatever sends it."""
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        reply = admin_call(server.url, "/rules", "POST", RULE, **{"Content-Type": content_type})
        assert_refused(reply, 415, "UnsupportedMediaTypeException", "Content-Type: application/json",
                       repr(content_type))
    reply = admin_call(server.url, "/faults", "POST", b'{"error": "ThrottlingException"}')  # an untyped body
    assert_refused(reply, 415, "UnsupportedMediaTypeException", "Content-Type: application/json")
    assert admin.rules() == [] and admin.faults() == []
    # JSON with a charset, and a write with no body at all (curl -X POST), are fine
    reply = admin_call(server.url, "/rules", "POST", RULE, **{"Content-Type": "application/json; charset=utf-8"})
    assert reply.status == 200
    assert admin_call(server.url, "/reset", "POST").status == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8599", "rebind.attacker.test:80", "10.0.0.5:8599"])
def test_a_foreign_host_cannot_read_the_invocation_log(server, admin, host):
    """DNS rebinding: the page's own name resolves to 127.0.0.1, so the Host header is the only tell."""
    admin.script("ok")
    make_client(server.url).converse(modelId=HAIKU, messages=[user("my secret prompt")])
    reply = admin_call(server.url, "/invocations", Host=host)
    assert_refused(reply, 403, "AccessDeniedException", f"Host '{host}' is not one", "--allow-host")
    assert b"secret" not in reply.body


@pytest.mark.parametrize("host", ["localhost", "localhost:8599", "127.0.0.1", "127.0.0.2:1", "[::1]:8599",
                                  "LOCALHOST", "app.localhost:3000"])
def test_loopback_hosts_are_answered(server, admin, host):
    assert admin_call(server.url, "/settings", Host=host).status == 200


def test_health_stays_open_for_health_checks(server):
    """Orchestrators probe with the pod's IP as Host; health shows only whether the models are loaded."""
    reply = admin_call(server.url, "/health", Host="10.1.2.3:8599", Origin="http://evil.example")
    assert reply.status == 200
    assert json.loads(reply.body)["status"] == "ok"


def test_allow_host_admits_a_service_name(server):
    settings = Settings(access=AccessConfig(allow_hosts=["bedrock", "Emulator.CI"]))
    with sibling(server, settings) as srv:
        assert admin_call(srv.url, "/settings", Host="bedrock:8599").status == 200
        assert admin_call(srv.url, "/settings", Host="emulator.ci").status == 200
        assert admin_call(srv.url, "/settings", Host="bedrock:8599", Origin="http://bedrock:3000").status == 200
        assert_refused(admin_call(srv.url, "/settings", Host="other:8599"), 403, "AccessDeniedException")
        assert admin_call(srv.url, "/settings", Host="localhost").status == 200


def test_allow_host_from_the_environment_and_the_wildcard(monkeypatch):
    monkeypatch.setenv("BEDROCK_EMULATOR_ALLOW_HOSTS", "bedrock, emulator ")
    assert AccessConfig.from_env(["cli-name"]).allow_hosts == ["cli-name", "bedrock", "emulator"]
    from emulator.protocol.admin_guard import AdminGuard

    assert AdminGuard(frozenset({"*"})).host_allowed("anything.example")
    assert not AdminGuard().host_allowed("anything.example")


@pytest.fixture(scope="module")
def guarded(server):
    with sibling(server, Settings(access=AccessConfig(admin_token=TOKEN))) as srv:
        yield srv


def test_the_admin_token_is_required_on_every_admin_call(guarded):
    for method, path in (("GET", "/invocations"), ("GET", "/rules"), ("POST", "/reset"), ("DELETE", "/faults")):
        reply = admin_call(guarded.url, path, method)
        assert_refused(reply, 401, "UnrecognizedClientException", "Authorization: Bearer <token>")
        assert reply.headers["WWW-Authenticate"] == 'Bearer realm="bedrock-emulator admin"'
    for wrong in ("Bearer nope", f"Bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}"):
        assert admin_call(guarded.url, "/rules", Authorization=wrong).status == 401
    assert admin_call(guarded.url, "/rules", Authorization=f"Bearer {TOKEN}").status == 200
    with pytest.raises(AdminError) as refused:
        EmulatorAdmin(guarded.url).rules()
    assert refused.value.status == 401
    # health needs no token
    assert admin_call(guarded.url, "/health").status == 200


def test_emulator_admin_passes_the_token_from_an_argument_or_the_environment(guarded, monkeypatch):
    admin = EmulatorAdmin(guarded.url, token=TOKEN)
    admin.script("Token holders may script.")
    assert [r["respond"]["text"] for r in admin.rules()] == ["Token holders may script."]
    reply = make_client(guarded.url).converse(modelId=HAIKU, messages=[user("hi")])
    assert reply["output"]["message"]["content"] == [{"text": "Token holders may script."}]
    monkeypatch.setenv("BEDROCK_EMULATOR_ADMIN_TOKEN", TOKEN)
    from_env = EmulatorAdmin(guarded.url)
    assert len(from_env.invocations()) == 1
    from_env.reset()
    assert from_env.rules() == []


def test_the_pytest_plugin_passes_the_token(pytester, guarded):
    pytester.makepyfile(test_uses_admin='''
        def test_script_and_read_back(bedrock_emulator, bedrock_client):
            bedrock_emulator.script("From a token-guarded emulator.")
            reply = bedrock_client.converse(modelId="anthropic.claude-3-haiku-20240307-v1:0",
                                            messages=[{"role": "user", "content": [{"text": "hi"}]}])
            assert reply["output"]["message"]["content"] == [{"text": "From a token-guarded emulator."}]
            assert len(bedrock_emulator.invocations()) == 1
    ''')
    args = ("-p", "no:cacheprovider", f"--bedrock-emulator-url={guarded.url}")
    pytester.runpytest_subprocess(*args, f"--bedrock-emulator-admin-token={TOKEN}", timeout=300).assert_outcomes(
        passed=1)
    refused = pytester.runpytest_subprocess(*args, timeout=300)
    refused.assert_outcomes(errors=1)
    refused.stdout.fnmatch_lines(["*AdminError: 401: The admin API needs the emulator's admin token*"])
