"""Who may use the admin API (`/_emulator/*`): no web page, and with `--admin-token`, only token holders.

A browser lets any page send "simple" cross-origin requests (no CORS preflight: a `text/plain` or form POST), and
DNS rebinding points a page's own host name at 127.0.0.1 (Ollama's CVE-2024-28224). So every admin call needs:

- a `Host` that is a loopback name (`localhost`, `*.localhost`, `127.0.0.0/8`, `[::1]`, any port) or one named by
  `--allow-host` (a CI service container's name, say); `*` turns this check off;
- no `Origin`, or an Origin on such a host (a page elsewhere is refused, and so is `Origin: null`);
- on writes, a JSON body (`Content-Type: application/json`) or none: `text/plain`, forms and untyped bodies are
  refused with 415, so no write can be a CORS-simple request;
- with a token set, `Authorization: Bearer <token>` (401 without it); the inspector page's static files
  (`/_emulator/ui`, `/_emulator/ui/*`) are the exception, as they hold no data.

`GET /_emulator/health` is exempt from all of this, so container and orchestrator health checks (which send the
pod's IP as Host) keep working; it reveals only whether the models are loaded.
Refusals are JSON `{"message": ...}` with an `x-amzn-ErrorType`, like every other error of the emulator.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from dataclasses import dataclass

from aiohttp import web
from yarl import URL

PREFIX = "/_emulator/"
OPEN = {("GET", "/_emulator/health"), ("HEAD", "/_emulator/health")}
# The inspector page's static files hold no data and a browser cannot add a header to a navigation, so they need
# no token (Host and Origin are still checked); the page sends the token on every data call it makes.
_STATIC_PAGE = "/_emulator/ui"
_READS = {"GET", "HEAD", "OPTIONS"}
_LOOPBACK_NAMES = {"localhost"}


@dataclass(frozen=True)
class AdminGuard:
    allowed_hosts: frozenset[str] = frozenset()  # lower-case names (or IP literals) besides the loopback ones
    token: str | None = None

    def host_allowed(self, host: str) -> bool:
        if "*" in self.allowed_hosts:
            return True
        name = host.lower().rstrip(".")
        if name in _LOOPBACK_NAMES or name.endswith(".localhost") or name in self.allowed_hosts:
            return True
        try:
            return ipaddress.ip_address(name.strip("[]")).is_loopback
        except ValueError:
            return False


ADMIN_GUARD = web.AppKey("admin_guard", AdminGuard)


def _refuse(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"message": message}).encode(),
                        headers={"Content-Type": "application/json", "x-amzn-ErrorType": code, **headers})


def _hostname(value: str) -> str | None:
    """The host part of a Host header value (`name`, `name:port`, `[v6]:port`), or None when malformed."""
    try:
        host = URL(f"http://{value}").raw_host
    except ValueError:
        return None
    return host or None


def check(guard: AdminGuard, request: web.Request) -> web.Response | None:
    """The refusal for an admin request that may not proceed, or None."""
    host = _hostname(request.headers.get("Host", ""))
    if host is None or not guard.host_allowed(host):
        shown = request.headers.get("Host", "")[:100]
        return _refuse(403, "AccessDeniedException",
                       f"The admin API answers only requests addressed to a loopback host name; Host '{shown}' is "
                       "not one. Start the emulator with --allow-host NAME (or BEDROCK_EMULATOR_ALLOW_HOSTS) to "
                       "allow another name.")
    origin = request.headers.get("Origin")
    if origin is not None:
        origin_host = None
        try:
            parsed = URL(origin)
            if parsed.scheme in ("http", "https"):
                origin_host = parsed.raw_host
        except ValueError:
            pass
        if not origin_host or not guard.host_allowed(origin_host):
            return _refuse(403, "AccessDeniedException",
                           f"The admin API does not answer web pages from other origins; Origin '{origin[:100]}' is "
                           "refused.")
    if request.method not in _READS and request.body_exists:
        content_type = request.headers.get("Content-Type")
        if content_type is None or request.content_type != "application/json":
            return _refuse(415, "UnsupportedMediaTypeException",
                           "Admin requests with a body must send it as JSON with Content-Type: application/json; "
                           f"got {content_type[:100]!r}." if content_type else
                           "Admin requests with a body must send it as JSON with Content-Type: application/json.")
    static_page = request.method in _READS and (request.path == _STATIC_PAGE or request.path.startswith(_STATIC_PAGE + "/"))
    if guard.token is not None and not static_page:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), guard.token.encode()):
            return _refuse(401, "UnrecognizedClientException",
                           "The admin API needs the emulator's admin token: send Authorization: Bearer <token> "
                           "(EmulatorAdmin and the pytest plugin read BEDROCK_EMULATOR_ADMIN_TOKEN).",
                           **{"WWW-Authenticate": 'Bearer realm="bedrock-emulator admin"'})
    return None


@web.middleware
async def guard_admin_api(request: web.Request, handler) -> web.StreamResponse:
    guard = request.app.get(ADMIN_GUARD)
    if guard is not None and request.path.startswith(PREFIX) and (request.method, request.path) not in OPEN:
        refusal = check(guard, request)
        if refusal is not None:
            return refusal
    return await handler(request)
