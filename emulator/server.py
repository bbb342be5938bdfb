"""Running the emulator: in the foreground (the CLI) or on a background thread (tests, the pytest plugin)."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import sys
import threading
import time
import urllib.request

from aiohttp import web

from .app import Settings, build_app
from .edge.site import EdgeRunner, EdgeSite
from .protocol import http1
from .service import SERVICE

log = logging.getLogger("emulator")

LOOP_ENV = "BEDROCK_EMULATOR_LOOP"  # `asyncio` turns uvloop off (to compare, or to debug with asyncio's own loop)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (not on Windows) and not turned off: the protocol path's loop overhead halves."""
    if os.environ.get(LOOP_ENV, "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(coro) -> object:
    """`asyncio.run` on `new_event_loop()`."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(coro)
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()


async def start_site(
    app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    """Serve `app` on one port: HTTP/1.1 and HTTP/2 (h2c, or ALPN under TLS when `ssl_context` is given)."""
    # Worker threads run user-sized Python work (guardrails, parsing, tokenising); with CPython's default 5 ms
    # switch interval the event loop waits up to that long for the GIL at every step of every request.
    sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
    # handler_cancellation: a client that disconnects cancels its handler, which stops its generation.
    # shutdown_timeout: what `cleanup` gives handlers still running after `graceful_stop` has drained the rest.
    runner = EdgeRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    http1.install(runner)  # HTTP/1.1: Bedrock-shaped parser errors, header read timeout
    await EdgeSite(runner, host, port, ssl_context).start()
    return runner, runner.addresses[0][1]  # the bound port (the real one when 0 was asked for)


DEFAULT_GRACE_S = 10.0
_DRAIN_S = 3.0  # after the grace period: time for ended streams to write their exception frame


async def graceful_stop(runner: web.AppRunner, grace: float = DEFAULT_GRACE_S, now: asyncio.Event | None = None) -> None:
    """Stop accepting; let requests and async jobs in flight finish within `grace` seconds (or until `now` is
    set); then end the generations still running with an error event, and clean up (async jobs are recorded)."""
    service = runner.app[SERVICE]
    service.shutdown.stopping = True  # new requests on open connections: ServiceUnavailableException
    for site in list(runner.sites):
        await site.stop()  # no new connections
    waiting = asyncio.ensure_future(now.wait()) if now is not None else None
    deadline = time.monotonic() + grace
    while service.shutdown.busy and time.monotonic() < deadline and not (waiting and waiting.done()):
        await asyncio.sleep(0.05)
    if service.shutdown.busy:
        log.info("ending %d request(s) and job(s) still running after the grace period", service.shutdown.busy)
    service.shutdown.end_generations()
    deadline = time.monotonic() + _DRAIN_S
    while service.shutdown.busy and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if waiting is not None:
        waiting.cancel()
    await runner.cleanup()


class BackgroundServer:
    """An emulator on its own event loop thread, bound to a free loopback port by default."""

    def __init__(
        self, settings: Settings | None = None, host: str = "127.0.0.1", port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.app: web.Application | None = None
        self._loop = new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emulator-server", daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"

    def start(self, wait_ready: float | None = 600.0) -> "BackgroundServer":
        self._thread.start()

        async def boot() -> None:
            try:
                self.app = build_app(self.settings)
            except SystemExit as exc:  # a bad catalog or rule file: SystemExit would kill the loop thread silently
                raise RuntimeError(str(exc)) from None
            self._runner, self.port = await start_site(self.app, self.host, self.port, self.ssl_context)

        asyncio.run_coroutine_threadsafe(boot(), self._loop).result()
        if wait_ready:
            self.wait_ready(wait_ready)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                # Our own server on loopback: its certificate (maybe the local CA's) needs no checking here.
                probe = ssl._create_unverified_context() if self.ssl_context else None
                with urllib.request.urlopen(self.url + "/_emulator/health", timeout=5, context=probe) as reply:
                    if reply.status == 200:
                        return
            except OSError as exc:
                if getattr(exc, "code", None) == 503 and b'"failed"' in exc.read():
                    raise RuntimeError("the emulator's models failed to load; see its log") from None
            time.sleep(0.1)
        raise TimeoutError(f"emulator at {self.url} was not healthy within {timeout}s")

    def run(self, coro) -> object:
        """Run a coroutine on the server's loop (e.g. to reach its state) and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
