"""The recording modes and where they hook in.

- `record`: every Bedrock Runtime call is forwarded upstream (re-signed) and saved as a new cassette;
- `replay`: calls are answered from cassettes; an unmatched call gets a ValidationException naming the closest
  cassette and how the request differs from it;
- `record-missing`: replay what matches, forward and record the rest (new cassettes answer at once);
- `off`: the local model answers (cassettes in `--fixtures` still answer what they match).

`app.dispatch` runs `handler_for(...)` inside `testing.around_operation`, so faults, rate limits and the
invocation log apply to replayed and forwarded calls alike. The mode can change at run time
(`PUT /_emulator/recording`), which is how the pytest plugin gives each test its own cassette directory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from ..api.common import json_response
from ..protocol.errors import MODELED, UNMODELED, BedrockError, validation
from ..protocol.operations import STREAMING_INPUT
from ..testing import TESTKIT, current
from . import replay
from .cassette import Cassette, RecordedRequest, kept_headers, now_iso, redact
from .matching import VOLATILE, differences
from .upstream import Upstream

log = logging.getLogger("emulator.recording")

Mode = Literal["off", "record", "replay", "record-missing"]
Handler = Callable[[web.Request, dict], Awaitable[web.StreamResponse]]
# Operations a cassette can hold: every Bedrock Runtime call with a request/response body. One whose input is a
# stream (the bidirectional stream: HTTP/2, both ways at once) is not recorded.
UNRECORDABLE = STREAMING_INPUT


@dataclass
class RecordingConfig:
    mode: Mode = "off"
    directory: Path | None = None
    upstream: str | None = None  # default: the real endpoint of the region in each request's SigV4 scope
    speed: float = 0.0  # replay pacing: 0 at once, 1 as recorded, 2 twice as fast...
    ignore: list[str] = field(default_factory=list)  # body keys ignored when matching, besides matching.VOLATILE
    redact: list[str] = field(default_factory=list)  # body keys whose values are never written

    def check(self) -> None:
        if self.mode not in ("off", "record", "replay", "record-missing"):
            raise ValueError("`mode` is off, record, replay or record-missing")
        if self.mode != "off" and self.directory is None:
            raise ValueError(f"recording mode {self.mode} needs a cassette directory")
        if not isinstance(self.speed, (int, float)) or isinstance(self.speed, bool) or self.speed < 0:
            raise ValueError("the replay speed is 0 (at once) or a positive factor")
        if self.upstream is not None and not re.match(r"https?://[^/?#]+/?$", str(self.upstream)):
            raise ValueError(f"the upstream is an http(s)://host[:port] URL, not {self.upstream!r}")
        for name, keys in (("ignore", self.ignore), ("redact", self.redact)):
            if not isinstance(keys, list) or not all(isinstance(key, str) and key for key in keys):
                raise ValueError(f"`{name}` is a list of body keys")

    def view(self) -> dict:
        return {"mode": self.mode, "directory": None if self.directory is None else str(self.directory),
                "upstream": self.upstream, "speed": self.speed, "ignore": self.ignore, "redact": self.redact}


class Recorder:
    def __init__(self, config: RecordingConfig) -> None:
        config.check()
        self.config = config
        self.upstream = Upstream(config.upstream)

    @property
    def ignore(self) -> list[str]:
        return sorted({*self.config.ignore, *self.config.redact})

    def configure(self, app: Mapping, config: RecordingConfig) -> int:
        """Switch mode (and directory); returns how many cassettes now answer. Nothing changes if it raises."""
        config.check()
        replaying = config.mode in ("replay", "record-missing")
        count = app[TESTKIT].rules.use_cassettes(config.directory if replaying else None,
                                                 sorted({*config.ignore, *config.redact}))
        if config.upstream != self.config.upstream:
            old, self.upstream = self.upstream, Upstream(config.upstream)
            asyncio.get_running_loop().create_task(old.close())  # only ever changed by the admin endpoint
        self.config = config
        return count

    async def record(self, request: web.Request, operation: str, labels: dict[str, str], raw: bytes,
                     body: Any) -> web.StreamResponse:
        """Forward the call (the reply reaches the client as it arrives), then save the exchange."""
        forwarded = await self.upstream.forward(request, raw)
        model_id = labels.get("modelId")
        others = {k: v for k, v in labels.items() if k != "modelId"} or None
        keys = self.config.redact
        text = isinstance(body, str)  # a body that is not JSON is kept as text
        cassette = Cassette(
            recorded_at=now_iso(), upstream=forwarded.upstream, ignore=sorted(keys),
            request=RecordedRequest(operation=operation, model=model_id, headers=kept_headers(request.headers.items()),
                                    labels=others,
                                    body=None if text else redact(body, keys), body_text=body if text else None),
            response=forwarded.recorded,
        )
        if keys:
            cassette.response.body = redact(cassette.response.body, keys)
            for event in cassette.response.events or []:
                event.payload, event.chunk = redact(event.payload, keys), redact(event.chunk, keys)
        path = await asyncio.to_thread(cassette.save, self.config.directory, [*VOLATILE, *self.ignore])
        log.info("recorded %s %s -> %s", operation, model_id, path.name)
        replay.report_tokens(cassette.response)
        _note_error(cassette)
        if self.config.mode == "record-missing":
            request.app[TESTKIT].rules.add_cassette(cassette, path, self.ignore)
        return forwarded.response

    def unmatched(self, operation: str, labels: dict[str, str], body: Any, rules) -> BedrockError:
        """The error for a call no cassette answers: the closest cassette, and where the request differs."""
        model_id = labels.get("modelId")
        others = {k: v for k, v in labels.items() if k != "modelId"}
        candidates = rules.cassettes()
        if not candidates:
            return validation(f"No recorded exchange answers this request ({operation}, model {model_id}): there "
                              f"are no cassettes in {self.config.directory}. Record them with --record or "
                              "--record-missing.")

        def how(loaded) -> list[str]:
            request, match = loaded.cassette.request, loaded.rule.match
            found = [f"{name}: recorded {mine}, sent {theirs}" for name, mine, theirs in (
                ("operation", request.operation, operation), ("model", request.model, model_id),
                ("path", request.labels or {}, others)) if mine != theirs]
            return found + differences(match.body, body, match.ignore, limit=10_000)

        closest = min(candidates, key=lambda loaded: len(how(loaded)))
        found = how(closest)
        shown = found[:3] + ([f"and {len(found) - 3} more difference(s)"] if len(found) > 3 else [])
        return validation(f"No recorded exchange matches this request ({operation}, model {model_id}). The closest "
                          f"cassette is {closest.rule.name}, which differs in: {'; '.join(shown) or 'nothing'}.")


def _note_error(cassette: Cassette) -> None:
    """A recorded error reply shows in the invocation log as the error it is."""
    active = current()
    code = {k.lower(): v for k, v in cassette.response.headers.items()}.get("x-amzn-errortype", "").split(":")[0]
    if active is not None and (code in MODELED or code in UNMODELED):
        message = cassette.response.body.get("message") if isinstance(cassette.response.body, dict) else None
        active.invocation.error = BedrockError(code, message)


RECORDER = web.AppKey("recorder", Recorder)


def handler_for(app: web.Application, operation: str, handler: Handler | None) -> Handler | None:
    """The handler `dispatch` runs: cassettes and the recording mode first, then the emulator's own."""
    recorder = app.get(RECORDER)
    if recorder is None or operation in UNRECORDABLE:
        return handler

    async def recorded(request: web.Request, labels: dict) -> web.StreamResponse:
        mode = recorder.config.mode
        rules = request.app[TESTKIT].rules
        if mode == "off" and not rules.has_cassettes:
            if handler is None:
                raise validation(f"The emulator does not support {operation} yet.")
            return await handler(request, labels)
        raw = await request.read()
        body = _json_or_text(raw) if raw else None
        if mode == "record":
            return await recorder.record(request, operation, labels, raw, body)
        loaded = rules.match_recorded(operation, labels, body)
        if loaded is not None:
            current_active = current()
            if current_active is not None:
                current_active.invocation.rule = loaded.label
            _note_error(loaded.cassette)
            return await replay.answer(request, loaded.cassette, recorder.config.speed)
        if mode == "record-missing":
            return await recorder.record(request, operation, labels, raw, body)
        if mode == "replay":
            raise recorder.unmatched(operation, labels, body, rules)
        if handler is None:
            raise validation(f"The emulator does not support {operation} yet.")
        return await handler(request, labels)

    return recorded


def _json_or_text(raw: bytes) -> Any:
    """A body to match on: its JSON (whatever the layout), else its text."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return raw.decode("utf-8", errors="replace")


async def get_recording(request: web.Request) -> web.Response:
    recorder = request.config_dict[RECORDER]
    return json_response({**recorder.config.view(), "cassettes": len(request.config_dict[TESTKIT].rules.cassettes())})


async def put_recording(request: web.Request) -> web.Response:
    """Switch the mode at run time: `{"mode": "replay", "directory": "...", ...}` (the fields of `GET`)."""
    try:
        data = await request.json()
        if not isinstance(data, dict):
            raise ValueError("a JSON object")
        unknown = set(data) - set(RecordingConfig().view())
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
        directory = data.get("directory")
        if directory is not None and not isinstance(directory, str):
            raise ValueError("`directory` is a path on the emulator's disk")
        config = RecordingConfig(mode=data.get("mode", "off"), directory=Path(directory) if directory else None,
                                 upstream=data.get("upstream"), speed=data.get("speed", 0),
                                 ignore=data.get("ignore", []), redact=data.get("redact", []))
        count = request.config_dict[RECORDER].configure(request.config_dict, config)
    except ValueError as exc:  # includes a cassette that does not load (RuleError)
        raise validation(f"Invalid recording settings: {exc}") from None
    return json_response({**config.view(), "cassettes": count})


def install(app: web.Application, config: RecordingConfig | None) -> Recorder:
    config = config or RecordingConfig()
    try:
        recorder = app[RECORDER] = Recorder(config)
        recorder.configure(app, config)
    except ValueError as exc:  # includes a malformed cassette (RuleError is a ValueError)
        raise SystemExit(f"invalid recording configuration:\n{exc}") from None

    async def upstream(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[RECORDER].upstream.close()  # the upstream's pooled connections (record mode)

    app.cleanup_ctx.append(upstream)
    return recorder


def register(emulator: web.Application) -> None:
    """Add `GET/PUT /recording` to the `/_emulator` sub-app."""
    emulator.router.add_get("/recording", get_recording)
    emulator.router.add_put("/recording", put_recording)
