"""Nova Sonic's JSON events: reading the input events a client sends, building the output events it receives.

Shapes follow AWS's "Handling input events with the bidirectional API" and "Handling output events with the
bidirectional API" (Amazon Nova user guide) and the AWS samples that drive them. Every input event is
`{"event": {<name>: {...}}}` inside a `chunk` whose `bytes` carry the JSON; so is every output event.
The wording of validation messages is the emulator's (AWS does not document it); each names the event and field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ...protocol.errors import BedrockError

INPUT_EVENTS = (
    "sessionStart", "promptStart", "contentStart", "textInput", "audioInput", "toolResult", "contentEnd",
    "promptEnd", "sessionEnd",
)
CONTENT_TYPES = ("TEXT", "AUDIO", "TOOL")
ROLES = ("SYSTEM", "USER", "ASSISTANT", "TOOL", "SYSTEM_SPEECH")
SAMPLE_RATES = (8000, 16000, 24000)
MAX_EVENT_BYTES = 1024 * 1024  # one input event (an audio frame is a few kB)


def invalid(detail: str) -> BedrockError:
    return BedrockError("ValidationException", f"Invalid input request: {detail}")


def parse(raw: bytes) -> tuple[str, dict]:
    """One input event's (name, body), or the ValidationException a malformed one gets."""
    if len(raw) > MAX_EVENT_BYTES:
        raise invalid(f"an input event may be at most {MAX_EVENT_BYTES} bytes, this one has {len(raw)}.")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise invalid("the chunk bytes are not a JSON event.") from None
    event = doc.get("event") if isinstance(doc, dict) else None
    if not isinstance(event, dict) or len(event) != 1:
        raise invalid('each chunk must carry one event: {"event": {"<eventName>": {...}}}.')
    [(name, body)] = event.items()
    if name not in INPUT_EVENTS:
        raise invalid(f"unknown event {name!r}; expected one of {', '.join(INPUT_EVENTS)}.")
    if not isinstance(body, dict):
        raise invalid(f"{name} must be a JSON object.")
    return name, body


def string(body: dict, event: str, key: str, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise invalid(f"{event}.{key} is required and must be a non-empty string.")
    return value


def number(body: dict, event: str, key: str, low: float, high: float, integer: bool = False) -> float | int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise invalid(f"{event}.{key} must be {'an integer' if integer else 'a number'}.")
    if not low <= value <= high:
        raise invalid(f"{event}.{key} must be between {low} and {high}, got {value}.")
    return value


def one_of(body: dict, event: str, key: str, allowed: tuple[str, ...], required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if value not in allowed:
        raise invalid(f"{event}.{key} must be one of {', '.join(allowed)}, got {value!r}.")
    return value


def obj(body: dict, event: str, key: str, required: bool = True) -> dict | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise invalid(f"{event}.{key} is required and must be a JSON object.")
    return value


@dataclass(frozen=True)
class AudioFormat:
    rate: int
    voice: str | None = None

    @classmethod
    def read(cls, config: dict, where: str, voice: bool = False) -> "AudioFormat":
        if config.get("mediaType") != "audio/lpcm":
            raise invalid(f"{where}.mediaType must be audio/lpcm.")
        rate = config.get("sampleRateHertz")
        if rate not in SAMPLE_RATES:
            raise invalid(f"{where}.sampleRateHertz must be one of {', '.join(map(str, SAMPLE_RATES))}, got {rate!r}.")
        if config.get("sampleSizeBits", 16) != 16:
            raise invalid(f"{where}.sampleSizeBits must be 16.")
        if config.get("channelCount", 1) != 1:
            raise invalid(f"{where}.channelCount must be 1.")
        if config.get("encoding", "base64") != "base64":
            raise invalid(f"{where}.encoding must be base64.")
        if config.get("audioType", "SPEECH") != "SPEECH":
            raise invalid(f"{where}.audioType must be SPEECH.")
        name = config.get("voiceId") if voice else None
        if voice and not isinstance(name, str):
            raise invalid(f"{where}.voiceId is required and must be a string.")
        return cls(rate, name)

    def output_configuration(self) -> dict:
        return {"audioType": "SPEECH", "channelCount": 1, "encoding": "base64", "mediaType": "audio/lpcm",
                "sampleRateHertz": self.rate, "sampleSizeBits": 16}


@dataclass
class Completion:
    """The identifiers every output event of one response carries."""

    session_id: str
    prompt_name: str
    completion_id: str

    def ids(self) -> dict:
        return {"completionId": self.completion_id, "promptName": self.prompt_name, "sessionId": self.session_id}

    def start(self) -> dict:
        return {"completionStart": self.ids()}

    def end(self, stop_reason: str) -> dict:
        return {"completionEnd": {**self.ids(), "stopReason": stop_reason}}

    def text_start(self, content_id: str, role: str, stage: str) -> dict:
        return {"contentStart": {
            "additionalModelFields": json.dumps({"generationStage": stage}, separators=(",", ":")),
            **self.ids(), "contentId": content_id, "role": role, "textOutputConfiguration": {"mediaType": "text/plain"},
            "type": "TEXT",
        }}

    def text(self, content_id: str, role: str, text: str) -> dict:
        return {"textOutput": {**self.ids(), "content": text, "contentId": content_id, "role": role}}

    def audio_start(self, content_id: str, audio: AudioFormat) -> dict:
        return {"contentStart": {
            "audioOutputConfiguration": audio.output_configuration(), **self.ids(), "contentId": content_id,
            "role": "ASSISTANT", "type": "AUDIO",
        }}

    def audio(self, content_id: str, b64: str) -> dict:
        return {"audioOutput": {**self.ids(), "content": b64, "contentId": content_id}}

    def tool_start(self, content_id: str) -> dict:
        return {"contentStart": {
            **self.ids(), "contentId": content_id, "role": "TOOL",
            "toolUseOutputConfiguration": {"mediaType": "application/json"}, "type": "TOOL",
        }}

    def tool_use(self, content_id: str, name: str, use_id: str, arguments: dict) -> dict:
        return {"toolUse": {**self.ids(), "content": json.dumps(arguments, ensure_ascii=False), "contentId": content_id,
                            "toolName": name, "toolUseId": use_id}}

    def content_end(self, content_id: str, kind: str, stop_reason: str) -> dict:
        return {"contentEnd": {**self.ids(), "contentId": content_id, "stopReason": stop_reason, "type": kind}}

    def usage(self, delta: "Tokens", total: "Tokens") -> dict:
        return {"usageEvent": {
            **self.ids(), "details": {"delta": delta.as_details(), "total": total.as_details()},
            "totalInputTokens": total.input, "totalOutputTokens": total.output, "totalTokens": total.input + total.output,
        }}


@dataclass
class Tokens:
    """Token counts split as Nova Sonic's usageEvent splits them (speech tokens: the placeholder's estimate)."""

    input_text: int = 0
    input_speech: int = 0
    output_text: int = 0
    output_speech: int = 0

    @property
    def input(self) -> int:
        return self.input_text + self.input_speech

    @property
    def output(self) -> int:
        return self.output_text + self.output_speech

    def __add__(self, other: "Tokens") -> "Tokens":
        return Tokens(self.input_text + other.input_text, self.input_speech + other.input_speech,
                      self.output_text + other.output_text, self.output_speech + other.output_speech)

    def as_details(self) -> dict:
        return {"input": {"speechTokens": self.input_speech, "textTokens": self.input_text},
                "output": {"speechTokens": self.output_speech, "textTokens": self.output_text}}
