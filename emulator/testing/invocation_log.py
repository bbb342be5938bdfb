"""The invocation log: every request the emulator answered, what was sent, what came back, tokens and timings.

Entries live in a bounded in-memory log (`GET /_emulator/invocations`, oldest first) and, when a file is given
(`--invocation-log FILE`), are appended to it as JSON lines in the shape of Bedrock's model-invocation logging
(`schemaType: ModelInvocationLog`, `schemaVersion: 1.0`). Streamed output is logged as the list of events sent
(ConverseStream: `{"messageStart": {...}}`, ...; InvokeModelWithResponseStream: each chunk's decoded JSON), as
Bedrock logs streams. Failed calls carry `errorCode` / `errorMessage` in the file records (an emulator addition).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

from ..protocol import bounds
from ..protocol.errors import MODELED, BedrockError
from ..protocol.identity import ACCOUNT_ID, request_region
from ..protocol.operations import STREAMING_INPUT

log = logging.getLogger("emulator.log")

DEFAULT_SIZE = 1000
DEFAULT_BYTES = 64 * 1024 * 1024  # the whole log's bodies, requests and replies together
MAX_ENTRY_BODY = 1024 * 1024  # bytes of one request or reply body kept; the rest is cut, with a marker
TRUNCATED = "emulatorTruncated"  # the marker: {"emulatorTruncated": {"bytes": <full size>, "prefix": "<text>"}}
_PREFIX_CHARS = 4096
_ATTEMPT = re.compile(r"attempt=([0-9]{1,9})(?![0-9])")


def _kept(body: bytes) -> tuple[bytes, int | None]:
    """A body as stored: whole, or its first MAX_ENTRY_BODY bytes and the full size when larger."""
    return (body, None) if len(body) <= MAX_ENTRY_BODY else (body[:MAX_ENTRY_BODY], len(body))


def _parsed(body: bytes, full_size: int | None = None) -> Any:
    """A body as JSON when it is JSON (and safe to write back), else as text (or base64 for binary)."""
    if full_size is not None:
        prefix = body[:_PREFIX_CHARS].decode("utf-8", "replace")
        return {TRUNCATED: {"bytes": full_size, "prefix": prefix}}
    if not body:
        return None
    try:
        return bounds.loads(body)
    except bounds.UnsafeJson:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(body).decode()


@dataclass(frozen=True)
class LoggedError:
    """An error as logged: plain data, never the exception (whose traceback would keep the request alive)."""

    code: str
    message: str
    status: int

    @classmethod
    def of(cls, error: BedrockError) -> "LoggedError":
        return cls(error.code, error.message, error.status)


def _stream_event(name: str, payload: dict) -> Any:
    """A stream frame as logged: a chunk's decoded JSON, else `{member: payload}` without the padding `p`."""
    if name == "chunk" and "bytes" in payload:
        try:
            return _parsed(base64.b64decode(payload["bytes"]))
        except (binascii.Error, ValueError):
            pass
    return {name: {key: value for key, value in payload.items() if key != "p"}}


def _int_header(response: web.StreamResponse, name: str) -> int | None:
    value = response.headers.get(name)
    return int(value) if value is not None and value.isdigit() else None


_NOW: tuple[int, str] = (0, "")  # (whole second, its ISO form): formatted once a second, not once a request


def _utc_now() -> str:
    global _NOW
    second = int(time.time())
    if _NOW[0] != second:
        _NOW = (second, datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _NOW[1]


@dataclass
class Invocation:
    request_id: str
    operation: str
    model_id: str | None
    region: str
    input_content_type: str | None
    raw_request: bytes  # bodies are kept raw and decoded only when the log is read: no cost per request
    request_size: int | None  # the full size when raw_request holds only a prefix
    attempt: int | None
    sdk_invocation_id: str | None
    timestamp: str = field(default_factory=lambda: _utc_now())
    started: float = field(default_factory=time.monotonic)
    status: int | None = None
    error: LoggedError | None = None
    error_in_stream: bool = False
    output_content_type: str | None = None
    raw_response: bytes | None = None
    response_size: int | None = None  # the full size when raw_response holds only a prefix
    frames: list[tuple[str, dict]] | None = None  # (event or exception member, payload) for streams
    frame_ms: list[int] = field(default_factory=list)  # when each frame went out, from the request's arrival
    frame_bytes: int = 0
    frames_cut: int = 0  # frames sent but not kept (the entry's byte cap was reached)
    input_tokens: int | None = None
    output_tokens: int | None = None
    first_byte_ms: int | None = None
    latency_ms: int | None = None
    rule: str | None = None  # the scripted rule that answered, if any
    faults: list[str] = field(default_factory=list)
    seq: int = 0  # the log's running number, so a reader can ask for what came after the last entry it saw

    @classmethod
    async def begin(cls, request: web.Request, operation: str, model_id: str | None) -> "Invocation":
        attempt = _ATTEMPT.search(request.headers.get("amz-sdk-request", "")[:200])
        # A bidirectional stream's body lasts the whole session: its handler logs the input events instead.
        raw, size = _kept(b"" if operation in STREAMING_INPUT else await request.read())
        return cls(
            request_id=request.get("request_id", ""),
            operation=operation,
            model_id=model_id,
            region=request_region(request),
            input_content_type=request.headers.get("Content-Type"),
            raw_request=raw,
            request_size=size,
            attempt=int(attempt.group(1)) if attempt else None,
            sdk_invocation_id=request.headers.get("amz-sdk-invocation-id"),
        )

    @property
    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    @property
    def total_tokens(self) -> int:
        return (self.input_tokens or 0) + (self.output_tokens or 0)

    def first_byte(self) -> None:
        if self.first_byte_ms is None:
            self.first_byte_ms = self.elapsed_ms

    def tokens(self, input_tokens: int, output_tokens: int) -> None:
        """One finished generation; a request for several choices (InvokeModel `n`) adds up their output."""
        self.input_tokens = input_tokens
        self.output_tokens = (self.output_tokens or 0) + output_tokens

    def stream_frame(self, message_type: str, name: str, payload: dict) -> None:
        """Called for every event-stream frame sent (see `protocol.streaming.STREAM_TAP`)."""
        if self.frames is None:
            self.frames = []
        if message_type == "exception":
            code = name[0].upper() + name[1:]
            status = BedrockError(code).status if code in MODELED else 500
            self.error = LoggedError(code, str(payload.get("message")), status)
            self.error_in_stream = True
        size = 32 + sum(len(v) if isinstance(v, (str, bytes)) else 16 for v in payload.values())
        if self.frame_bytes + size > MAX_ENTRY_BODY and message_type != "exception":
            self.frames_cut += 1
            return
        self.frame_bytes += size
        self.frames.append((name, payload))
        self.frame_ms.append(self.elapsed_ms)

    def answered(self, response: web.StreamResponse) -> None:
        self.status = response.status
        declared = response.headers.get("X-Amzn-Bedrock-Content-Type") or response.headers.get("Content-Type")
        # The usual plain value as it is; anything else through aiohttp's parser (which costs more than the rest here)
        self.output_content_type = declared if declared == "application/json" else \
            response.headers.get("X-Amzn-Bedrock-Content-Type") or response.content_type
        if self.frames is None and isinstance(response, web.Response) and isinstance(response.body, bytes):
            self.raw_response, self.response_size = _kept(response.body)
        if self.input_tokens is None:  # operations that do not generate (e.g. embeddings) report them in headers
            self.input_tokens = _int_header(response, "X-Amzn-Bedrock-Input-Token-Count")
            self.output_tokens = _int_header(response, "X-Amzn-Bedrock-Output-Token-Count")

    def failed(self, error: BedrockError) -> None:
        self.error = LoggedError.of(error)
        if self.frames is None:
            self.status = error.status
        else:  # the stream had begun: the client gets a 200 and the error as an in-stream exception
            self.status, self.error_in_stream = 200, True

    def done(self) -> None:
        self.latency_ms = self.elapsed_ms
        if self.first_byte_ms is None:
            self.first_byte_ms = self.latency_ms

    @property
    def size(self) -> int:
        """Bytes this entry holds (bodies and frames), what the log's byte cap counts."""
        return len(self.raw_request) + len(self.raw_response or b"") + self.frame_bytes

    @property
    def request_body(self) -> Any:
        return _parsed(self.raw_request, self.request_size)

    @property
    def response_body(self) -> Any:
        """The JSON body returned, or for a stream the events sent (each chunk's decoded JSON for ResponseStream)."""
        if self.frames is None:
            return _parsed(self.raw_response or b"", self.response_size)
        events = [_stream_event(name, payload) for name, payload in self.frames]
        if self.frames_cut:
            events.append({TRUNCATED: {"frames": self.frames_cut}})
        return events

    def view(self) -> dict:
        """The entry `GET /_emulator/invocations` returns."""
        return {
            "seq": self.seq,
            "requestId": self.request_id,
            "timestamp": self.timestamp,
            "operation": self.operation,
            "modelId": self.model_id,
            "request": self.request_body,
            "status": self.status,
            "response": self.response_body,
            "error": None if self.error is None else
            {"code": self.error.code, "message": self.error.message, "inStream": self.error_in_stream},
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "firstByteMs": self.first_byte_ms,
            "latencyMs": self.latency_ms,
            "attempt": self.attempt,
            "sdkInvocationId": self.sdk_invocation_id,
            "scriptedRule": self.rule,
            "faults": self.faults,
            "frameOffsetsMs": self.frame_ms if self.frames is not None else None,
        }

    def bedrock_record(self, account_id: str = ACCOUNT_ID) -> dict:
        """The entry in the shape of Bedrock's model-invocation logging."""
        record: dict[str, Any] = {
            "schemaType": "ModelInvocationLog",
            "schemaVersion": "1.0",
            "timestamp": self.timestamp,
            "accountId": account_id,
            "region": self.region,
            "requestId": self.request_id,
            "operation": self.operation,
            "modelId": self.model_id,
            "input": {
                "inputContentType": self.input_content_type or "application/json",
                "inputBodyJson": self.request_body,
                "inputTokenCount": self.input_tokens or 0,
            },
        }
        if self.error is None or self.error_in_stream:
            record["output"] = {
                "outputContentType": self.output_content_type or "application/json",
                "outputBodyJson": self.response_body,
                "outputTokenCount": self.output_tokens or 0,
            }
        if self.error is not None:
            record["errorCode"], record["errorMessage"] = self.error.code, self.error.message
        return record


class InvocationLog:
    """The newest entries, at most `size` of them and `max_bytes` of bodies (oldest dropped first)."""

    def __init__(self, size: int = DEFAULT_SIZE, path: Path | None = None, account_id: str = ACCOUNT_ID,
                 max_bytes: int = DEFAULT_BYTES) -> None:
        self.entries: deque[Invocation] = deque()
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0
        self.path = path
        self.account_id = account_id
        self._file_lock = asyncio.Lock()
        self._seq = 0
        # Called with each entry as it is logged (the metrics); a listener must be quick and must not raise.
        self.listeners: list[Callable[[Invocation], None]] = []

    async def append(self, invocation: Invocation) -> None:
        """Keep the entry (and write its file line). Never raises: logging must not change a request's answer."""
        self._seq += 1
        invocation.seq = self._seq
        self.entries.append(invocation)
        self.bytes += invocation.size
        while self.entries and (len(self.entries) > self.size or self.bytes > self.max_bytes):
            self.bytes -= self.entries.popleft().size
        for listener in self.listeners:
            listener(invocation)
        if self.path is not None:
            try:
                async with self._file_lock:  # one writer at a time keeps lines whole and in order
                    await asyncio.to_thread(self._write, invocation)
            except Exception:
                log.exception("could not write the invocation log line for %s", invocation.request_id)

    def _write(self, invocation: Invocation) -> None:
        line = bounds.dumps_bytes(invocation.bedrock_record(self.account_id)) + b"\n"
        with self.path.open("ab") as out:
            out.write(line)

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def first_seq(self) -> int:
        """The oldest entry still kept (last_seq + 1 when the log is empty)."""
        return self.entries[0].seq if self.entries else self._seq + 1

    def select(self, limit: int | None = None, after: int = 0) -> list[Invocation]:
        """The entries a read asks for, as a snapshot (take it on the event loop, which appends)."""
        chosen = [e for e in self.entries if e.seq > after] if after else list(self.entries)
        return chosen[-limit:] if limit else chosen

    def render(self, chosen: list[Invocation], bedrock: bool = False) -> list[dict]:
        """Entries decoded for reading; safe on a worker thread (bodies up to the log's cap are parsed)."""
        return [e.bedrock_record(self.account_id) if bedrock else e.view() for e in chosen]

    def views(self, limit: int | None = None, bedrock: bool = False, after: int = 0) -> list[dict]:
        return self.render(self.select(limit, after), bedrock)

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0
