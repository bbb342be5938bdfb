"""The transports served beside aiohttp's HTTP/1.1, each told apart by the bytes its connections open with.

A connection's first bytes choose its transport (`site._Sniffer`); under TLS, ALPN offers every transport's
protocol id before HTTP/1.1's. Adding a transport is a module in this folder whose connection class has the
`Connection` interface below, plus one entry in `TRANSPORTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from .http2 import PREFACE, H2Protocol

HTTP1_ALPN = "http/1.1"  # the fallback: every connection no transport claims is aiohttp's HTTP/1.1


class Connection(Protocol):
    """One client connection of a transport, as the site manages it."""

    streams: Sized  # requests in flight: a graceful stop waits for them

    def goaway(self) -> None:
        """Shutdown begins: refuse new requests, close once the open ones are done."""

    def abort(self) -> None:
        """The grace period is over: cancel what still runs and close."""


# (aiohttp's request handler, a callback for when the connection has closed) -> the connection (an asyncio protocol)
ConnectionFactory = Callable[[web.Server, Callable[[Connection], None]], Connection]


@dataclass(frozen=True)
class Transport:
    alpn: str  # its protocol id in TLS' ALPN
    preface: bytes  # what each connection opens with, in clear text and under TLS alike
    connect: ConnectionFactory


TRANSPORTS: tuple[Transport, ...] = (
    Transport("h2", PREFACE, lambda server, on_close: H2Protocol(server, on_close=on_close)),  # RFC 9113 3.4
)


def alpn_protocols() -> list[str]:
    return [*(t.alpn for t in TRANSPORTS), HTTP1_ALPN]
