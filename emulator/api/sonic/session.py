"""One Nova Sonic session: input events in, output events out, interleaved.

`Session.run(inputs)` consumes the raw JSON of each input event (an async iterator of bytes: one `chunk` each) and
yields output events (`{"event": {...}}`) as they are produced; a protocol error, a timeout or a failed generation
is raised as the `BedrockError` the stream ends with. Reading and answering run concurrently: the reader checks
each event against the session's state at once (so a bad event fails the session even mid-answer), and hands the
conversation's changes to one responder, which answers each user turn in order with the local model through
`Service.generate` (scripted rules, faults, the invocation log and rate limits apply there, as to every operation).

A user turn is answered when an interactive USER text content ends, when speech in an audio content is followed
by a pause (a PLACEHOLDER energy detector: see audio.py) or the audio content ends, and after a tool result.
Speech heard while the assistant is answering interrupts it (barge-in): the answer stops, its open content ends
with `INTERRUPTED`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from ...catalog import Entry
from ...engine.types import Failed, Finished, SamplingParams, TextDelta, ToolUse
from ...families.base import TextFamily
from ...families.call import Call
from ...protocol.errors import BedrockError
from ...service import Service
from ...tools.checks import check_unique, checked_tool
from ...tools.markup import render_call, render_result
from ...tools.model import ToolPlan
from . import audio
from .events import CONTENT_TYPES, ROLES, AudioFormat, Completion, Tokens, invalid, number, obj, one_of, parse, string

log = logging.getLogger("emulator.sonic")

OPERATION = "InvokeModelWithBidirectionalStream"
DEFAULT_MAX_TOKENS = 1024
SPEECH_TOKENS_PER_SECOND = 25  # an ESTIMATE for usageEvent's speechTokens (the emulator has no speech tokenizer)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Limits:
    """Nova Sonic's session limits: a connection lasts at most 8 minutes; a session that sends nothing (while
    no answer is being produced) for `idle_s` is closed with a modelTimeoutException."""

    session_s: float = 8 * 60
    idle_s: float = 60.0


def timeout_error() -> BedrockError:
    # The service model's documentation of modelTimeoutException in this operation's output union.
    return BedrockError("ModelTimeoutException",
                        "The connection was closed because a request was not received within the timeout period.")


def session_too_long(limits: Limits) -> BedrockError:
    return BedrockError("ModelTimeoutException",
                        f"The session exceeded its maximum duration of {limits.session_s:g} seconds. Start a new session.")


@dataclass
class _Content:
    name: str
    type: str
    role: str
    interactive: bool
    tool_use_id: str | None = None
    voice: audio.VoiceActivity | None = None
    parts: list[str] = field(default_factory=list)


# What the reader hands the responder (the conversation changes in the order they happened).
@dataclass(frozen=True)
class _Add:  # a non-interactive content: the system prompt or conversation history
    role: str
    text: str


@dataclass(frozen=True)
class _Turn:  # a user turn to answer; `speech_s` when it was spoken (its placeholder transcript is output first)
    text: str
    speech_s: float | None = None


@dataclass(frozen=True)
class _ToolResult:
    tool_use_id: str
    text: str


_STOP = object()  # the end of input: answer what is queued, then end the stream


class Session:
    def __init__(self, service: Service, model_id: str, entry: Entry, family: TextFamily,
                 limits: Limits = Limits()) -> None:
        self.service = service
        self.model_id = model_id
        self.entry = entry
        self.family = family
        self.limits = limits
        self.session_id = str(uuid.uuid4())
        self.started = False
        self.ended = False  # sessionEnd received
        self.prompt: str | None = None  # the open prompt's name
        self.prompt_name = ""  # the latest prompt's name (answers may finish after its promptEnd)
        self.prompt_contents = 0  # contents started in the open prompt (the system prompt must come first)
        self.names: set[str] = set()
        self.open: dict[str, _Content] = {}
        self.sampling = SamplingParams(max_new_tokens=DEFAULT_MAX_TOKENS, temperature=0.7, top_p=0.9)
        self.endpointing = audio.Endpointing()
        self.audio_out: AudioFormat | None = None
        self.tools: ToolPlan | None = None
        self.pending_tools: set[str] = set()  # toolUseIds the model asked for and the client has not answered
        self.messages: list[dict] = []  # the conversation, as chat messages
        self.totals = Tokens()
        self.input_log: list[dict] = []  # the input events (audio as its size), for the invocation log
        self._changes: asyncio.Queue = asyncio.Queue()
        self._out: asyncio.Queue = asyncio.Queue()
        self._answering: asyncio.Task | None = None  # the running answer (barge-in cancels it)
        self._interrupted = False
        self._busy = 0  # turns queued or being answered: idle time does not count while the model works
        self._completion: Completion | None = None  # kept open across a tool call and its result

    # -- the session as a whole -----------------------------------------------------------------------------

    async def run(self, inputs: AsyncIterator[bytes]) -> AsyncIterator[dict]:
        reader = asyncio.create_task(self._read(inputs))
        responder = asyncio.create_task(self._respond())
        try:
            while True:
                item = await self._out.get()
                if item is _STOP:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield {"event": item}
        finally:
            for task in (reader, responder):
                task.cancel()
            await asyncio.gather(reader, responder, return_exceptions=True)

    def _emit(self, event: dict) -> None:
        self._out.put_nowait(event)

    def _fail(self, error: BaseException) -> None:
        self._out.put_nowait(error)

    # -- input ---------------------------------------------------------------------------------------------

    async def _read(self, inputs: AsyncIterator[bytes]) -> None:
        # A pump task owns the input iterator: timing out a wait must not cancel (and so close) the iterator itself.
        arrived: asyncio.Queue = asyncio.Queue(maxsize=64)
        pump = asyncio.create_task(_pump(inputs, arrived))
        deadline = time.monotonic() + self.limits.session_s
        last = time.monotonic()
        try:
            while not self.ended:
                now = time.monotonic()
                if now >= deadline:
                    raise session_too_long(self.limits)
                wait = min(deadline - now, max(0.0, last + self.limits.idle_s - now))
                try:
                    raw = await asyncio.wait_for(arrived.get(), timeout=wait)
                except TimeoutError:
                    if time.monotonic() >= deadline:
                        raise session_too_long(self.limits) from None
                    if self._busy:  # the model is answering: the client may well be silent
                        last = time.monotonic()
                        continue
                    raise timeout_error() from None
                if raw is _STOP:
                    break
                if isinstance(raw, BaseException):
                    raise raw
                last = time.monotonic()
                self.receive(raw)
        except BedrockError as error:
            self._fail(error)
            return
        except (ConnectionError, asyncio.IncompleteReadError) as exc:  # the client went away
            log.info("Nova Sonic session %s: input ended: %s", self.session_id, exc)
        finally:
            pump.cancel()
        self._changes.put_nowait(_STOP)

    def receive(self, raw: bytes) -> None:
        """Check one input event against the session's state and apply it (raises the ValidationException)."""
        name, body = parse(raw)
        if not self.started and name != "sessionStart":
            raise invalid(f"the first event of a session must be sessionStart, got {name}.")
        getattr(self, "_on_" + name)(body)

    def _logged(self, name: str, body: dict) -> None:
        self.input_log.append({"event": {name: body}})

    def _on_sessionStart(self, body: dict) -> None:
        if self.started:
            raise invalid("sessionStart was already received; a session starts once.")
        config = obj(body, "sessionStart", "inferenceConfiguration", required=False) or {}
        where = "sessionStart.inferenceConfiguration"
        max_tokens = number(config, where, "maxTokens", 1, self.entry.max_output_tokens, integer=True)
        top_p = number(config, where, "topP", 0, 1)
        temperature = number(config, where, "temperature", 0, 1)
        self.sampling = SamplingParams(
            max_new_tokens=max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS,
            temperature=float(temperature) if temperature is not None else 0.7,
            top_p=float(top_p) if top_p is not None else 0.9,
        )
        turns = obj(body, "sessionStart", "turnDetectionConfiguration", required=False) or {}
        sensitivity = one_of(turns, "sessionStart.turnDetectionConfiguration", "endpointingSensitivity",
                             ("HIGH", "MEDIUM", "LOW"), required=False)
        self.endpointing = audio.Endpointing.of(sensitivity)
        self.started = True
        self._logged("sessionStart", body)

    def _on_promptStart(self, body: dict) -> None:
        if self.prompt is not None:
            raise invalid(f"promptStart while prompt {self.prompt!r} is open; send promptEnd first.")
        prompt = string(body, "promptStart", "promptName")
        text = obj(body, "promptStart", "textOutputConfiguration", required=False)
        if text is not None and text.get("mediaType") != "text/plain":
            raise invalid("promptStart.textOutputConfiguration.mediaType must be text/plain.")
        tool_output = obj(body, "promptStart", "toolUseOutputConfiguration", required=False)
        if tool_output is not None and tool_output.get("mediaType") != "application/json":
            raise invalid("promptStart.toolUseOutputConfiguration.mediaType must be application/json.")
        config = obj(body, "promptStart", "audioOutputConfiguration", required=False)
        self.audio_out = AudioFormat.read(config, "promptStart.audioOutputConfiguration", voice=True) if config else None
        tools = obj(body, "promptStart", "toolConfiguration", required=False)
        self.tools = _tool_plan(tools) if tools is not None else None
        self.prompt, self.prompt_name, self.prompt_contents = prompt, prompt, 0
        self._logged("promptStart", body)

    def _check_prompt(self, event: str, body: dict) -> None:
        prompt = string(body, event, "promptName")
        if self.prompt is None:
            raise invalid(f"{event} for prompt {prompt!r}, but no prompt is open; send promptStart first.")
        if prompt != self.prompt:
            raise invalid(f"{event}.promptName {prompt!r} does not match the open prompt {self.prompt!r}.")

    def _content(self, event: str, body: dict, kind: str | None) -> _Content:
        self._check_prompt(event, body)
        name = string(body, event, "contentName")
        content = self.open.get(name)
        if content is None:
            raise invalid(f"{event} for content {name!r}, which is not open; send contentStart first.")
        if kind is not None and content.type != kind:
            raise invalid(f"{event} in content {name!r}, which is of type {content.type}.")
        return content

    def _on_contentStart(self, body: dict) -> None:
        self._check_prompt("contentStart", body)
        name = string(body, "contentStart", "contentName")
        if name in self.names:
            raise invalid(f"contentStart.contentName {name!r} was already used; each content needs a unique name.")
        kind = one_of(body, "contentStart", "type", CONTENT_TYPES)
        role = one_of(body, "contentStart", "role", ROLES)
        interactive = body.get("interactive", False)
        if not isinstance(interactive, bool):
            raise invalid("contentStart.interactive must be a boolean.")
        content = _Content(name, kind, role, interactive)
        if role == "SYSTEM" and self.prompt_contents:
            raise invalid("the SYSTEM content must be the first content of a prompt.")
        if kind == "TEXT":
            config = obj(body, "contentStart", "textInputConfiguration")
            if config.get("mediaType") != "text/plain":
                raise invalid("contentStart.textInputConfiguration.mediaType must be text/plain.")
            if role == "TOOL":
                raise invalid("a TEXT content cannot have the role TOOL; tool results use type TOOL.")
        elif kind == "AUDIO":
            if role not in ("USER", "SYSTEM_SPEECH"):
                raise invalid(f"an AUDIO content must have the role USER, got {role}.")
            fmt = AudioFormat.read(obj(body, "contentStart", "audioInputConfiguration"),
                                   "contentStart.audioInputConfiguration")
            content.voice = audio.VoiceActivity(fmt.rate, self.endpointing)
        else:  # TOOL
            if role != "TOOL":
                raise invalid(f"a TOOL content must have the role TOOL, got {role}.")
            config = obj(body, "contentStart", "toolResultInputConfiguration")
            use_id = string(config, "contentStart.toolResultInputConfiguration", "toolUseId")
            if use_id not in self.pending_tools:
                raise invalid(f"toolUseId {use_id!r} does not name a tool use of this session awaiting its result.")
            content.tool_use_id = use_id
        self.names.add(name)
        self.open[name] = content
        self.prompt_contents += 1
        self._logged("contentStart", body)

    def _on_textInput(self, body: dict) -> None:
        content = self._content("textInput", body, "TEXT")
        content.parts.append(_text(body, "textInput"))
        self._logged("textInput", body)

    def _on_toolResult(self, body: dict) -> None:
        content = self._content("toolResult", body, "TOOL")
        content.parts.append(_text(body, "toolResult"))
        self._logged("toolResult", body)

    def _on_audioInput(self, body: dict) -> None:
        content = self._content("audioInput", body, "AUDIO")
        encoded = string(body, "audioInput", "content")
        try:
            pcm = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise invalid("audioInput.content must be base64-encoded 16-bit LPCM.") from None
        voice = content.voice
        assert voice is not None
        started, ended = voice.feed(pcm)
        if started and self._answering is not None and not self._answering.done():
            self._interrupted = True  # barge-in: the user speaks over the answer
            self._answering.cancel()
        if ended:
            self._queue(_Turn(audio.placeholder_transcript(voice.speech_s), voice.take_turn()))
        self.input_log.append({"event": {"audioInput": {**body, "content": f"<{len(pcm)} bytes of LPCM>"}}})

    def _on_contentEnd(self, body: dict) -> None:
        content = self._content("contentEnd", body, None)
        del self.open[content.name]
        text = "".join(content.parts)
        if content.type == "AUDIO":
            voice = content.voice
            assert voice is not None
            if voice.speaking:
                self._queue(_Turn(audio.placeholder_transcript(voice.speech_s), voice.take_turn()))
        elif content.type == "TOOL":
            assert content.tool_use_id is not None
            self.pending_tools.discard(content.tool_use_id)
            self._queue(_ToolResult(content.tool_use_id, text))
        elif content.role == "USER" and content.interactive:
            self._queue(_Turn(text))
        elif text:
            self._changes.put_nowait(_Add(content.role, text))
        self._logged("contentEnd", body)

    def _on_promptEnd(self, body: dict) -> None:
        self._check_prompt("promptEnd", body)
        if self.open:
            raise invalid(f"promptEnd while content {next(iter(self.open))!r} is open; send its contentEnd first.")
        self.prompt = None
        self._logged("promptEnd", body)

    def _on_sessionEnd(self, body: dict) -> None:
        self.ended = True
        self._logged("sessionEnd", body)

    def _queue(self, change: object) -> None:
        self._busy += 1
        self._changes.put_nowait(change)

    # -- answers -------------------------------------------------------------------------------------------

    async def _respond(self) -> None:
        try:
            while True:
                change = await self._changes.get()
                if change is _STOP:
                    self._out.put_nowait(_STOP)
                    return
                if isinstance(change, _Add):
                    self._append("system" if change.role in ("SYSTEM", "SYSTEM_SPEECH") else change.role.lower(),
                                 change.text)
                    continue
                try:
                    await self._answer_change(change)
                finally:
                    self._busy -= 1
        except BedrockError as error:
            self._fail(error)
        except Exception:
            log.exception("Nova Sonic session %s failed", self.session_id)
            self._fail(BedrockError("InternalServerException"))

    async def _answer_change(self, change: _Turn | _ToolResult) -> None:
        completion = self._completion
        if completion is None:
            completion = self._completion = Completion(self.session_id, self.prompt_name, str(uuid.uuid4()))
            self._emit(completion.start())
        if isinstance(change, _ToolResult):
            self._append("user", render_result(change.text))
            after_results = True
        else:
            after_results = False
            if change.speech_s is not None:  # what "recognition" heard, before the answer (PLACEHOLDER)
                content_id = str(uuid.uuid4())
                self._emit(completion.text_start(content_id, "USER", "FINAL"))
                self._emit(completion.text(content_id, "USER", change.text))
                self._emit(completion.content_end(content_id, "TEXT", "END_TURN"))
            self._append("user", change.text)
        speech_in = round((change.speech_s or 0) * SPEECH_TOKENS_PER_SECOND) if isinstance(change, _Turn) else 0
        speaker = _Speaker(self, completion)
        self._interrupted = False
        self._answering = asyncio.create_task(self._generate(completion, speaker, after_results))
        try:
            result = await self._answering
        except asyncio.CancelledError:
            if not self._interrupted:
                raise
            result = None
        finally:
            self._answering = None
        if result is None:  # barge-in
            speaker.interrupt()
            self._append("assistant", speaker.spoken)
            self._finish(completion, Tokens(input_speech=speech_in, output_speech=speaker.speech_tokens), "INTERRUPTED")
            return
        finished, used_tool = result
        delta = Tokens(finished.input_tokens, speech_in, finished.output_tokens, speaker.speech_tokens)
        if used_tool:  # the completion stays open for the tool's result
            self.totals = self.totals + delta
            self._emit(completion.usage(delta, self.totals))
            return
        speaker.finish()
        self._append("assistant", speaker.spoken)
        self._finish(completion, delta, "END_TURN")

    def _finish(self, completion: Completion, delta: Tokens, stop_reason: str) -> None:
        self.totals = self.totals + delta
        self._emit(completion.usage(delta, self.totals))
        self._emit(completion.end(stop_reason))
        self._completion = None

    async def _generate(self, completion: Completion, speaker: "_Speaker", after_results: bool
                        ) -> tuple[Finished, bool]:
        tools = replace(self.tools, after_results=after_results) if self.tools is not None else None
        call = Call(OPERATION, self.model_id, self.entry, self.family, _merged(self.messages), tools=tools)
        finished: Finished | None = None
        used_tool = False
        async with aclosing(self.service.generate(call, self.sampling)) as events:
            async for event in events:
                if isinstance(event, Failed):
                    raise _stream_failure(event.error)
                if isinstance(event, TextDelta):
                    speaker.add(event.text)
                elif isinstance(event, ToolUse):
                    speaker.flush_all()
                    used_tool = True
                    self._tool_use(completion, event)
                elif isinstance(event, Finished):
                    finished = event
        assert finished is not None
        return finished, used_tool

    def _tool_use(self, completion: Completion, use: ToolUse) -> None:
        content_id = str(uuid.uuid4())
        self._emit(completion.tool_start(content_id))
        self._emit(completion.tool_use(content_id, use.name, use.tool_use_id, use.input))
        self._emit(completion.content_end(content_id, "TOOL", "TOOL_USE"))
        self.pending_tools.add(use.tool_use_id)
        self._append("assistant", render_call(use.name, use.input))

    def _append(self, role: str, text: str) -> None:
        if text:
            self.messages.append({"role": role, "content": text})


class _Speaker:
    """Turns the answer's text into Nova Sonic's output, sentence by sentence: the SPECULATIVE text (what the
    model plans to say), its audio (PLACEHOLDER tone), then the FINAL text (what was said). The last FINAL text
    ends with END_TURN, so it waits until the next sentence or the end of the answer shows whether it is last."""

    def __init__(self, session: Session, completion: Completion) -> None:
        self.session = session
        self.completion = completion
        self._buffer = ""
        self._final: str | None = None  # the FINAL text of the last sentence spoken, not yet sent
        self.spoken = ""
        self.speech_tokens = 0

    def add(self, text: str) -> None:
        self._buffer += text
        *whole, self._buffer = _SENTENCE.split(self._buffer)
        for sentence in whole:
            self._say(sentence)

    def flush_all(self) -> None:
        """Say what is buffered and send the pending FINAL text (a tool call follows)."""
        if self._buffer.strip():
            self._say(self._buffer)
        self._buffer = ""
        self._send_final("PARTIAL_TURN")

    def finish(self) -> None:
        if self._buffer.strip():
            self._say(self._buffer)
        self._buffer = ""
        self._send_final("END_TURN")

    def interrupt(self) -> None:
        self._buffer = ""
        self._send_final("INTERRUPTED")

    def _say(self, sentence: str) -> None:
        sentence = sentence.strip()
        if not sentence:
            return
        self._send_final("PARTIAL_TURN")
        c, emit = self.completion, self.session._emit
        content_id = str(uuid.uuid4())
        emit(c.text_start(content_id, "ASSISTANT", "SPECULATIVE"))
        emit(c.text(content_id, "ASSISTANT", sentence))
        emit(c.content_end(content_id, "TEXT", "PARTIAL_TURN"))
        fmt = self.session.audio_out
        if fmt is not None:
            seconds = audio.speech_seconds(sentence)
            content_id = str(uuid.uuid4())
            emit(c.audio_start(content_id, fmt))
            for piece in audio.chunks(audio.tone(seconds, fmt.rate), fmt.rate):
                emit(c.audio(content_id, base64.b64encode(piece).decode()))
            emit(c.content_end(content_id, "AUDIO", "PARTIAL_TURN"))
            self.speech_tokens += round(seconds * SPEECH_TOKENS_PER_SECOND)
        self.spoken = f"{self.spoken} {sentence}".strip()
        self._final = sentence

    def _send_final(self, stop_reason: str) -> None:
        if self._final is None:
            return
        c, emit = self.completion, self.session._emit
        content_id = str(uuid.uuid4())
        emit(c.text_start(content_id, "ASSISTANT", "FINAL"))
        emit(c.text(content_id, "ASSISTANT", self._final))
        emit(c.content_end(content_id, "TEXT", stop_reason))
        self._final = None


async def _pump(inputs: AsyncIterator[bytes], arrived: asyncio.Queue) -> None:
    try:
        async for raw in inputs:
            await arrived.put(raw)
    except Exception as exc:  # a malformed frame (BedrockError) or a lost connection: the reader raises it
        await arrived.put(exc)
        return
    await arrived.put(_STOP)


def _text(body: dict, event: str) -> str:
    content = body.get("content")
    if not isinstance(content, str):
        raise invalid(f"{event}.content is required and must be a string.")
    return content


def _merged(messages: list[dict]) -> list[dict]:
    """Consecutive contents of one role become one chat message (chat templates expect roles to alternate)."""
    merged: list[dict] = []
    for message in messages:
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1] = {"role": message["role"], "content": merged[-1]["content"] + "\n" + message["content"]}
        else:
            merged.append(dict(message))
    return merged


def _tool_plan(config: dict) -> ToolPlan:
    """promptStart.toolConfiguration: Converse's tool checks, with Nova Sonic's schema as a JSON string."""
    tools = config.get("tools")
    if not isinstance(tools, list) or not tools:
        raise invalid("promptStart.toolConfiguration.tools must be a non-empty list.")
    checked = []
    for i, entry in enumerate(tools):
        spec = entry.get("toolSpec") if isinstance(entry, dict) else None
        where = f"promptStart.toolConfiguration.tools.{i}.toolSpec"
        if not isinstance(spec, dict):
            raise invalid(f"{where} is required.")
        name = string(spec, where, "name")
        schema = (spec.get("inputSchema") or {}).get("json") if isinstance(spec.get("inputSchema"), dict) else None
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except ValueError:
                raise invalid(f"{where}.inputSchema.json is not valid JSON.") from None
        checked.append(checked_tool(i, name, spec.get("description") or "", schema, f"{where}.inputSchema.json"))
    check_unique([t.name for t in checked])
    choice = config.get("toolChoice") or {"auto": {}}
    kind = next(iter(choice), "auto") if isinstance(choice, dict) else "auto"
    if kind not in ("auto", "any", "tool"):
        raise invalid("promptStart.toolConfiguration.toolChoice must be auto, any or tool.")
    forced = (choice.get("tool") or {}).get("name") if kind == "tool" else None
    if kind == "tool" and forced not in {t.name for t in checked}:
        raise invalid("promptStart.toolConfiguration.toolChoice.tool.name must name one of the tools.")
    return ToolPlan(tuple(checked), kind, forced, new_id=lambda: str(uuid.uuid4()))


def _stream_failure(error: BaseException) -> BedrockError:
    """A generation failure inside the session, as this operation's output union names it."""
    if isinstance(error, BedrockError):
        return error
    message = f"The model returned the following errors: {error}"
    return BedrockError("ModelStreamErrorException", message, originalStatusCode=424, originalMessage=message)
