"""One port, every transport: each connection's first bytes choose one of `transports.TRANSPORTS` or HTTP/1.1.

`EdgeSite` is an aiohttp `TCPSite` whose connections start with `_Sniffer`. A connection that opens with a
transport's preface (HTTP/2's: h2c with prior knowledge, or TLS after ALPN chose `h2`) is handed to that
transport's connection; anything else to aiohttp's own HTTP/1.1 `RequestHandler`, exactly as a plain `TCPSite`
would. Stopping the site sends each transport connection its GOAWAY; `drain()` (called from the runner's shutdown)
waits for their open streams.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import Counter

from aiohttp import web

from .transports import TRANSPORTS, Connection, Transport

log = logging.getLogger("emulator.http2")

SNIFF_TIMEOUT = 30.0  # a connection that sends too few bytes to tell its protocol in this time is closed


class _Sniffer(asyncio.Protocol):
    def __init__(self, site: "EdgeSite") -> None:
        self._site = site
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._timer = asyncio.get_running_loop().call_later(SNIFF_TIMEOUT, transport.close)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        for transport in TRANSPORTS:
            if self._buffer.startswith(transport.preface):
                self._hand_over(self._site.open(transport))
                return
        if not any(t.preface.startswith(self._buffer) for t in TRANSPORTS):  # no preface can follow: HTTP/1.1
            self._hand_over(self._site.http1_protocol())

    def eof_received(self) -> bool | None:
        return None  # closed before saying anything: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _hand_over(self, protocol) -> None:
        assert self._transport is not None
        if self._timer is not None:
            self._timer.cancel()
        self._transport.set_protocol(protocol)
        protocol.connection_made(self._transport)
        buffered, self._buffer = self._buffer, b""
        protocol.data_received(buffered)


class EdgeSite(web.TCPSite):
    """A TCP site serving HTTP/1.1 and every transport (HTTP/2) on one port, with TLS when given an `ssl_context`."""

    def __init__(self, runner: web.BaseRunner, host: str | None, port: int, ssl_context: ssl.SSLContext | None = None):
        super().__init__(runner, host, port, ssl_context=ssl_context)
        self.connections: set[Connection] = set()  # open connections of the transports (HTTP/1.1 is aiohttp's)
        self.opened: Counter[str] = Counter()  # transport connections served so far, by ALPN id (tests read it)
        if isinstance(runner, EdgeRunner):
            runner.edge_sites.append(self)

    def http1_protocol(self) -> asyncio.Protocol:
        server = self._runner.server
        assert server is not None
        return server()  # aiohttp's RequestHandler, as TCPSite would have made it

    def open(self, transport: Transport) -> Connection:
        server = self._runner.server
        assert server is not None
        connection = transport.connect(server, self.connections.discard)
        self.connections.add(connection)
        self.opened[transport.alpn] += 1
        return connection

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Sniffer(self), self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port

    async def stop(self) -> None:
        for connection in list(self.connections):
            connection.goaway()
        await super().stop()

    async def drain(self, timeout: float) -> None:
        """Wait up to `timeout` for the transports' open streams to finish, then cancel the rest and close."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(c.streams for c in self.connections) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection.abort()


class EdgeRunner(web.AppRunner):
    """An AppRunner whose shutdown also lets the transports' streams of its `EdgeSite`s finish (as aiohttp does for
    HTTP/1.1 requests), after the app's on_shutdown hooks have run."""

    def __init__(self, app: web.Application, **kwargs) -> None:
        super().__init__(app, **kwargs)
        self.edge_sites: list[EdgeSite] = []

    async def shutdown(self) -> None:
        await super().shutdown()
        for site in self.edge_sites:
            await site.drain(self._shutdown_timeout)
