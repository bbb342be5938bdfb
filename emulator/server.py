"""Running the emulator: in the foreground (the CLI) or on a background thread (tests, the pytest plugin)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import urllib.request

from aiohttp import web

from .app import Settings, build_app

log = logging.getLogger("emulator")


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    # handler_cancellation: a client that disconnects cancels its handler, which stops its generation.
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # the real port when 0 was asked for
    return runner, bound


class BackgroundServer:
    """An emulator on its own event loop thread, bound to a free loopback port by default."""

    def __init__(self, settings: Settings | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.settings = settings or Settings()
        self.host = host
        self.port = port
        self.app: web.Application | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emulator-server", daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, wait_ready: float | None = 600.0) -> "BackgroundServer":
        self._thread.start()

        async def boot() -> None:
            try:
                self.app = build_app(self.settings)
            except SystemExit as exc:  # a bad catalog or rule file: SystemExit would kill the loop thread silently
                raise RuntimeError(str(exc)) from None
            self._runner, self.port = await start_site(self.app, self.host, self.port)

        asyncio.run_coroutine_threadsafe(boot(), self._loop).result()
        if wait_ready:
            self.wait_ready(wait_ready)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/_emulator/health", timeout=5) as reply:
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
