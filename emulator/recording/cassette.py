"""The cassette: one recorded exchange in a YAML file a person can read and edit.

    recorded_at: '2026-12-01T15:04:05Z'
    upstream: https://bedrock-runtime.us-east-1.amazonaws.com
    request:
      operation: ConverseStream
      model: anthropic.claude-3-haiku-20240307-v1:0
      headers: {Content-Type: application/json}
      body: {messages: [...], inferenceConfig: {maxTokens: 64}}
    response:
      status: 200
      headers: {Content-Type: application/vnd.amazon.eventstream}
      elapsed_ms: 812.4                       # when the exchange ended, from the moment it was forwarded
      events:                                 # event streams: each frame decoded, with its offset in ms
        - {offset_ms: 301.2, event: messageStart, payload: {role: assistant}}
        - {offset_ms: 305.9, event: contentBlockDelta, payload: {contentBlockIndex: 0, delta: {text: Hi}}}
        - {offset_ms: 640.0, exception: throttlingException, payload: {message: ...}}
      # JSON replies have `body:` instead; InvokeModelWithResponseStream chunks are `chunk:` (the decoded bytes)

Only headers that change what a client sees are kept (Content-Type, Accept, `X-Amzn-Bedrock-*`,
`x-amzn-ErrorType`): never Authorization, `X-Amz-Security-Token`, dates or signatures. Body fields named in
`--redact` are replaced by `<redacted>` and ignored when matching (the file's `ignore:` lists them).

JSON is stored parsed; `style` (or `body_style`) records how the bytes were laid out when that was not compact,
and `text` / `body_text` keeps bytes that were not JSON, so a replay sends back exactly the recorded bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from botocore.eventstream import EventStreamBuffer
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..protocol.eventstream import encode_message
from .matching import normalized

REDACTED = "<redacted>"
EVENT_STREAM = "application/vnd.amazon.eventstream"
Style = Literal["compact", "spaced", "compact-ascii", "spaced-ascii"]
_STYLES: dict[str, dict] = {
    "compact": {"separators": (",", ":"), "ensure_ascii": False},
    "spaced": {"ensure_ascii": False},
    "compact-ascii": {"separators": (",", ":")},
    "spaced-ascii": {},
}
_KEPT_HEADER = re.compile(r"^(content-type|accept|x-amzn-errortype|x-amzn-bedrock-.*)$", re.IGNORECASE)


def dumps(value: Any, style: str = "compact") -> bytes:
    return json.dumps(value, **_STYLES[style]).encode()


def parsed(raw: bytes) -> tuple[Any, str | None]:
    """(JSON value, its style) when `raw` is JSON that one of the styles reproduces byte for byte; else (None, None)."""
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None, None
    for style in _STYLES:
        if dumps(value, style) == raw:
            return value, style
    return None, None


def kept_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers worth keeping: what a client reads. Credentials and signatures never pass this filter."""
    return {name: value for name, value in headers if _KEPT_HEADER.match(name)}


def redact(value: Any, keys: Iterable[str]) -> Any:
    keys = frozenset(keys)
    if not keys:
        return value
    if isinstance(value, dict):
        return {k: REDACTED if k in keys else redact(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, keys) for v in value]
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecordedRequest(_Strict):
    operation: str
    model: str | None = None
    labels: dict[str, str] | None = None  # the path's other labels (guardrail id and version, invocation ARN)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    body_text: str | None = None  # a body that is not JSON


class RecordedEvent(_Strict):
    offset_ms: float = Field(default=0, ge=0)
    event: str | None = None  # `:event-type` of a normal event
    exception: str | None = None  # `:exception-type` of a modeled in-stream exception
    headers: dict[str, str] | None = None  # any other frame: its headers as sent
    payload: Any = None
    chunk: Any = None  # InvokeModelWithResponseStream: the chunk's `bytes`, decoded JSON
    text: str | None = None  # a payload that is not JSON, as text
    style: Style | None = None  # layout of the payload (or chunk) JSON when not compact

    @model_validator(mode="after")
    def _one_kind(self) -> "RecordedEvent":
        if sum(x is not None for x in (self.event, self.exception, self.headers)) != 1:
            raise ValueError("an event has exactly one of `event`, `exception` or `headers`")
        return self

    def _payload_bytes(self) -> bytes:
        style = self.style or "compact"
        if self.text is not None:
            return self.text.encode()
        if self.chunk is not None:
            return dumps({"bytes": base64.b64encode(dumps(self.chunk, style)).decode()})
        return dumps({} if self.payload is None else self.payload, style)

    def frame(self) -> bytes:
        if self.event is not None:
            headers = [(":event-type", self.event), (":content-type", "application/json"), (":message-type", "event")]
        elif self.exception is not None:
            headers = [(":exception-type", self.exception), (":content-type", "application/json"),
                       (":message-type", "exception")]
        else:
            headers = list(self.headers.items())
        return encode_message(headers, self._payload_bytes())

    def wire_payload(self) -> Any:
        """The payload as a client decodes it (chunk bytes base64-encoded again)."""
        raw = self._payload_bytes()
        value, _ = parsed(raw)
        return value if value is not None else raw.decode(errors="replace")

    @classmethod
    def decoded(cls, headers: dict, payload: bytes, offset_ms: float) -> "RecordedEvent":
        fields: dict[str, Any] = {"offset_ms": round(offset_ms, 1)}
        standard = list(headers) == [":event-type", ":content-type", ":message-type"] and headers[":message-type"] == "event"
        exception = list(headers) == [":exception-type", ":content-type", ":message-type"] \
            and headers[":message-type"] == "exception"
        if standard and headers[":content-type"] == "application/json":
            fields["event"] = headers[":event-type"]
        elif exception and headers[":content-type"] == "application/json":
            fields["exception"] = headers[":exception-type"]
        else:
            fields["headers"] = {name: str(value) for name, value in headers.items()}
        value, style = parsed(payload)
        if value is None:
            fields["text"] = payload.decode("utf-8", errors="replace")
            return cls(**fields)
        chunk = _chunk(value) if style == "compact" and fields.get("event") == "chunk" else None
        if chunk is not None:
            fields["chunk"], style = chunk
        else:
            fields["payload"] = value
        if style != "compact":
            fields["style"] = style
        return cls(**fields)


def _chunk(payload: Any) -> tuple[Any, str] | None:
    """A `{"bytes": base64}` chunk whose bytes are JSON: that JSON and its style, else None (kept as is)."""
    if not isinstance(payload, dict) or set(payload) != {"bytes"} or not isinstance(payload["bytes"], str):
        return None
    try:
        raw = base64.b64decode(payload["bytes"], validate=True)
    except (binascii.Error, ValueError):
        return None
    value, style = parsed(raw)
    if value is None or base64.b64encode(raw).decode() != payload["bytes"]:
        return None
    return value, style


class RecordedResponse(_Strict):
    status: int = Field(default=200, ge=100, le=599)
    headers: dict[str, str] = Field(default_factory=dict)
    elapsed_ms: float = Field(default=0, ge=0)
    body: Any = None
    body_text: str | None = None
    body_style: Style | None = None
    events: list[RecordedEvent] | None = None

    def body_bytes(self) -> bytes:
        if self.body_text is not None:
            return self.body_text.encode()
        if self.body is None:
            return b""
        return dumps(self.body, self.body_style or "compact")

    @property
    def content_type(self) -> str:
        for name, value in self.headers.items():
            if name.lower() == "content-type":
                return value
        return EVENT_STREAM if self.events is not None else "application/json"


class Cassette(_Strict):
    recorded_at: str | None = None
    upstream: str | None = None
    ignore: list[str] = Field(default_factory=list)  # body keys ignored when matching, besides the defaults
    request: RecordedRequest
    response: RecordedResponse

    @property
    def streams(self) -> bool:
        return self.response.events is not None

    def file_name(self, default_ignore: Iterable[str]) -> str:
        """`<Operation>_<model>_<hash>.yaml`, the hash over what matching compares."""
        key = json.dumps([self.request.operation, self.request.model,
                          normalized(self.request.body, [*default_ignore, *self.ignore]), self.request.body_text],
                         sort_keys=True, default=str)
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        model = re.sub(r"[^A-Za-z0-9.-]+", "-", self.request.model or "none").strip("-")[:80]
        return f"{self.request.operation}_{model}_{digest}.yaml"

    def save(self, directory: Path, default_ignore: Iterable[str]) -> Path:
        """Write a new file (never over an earlier recording of the same request: `_2`, `_3`... follow)."""
        directory.mkdir(parents=True, exist_ok=True)
        name = self.file_name(default_ignore)
        path, n = directory / name, 1
        while True:
            try:
                data = self.model_dump(mode="json", exclude_none=True)
                if not data["ignore"]:
                    del data["ignore"]
                with path.open("x", encoding="utf-8") as out:
                    out.write(dump_yaml(data))
                return path
            except FileExistsError:
                n += 1
                path = directory / f"{name[:-5]}_{n}.yaml"


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value and len(value) > 60 else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(data: dict) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120, default_flow_style=None)


def is_cassette(data: object) -> bool:
    return isinstance(data, dict) and "request" in data and "response" in data and "rules" not in data


class StreamDecoder:
    """Decodes an event stream as its bytes pass through (botocore's EventStreamBuffer), stamping each frame."""

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()
        self.events: list[RecordedEvent] = []

    def feed(self, data: bytes, offset_ms: float) -> list[RecordedEvent]:
        self._buffer.add_data(data)
        new = [RecordedEvent.decoded(message.headers, message.payload, offset_ms) for message in self._buffer]
        self.events += new
        return new
