"""Forwarding one Bedrock Runtime call upstream, re-signed with this process's own credentials.

Credentials come from botocore's standard chain (environment, profile, SSO, container and instance roles) and
the request is signed by botocore's `SigV4Auth`; with `AWS_BEARER_TOKEN_BEDROCK` set, botocore's `BearerAuth`
sends that token instead (botocore allows it over HTTPS only). The client's own signature is dropped: it was
made for the emulator, with whatever keys the client had.

The reply is relayed as it arrives: an event stream chunk by chunk, byte for byte, while botocore's
`EventStreamBuffer` decodes a copy for the cassette.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

import aiohttp
import botocore.session
from aiohttp import web
from botocore.auth import BearerAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError
from botocore.tokens import FrozenAuthToken
from yarl import URL

from ..protocol.errors import BedrockError
from ..protocol.identity import DEFAULT_REGION, request_region
from ..protocol.streaming import STREAM_TAP
from .cassette import EVENT_STREAM, RecordedEvent, RecordedResponse, StreamDecoder, kept_headers, parsed

BEARER_ENV = "AWS_BEARER_TOKEN_BEDROCK"
_RELAYED = ("Content-Type", "x-amzn-ErrorType")  # plus every X-Amzn-Bedrock-* header (see cassette.kept_headers)


def default_endpoint(region: str) -> str:
    return f"https://bedrock-runtime.{region}.amazonaws.com"


@dataclass
class Forwarded:
    """What came back: the response already sent to the client, and its record for the cassette."""

    response: web.StreamResponse
    recorded: RecordedResponse
    upstream: str


class Upstream:
    def __init__(self, url: str | None = None) -> None:
        self.url = url.rstrip("/") if url else None
        self._botocore = botocore.session.Session()
        self._credentials = None
        self._client: aiohttp.ClientSession | None = None

    def region(self, request: web.Request) -> str:
        """The region the client signed for; for a bearer-token client, this process's own (AWS_REGION, profile)."""
        if "Credential=" in request.headers.get("Authorization", ""):
            return request_region(request)
        return self._botocore.get_config_variable("region") or DEFAULT_REGION

    def endpoint(self, request: web.Request) -> str:
        """`--upstream`, else the real endpoint of the request's region."""
        return self.url or default_endpoint(self.region(request))

    def _signed(self, method: str, url: str, body: bytes, headers: dict[str, str], region: str) -> dict[str, str]:
        """The headers to send, signed (runs in a thread: the credential chain may reach SSO or an instance role)."""
        aws = AWSRequest(method=method, url=url, data=body, headers=headers)
        token = os.environ.get(BEARER_ENV)
        if token:
            BearerAuth(FrozenAuthToken(token)).add_auth(aws)
        else:
            if self._credentials is None:
                self._credentials = self._botocore.get_credentials()
            if self._credentials is None:
                raise BedrockError("InternalServerException",
                                   "The emulator found no AWS credentials to forward this call with (environment, "
                                   f"profile, SSO or role), and {BEARER_ENV} is not set.")
            SigV4Auth(self._credentials.get_frozen_credentials(), "bedrock", region).add_auth(aws)
        return dict(aws.headers.items())

    def _session(self) -> aiohttp.ClientSession:
        if self._client is None or self._client.closed:
            # No total timeout: a long generation may stream for minutes. auto_decompress off: bytes pass unchanged.
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=900)
            self._client = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def forward(self, request: web.Request, body: bytes) -> Forwarded:
        endpoint = self.endpoint(request)
        url = endpoint + request.raw_path  # the client's own encoding of model ids / ARNs, as it signed it
        headers = kept_headers(request.headers.items())
        try:
            signed = await asyncio.to_thread(self._signed, request.method, url, body, headers, self.region(request))
        except (ValueError, BotoCoreError) as exc:  # e.g. botocore refusing a bearer token over plain HTTP
            raise BedrockError("InternalServerException", f"The emulator cannot forward to {endpoint}: {exc}") from None
        started = time.monotonic()
        try:
            upstream = await self._session().request(request.method, URL(url, encoded=True), data=body,
                                                     headers={**signed, "Accept-Encoding": "identity"})
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise BedrockError("InternalServerException",
                               f"The emulator could not reach the upstream {endpoint}: {exc or type(exc).__name__}") from None
        async with upstream:
            relayed = {name: value for name, value in upstream.headers.items()
                       if name in _RELAYED or name.lower().startswith("x-amzn-bedrock-")}
            request_id = upstream.headers.get("x-amzn-RequestId")
            if request_id:
                request["request_id"] = request_id  # add_request_id sends the upstream's id back to the client
            if upstream.content_type == EVENT_STREAM and upstream.status == 200:
                response, events = await _relay_stream(request, upstream, relayed, started)
                recorded = RecordedResponse(status=upstream.status, headers=kept_headers(relayed.items()),
                                            events=events, elapsed_ms=_ms(started))
                return Forwarded(response, recorded, endpoint)
            raw = await upstream.read()
            recorded = RecordedResponse(status=upstream.status, headers=kept_headers(relayed.items()),
                                        elapsed_ms=_ms(started))
            value, style = parsed(raw)
            if value is not None:
                recorded.body = value
                recorded.body_style = None if style == "compact" else style
            elif raw:
                recorded.body_text = raw.decode("utf-8", errors="replace")
            return Forwarded(web.Response(status=upstream.status, body=raw, headers=relayed), recorded, endpoint)


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


async def _relay_stream(request: web.Request, upstream: aiohttp.ClientResponse, headers: dict[str, str],
                        started: float) -> tuple[web.StreamResponse, list[RecordedEvent]]:
    response = web.StreamResponse(status=upstream.status, headers=headers)
    response.enable_chunked_encoding()  # no Content-Length: botocore would otherwise buffer until the end
    await response.prepare(request)
    decoder = StreamDecoder()
    tap = request.get(STREAM_TAP)
    async for data in upstream.content.iter_any():
        await response.write(data)  # first, so a slow decode never delays the client
        for event in decoder.feed(data, _ms(started)):
            if tap is not None:
                kind = "exception" if event.exception is not None else "event"
                tap(kind, event.exception or event.event or "", event.wire_payload())
    await response.write_eof()
    return response, decoder.events
