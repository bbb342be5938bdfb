"""The inspector: a page at `/_emulator/ui` that shows the calls as they arrive, and Prometheus metrics.

The page is static (HTML, CSS, JS in `static/`, no build step, no CDN) and reads the admin API like any other
client: it polls `GET /_emulator/invocations?after=SEQ` and calls the rules, faults, rate-limits and settings
endpoints, so it is subject to the same access rules. Metrics come from the invocation log (see `metrics`).
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from ..service import SERVICE
from ..testing import TESTKIT
from .metrics import Metrics

METRICS = web.AppKey("metrics", Metrics)
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
_STATIC = resources.files(__package__) / "static"
# Read once at start: a handful of small files, and no path from a request ever reaches the filesystem.
_FILES = {item.name: item.read_bytes() for item in _STATIC.iterdir() if item.suffix in _TYPES}


def _file(name: str) -> web.Response:
    if name not in _FILES:
        raise web.HTTPNotFound(text="Not found.")
    return web.Response(body=_FILES[name], headers={
        "Content-Type": f"{_TYPES[name[name.rindex('.'):]]}; charset=utf-8",
        "Cache-Control": "no-cache",
        # Everything the page loads comes from this server: no inline scripts, no third parties.
        "Content-Security-Policy": "default-src 'self'; style-src 'self'; img-src 'self' data:",
        "X-Content-Type-Options": "nosniff",
    })


async def page(request: web.Request) -> web.Response:
    return _file("index.html")


async def asset(request: web.Request) -> web.Response:
    return _file(request.match_info["name"])


async def metrics(request: web.Request) -> web.Response:
    body, content_type = request.config_dict[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


def install(app: web.Application) -> None:
    """The metrics, fed by the invocation log (needs the test kit installed first)."""
    collected = app[METRICS] = Metrics(lambda: app[SERVICE].pool.text)
    app[TESTKIT].log.listeners.append(collected.observe)


def register(emulator: web.Application) -> None:
    """Add the page and /metrics to the `/_emulator` sub-app."""
    emulator.router.add_get("/ui", page)
    emulator.router.add_get("/ui/{name}", asset)
    emulator.router.add_get("/metrics", metrics)
