"""Nova Sonic's session state machine without a server: input events in, output events out.

The model is a stand-in that records each call and answers with scripted generation events, so these tests pin
the protocol (event order, ids, stop reasons, errors, limits), not the model. Real clients over HTTP/2 are in
tests/test_bidirectional_sdk.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from array import array

import pytest

from emulator.api.sonic import audio
from emulator.api.sonic.session import Limits, Session
from emulator.catalog import Entry
from emulator.engine.types import Finished, TextDelta, ToolUse
from emulator.families import text_family
from emulator.protocol.errors import BedrockError

PROMPT = "p1"


class FakeService:
    """Answers each call with the next scripted list of events; remembers the calls."""

    def __init__(self, *answers, delay: float = 0.0) -> None:
        self.answers = list(answers)
        self.calls = []
        self.delay = delay

    def generate(self, call, params):
        self.calls.append((call, params))
        events = self.answers.pop(0) if self.answers else [TextDelta("Okay."), Finished("end_turn", None, 5, 2, "Okay.")]
        delay = self.delay

        async def stream():
            for event in events:
                if delay:
                    await asyncio.sleep(delay)
                yield event
        return stream()


def answer(*texts: str, input_tokens: int = 10) -> list:
    return [*(TextDelta(t) for t in texts), Finished("end_turn", None, input_tokens, len(texts), "".join(texts))]


def ev(name: str, **body) -> bytes:
    return json.dumps({"event": {name: body}}).encode()


def session_start(**config) -> bytes:
    return ev("sessionStart", inferenceConfiguration=config or {"maxTokens": 256, "topP": 0.9, "temperature": 0.5})


def prompt_start(audio_out: bool = True, tools: list | None = None) -> bytes:
    body = {"promptName": PROMPT, "textOutputConfiguration": {"mediaType": "text/plain"}}
    if audio_out:
        body["audioOutputConfiguration"] = {"mediaType": "audio/lpcm", "sampleRateHertz": 24000, "sampleSizeBits": 16,
                                            "channelCount": 1, "voiceId": "matthew", "encoding": "base64",
                                            "audioType": "SPEECH"}
    if tools is not None:
        body["toolUseOutputConfiguration"] = {"mediaType": "application/json"}
        body["toolConfiguration"] = {"tools": tools}
    return ev("promptStart", **body)


def text(name: str, role: str, content: str, interactive: bool = False) -> list[bytes]:
    return [
        ev("contentStart", promptName=PROMPT, contentName=name, type="TEXT", role=role, interactive=interactive,
           textInputConfiguration={"mediaType": "text/plain"}),
        ev("textInput", promptName=PROMPT, contentName=name, content=content),
        ev("contentEnd", promptName=PROMPT, contentName=name),
    ]


def close() -> list[bytes]:
    return [ev("promptEnd", promptName=PROMPT), ev("sessionEnd")]


def entry() -> Entry:
    return Entry(match="amazon.nova-sonic*", family="nova-sonic", local="x", max_output_tokens=10000)


async def _run(service, inputs, limits=Limits(), pause_before_close: float = 0.0):
    async def source():
        for item in inputs:
            if isinstance(item, float):
                await asyncio.sleep(item)
            else:
                yield item

    session = Session(service, "amazon.nova-sonic-v1:0", entry(), text_family("nova"), limits)
    out, error = [], None
    try:
        async for event in session.run(source()):
            out.append(event["event"])
    except BedrockError as exc:
        error = exc
    return session, out, error


def run(service, inputs, **kw):
    return asyncio.run(_run(service, inputs, **kw))


def names(events: list[dict]) -> list[str]:
    return [next(iter(e)) for e in events]


def shape(events: list[dict]) -> list[str]:
    """Each event as name[/type/role/stage]/stopReason, for order assertions."""
    out = []
    for e in events:
        [(name, body)] = e.items()
        parts = [name]
        if name == "contentStart":
            parts += [body["type"], body["role"]]
            if "additionalModelFields" in body:
                parts.append(json.loads(body["additionalModelFields"])["generationStage"])
        if name in ("contentEnd", "completionEnd"):
            parts.append(body["stopReason"])
        out.append("/".join(parts))
    return out


def test_a_text_turn_answers_sentence_by_sentence_with_speculative_text_audio_and_final_text():
    service = FakeService(answer("Hello there. ", "How can I help?"))
    inputs = [session_start(), prompt_start(), *text("sys", "SYSTEM", "Be brief."),
              *text("u1", "USER", "Hi!", interactive=True), 0.05, *close()]
    session, out, error = run(service, inputs)
    assert error is None
    compact = [s for s in shape(out) if s != "audioOutput"]
    assert compact == [
        "completionStart",
        "contentStart/TEXT/ASSISTANT/SPECULATIVE", "textOutput", "contentEnd/PARTIAL_TURN",  # "Hello there."
        "contentStart/AUDIO/ASSISTANT", "contentEnd/PARTIAL_TURN",
        "contentStart/TEXT/ASSISTANT/FINAL", "textOutput", "contentEnd/PARTIAL_TURN",
        "contentStart/TEXT/ASSISTANT/SPECULATIVE", "textOutput", "contentEnd/PARTIAL_TURN",  # "How can I help?"
        "contentStart/AUDIO/ASSISTANT", "contentEnd/PARTIAL_TURN",
        "contentStart/TEXT/ASSISTANT/FINAL", "textOutput", "contentEnd/END_TURN",  # the last sentence
        "usageEvent", "completionEnd/END_TURN",
    ]
    texts = [e["textOutput"]["content"] for e in out if "textOutput" in e]
    assert texts == ["Hello there.", "Hello there.", "How can I help?", "How can I help?"]
    ids = {(b["sessionId"], b["promptName"], b["completionId"]) for e in out for b in e.values()}
    assert len(ids) == 1 and next(iter(ids))[1] == PROMPT
    call, params = service.calls[0]
    assert call.operation == "InvokeModelWithBidirectionalStream"
    assert call.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    assert (params.max_new_tokens, params.top_p, params.temperature) == (256, 0.9, 0.5)
    assert session.messages[-1] == {"role": "assistant", "content": "Hello there. How can I help?"}


def test_placeholder_audio_is_24khz_lpcm_as_long_as_the_sentence_takes_to_say():
    service = FakeService(answer("One two three four five."))
    _, out, _ = run(service, [session_start(), prompt_start(), *text("u", "USER", "Hi", True), 0.05, *close()])
    pcm = b"".join(base64.b64decode(e["audioOutput"]["content"]) for e in out if "audioOutput" in e)
    assert len(pcm) == 2 * 24000 * 2  # five words at 2.5 words a second: 2 s of 16-bit samples
    start = next(e["contentStart"] for e in out if e.get("contentStart", {}).get("type") == "AUDIO")
    assert start["audioOutputConfiguration"] == {"audioType": "SPEECH", "channelCount": 1, "encoding": "base64",
                                                 "mediaType": "audio/lpcm", "sampleRateHertz": 24000,
                                                 "sampleSizeBits": 16}


def test_the_conversation_is_kept_across_turns_and_usage_accumulates():
    service = FakeService(answer("First answer.", input_tokens=7), answer("Second answer.", input_tokens=20))
    inputs = [session_start(), prompt_start(audio_out=False), *text("u1", "USER", "One?", True), 0.05,
              *text("u2", "USER", "Two?", True), 0.05, *close()]
    _, out, error = run(service, inputs)
    assert error is None
    assert service.calls[1][0].messages == [{"role": "user", "content": "One?"},
                                            {"role": "assistant", "content": "First answer."},
                                            {"role": "user", "content": "Two?"}]
    usage = [e["usageEvent"] for e in out if "usageEvent" in e]
    assert [u["totalInputTokens"] for u in usage] == [7, 27]
    assert usage[1]["details"]["delta"]["input"]["textTokens"] == 20
    assert len({e["completionStart"]["completionId"] for e in out if "completionStart" in e}) == 2
    assert "audioOutput" not in names(out)  # no audioOutputConfiguration: text only


def test_tool_use_round_trip_keeps_one_completion_open_until_the_result_is_answered():
    tool = {"toolSpec": {"name": "getWeather", "description": "Weather for a city",
                         "inputSchema": {"json": json.dumps({"type": "object", "properties": {"city": {"type": "string"}},
                                                             "required": ["city"]})}}}
    call_events = [ToolUse("t-1", "getWeather", {"city": "Paris"}), Finished("tool_use", None, 30, 8, "")]
    service = FakeService(call_events, answer("It is sunny."))
    inputs = [session_start(), prompt_start(audio_out=False, tools=[tool]), *text("u1", "USER", "Weather in Paris?", True),
              0.05,
              ev("contentStart", promptName=PROMPT, contentName="r1", interactive=False, type="TOOL", role="TOOL",
                 toolResultInputConfiguration={"toolUseId": "t-1", "type": "TEXT",
                                               "textInputConfiguration": {"mediaType": "text/plain"}}),
              ev("toolResult", promptName=PROMPT, contentName="r1", content=json.dumps({"sky": "sunny"})),
              ev("contentEnd", promptName=PROMPT, contentName="r1"), 0.05, *close()]
    _, out, error = run(service, inputs)
    assert error is None
    assert shape(out)[:5] == ["completionStart", "contentStart/TOOL/TOOL", "toolUse", "contentEnd/TOOL_USE", "usageEvent"]
    use = out[2]["toolUse"]
    assert (use["toolName"], use["toolUseId"], json.loads(use["content"])) == ("getWeather", "t-1", {"city": "Paris"})
    assert shape(out)[-2:] == ["usageEvent", "completionEnd/END_TURN"]
    assert len({b["completionId"] for e in out for b in e.values()}) == 1
    plan = service.calls[1][0].tools
    assert plan.after_results and [t.name for t in plan.tools] == ["getWeather"]
    assert "sunny" in service.calls[1][0].messages[-1]["content"]


def _tone(seconds: float, rate: int = 16000, amplitude: int = 8000) -> bytes:
    return array("h", (int(amplitude * math.sin(i * 0.2)) for i in range(int(seconds * rate)))).tobytes()


def _audio_events(pcm: bytes, name: str = "a1") -> list[bytes]:
    frame = 1024
    return [ev("audioInput", promptName=PROMPT, contentName=name,
               content=base64.b64encode(pcm[i:i + frame]).decode()) for i in range(0, len(pcm), frame)]


def audio_start(name: str = "a1") -> bytes:
    return ev("contentStart", promptName=PROMPT, contentName=name, type="AUDIO", interactive=True, role="USER",
              audioInputConfiguration={"mediaType": "audio/lpcm", "sampleRateHertz": 16000, "sampleSizeBits": 16,
                                       "channelCount": 1, "audioType": "SPEECH", "encoding": "base64"})


def test_speech_then_a_pause_is_a_placeholder_user_turn_with_its_duration():
    service = FakeService(answer("I heard you."))
    pcm = _tone(1.0) + bytes(2 * 16000)  # one second of "speech", one of silence
    inputs = [session_start(), prompt_start(), audio_start(), *_audio_events(pcm), 0.1,
              ev("contentEnd", promptName=PROMPT, contentName="a1"), *close()]
    _, out, error = run(service, inputs)
    assert error is None
    assert shape(out)[:4] == ["completionStart", "contentStart/TEXT/USER/FINAL", "textOutput", "contentEnd/END_TURN"]
    heard = out[2]["textOutput"]["content"]
    assert heard.startswith("[audio input: ") and heard.endswith(" s of speech]")
    seconds = float(heard.split(": ")[1].split(" s")[0])
    assert 1.0 <= seconds <= 1.1  # the speech and the pause inside it, not the trailing silence
    assert service.calls[0][0].last_user_text == heard
    assert len(service.calls) == 1  # the contentEnd after the pause starts no second turn
    usage = next(e["usageEvent"] for e in out if "usageEvent" in e)
    assert usage["details"]["delta"]["input"]["speechTokens"] == round(seconds * 25)


def test_silence_alone_is_no_turn():
    service = FakeService()
    inputs = [session_start(), prompt_start(), audio_start(), *_audio_events(bytes(32000)),
              ev("contentEnd", promptName=PROMPT, contentName="a1"), *close()]
    _, out, error = run(service, inputs)
    assert (out, error, service.calls) == ([], None, [])


def test_speech_over_the_answer_interrupts_it():
    slow = [*(TextDelta(f"Word{i} is here. ") for i in range(40)), Finished("end_turn", None, 5, 40, "")]
    service = FakeService(slow, answer("Yes?"), delay=0.02)
    inputs = [session_start(), prompt_start(audio_out=False), audio_start(),
              *_audio_events(_tone(0.5) + bytes(2 * 16000)), 0.15, *_audio_events(_tone(0.3)), 0.3,
              ev("contentEnd", promptName=PROMPT, contentName="a1"), 0.1, *close()]
    _, out, error = run(service, inputs)
    assert error is None
    ends = [s for s in shape(out) if s.startswith("completionEnd")]
    assert ends == ["completionEnd/INTERRUPTED", "completionEnd/END_TURN"]
    assert "contentEnd/INTERRUPTED" in shape(out)
    spoken = service.calls[1][0].messages[1]["content"]  # what was said before the interruption
    assert spoken.startswith("Word0 is here.") and "Word39" not in spoken


@pytest.mark.parametrize("inputs, fragment", [
    ([ev("promptStart", promptName="p")], "the first event of a session must be sessionStart, got promptStart."),
    ([b"{not json"], "the chunk bytes are not a JSON event."),
    ([ev("bogus")], "unknown event 'bogus'"),
    ([session_start(), session_start()], "sessionStart was already received"),
    ([ev("sessionStart", inferenceConfiguration={"temperature": 2})], "temperature must be between 0 and 1, got 2."),
    ([session_start(), prompt_start(), *text("a", "USER", "x")[1:]], "textInput for content 'a', which is not open"),
    ([session_start(), ev("contentStart", promptName="p")], "no prompt is open; send promptStart first."),
    ([session_start(), prompt_start(), ev("promptEnd", promptName="other")], "does not match the open prompt 'p1'"),
    ([session_start(), prompt_start(), *text("a", "USER", "x"), *text("a", "USER", "y")], "'a' was already used"),
    ([session_start(), prompt_start(), text("a", "USER", "x")[0], ev("promptEnd", promptName=PROMPT)],
     "promptEnd while content 'a' is open"),
    ([session_start(), prompt_start(), *text("a", "USER", "x"), *text("s", "SYSTEM", "late")],
     "the SYSTEM content must be the first content of a prompt."),
    ([session_start(), prompt_start(), audio_start(), ev("audioInput", promptName=PROMPT, contentName="a1", content="@@")],
     "audioInput.content must be base64-encoded 16-bit LPCM."),
    ([session_start(), prompt_start(), ev("contentStart", promptName=PROMPT, contentName="t", type="TOOL", role="TOOL",
                                          toolResultInputConfiguration={"toolUseId": "nope", "type": "TEXT"})],
     "toolUseId 'nope' does not name a tool use"),
])
def test_out_of_order_or_malformed_events_end_the_session_with_a_validation_exception(inputs, fragment):
    _, out, error = run(FakeService(), inputs)
    assert error is not None and error.code == "ValidationException"
    assert error.message.startswith("Invalid input request: ") and fragment in error.message


def test_a_silent_client_times_out_but_not_while_the_model_answers():
    service = FakeService(answer("A.", "B."), delay=0.15)  # the answer takes longer than the idle limit
    limits = Limits(session_s=60, idle_s=0.2)
    _, out, error = run(service, [session_start(), prompt_start(audio_out=False), *text("u", "USER", "x", True), 5.0],
                        limits=limits)
    assert "completionEnd" in names(out)
    assert error is not None and error.code == "ModelTimeoutException"
    assert error.message == "The connection was closed because a request was not received within the timeout period."


def test_a_session_ends_at_its_maximum_length():
    _, _, error = run(FakeService(), [session_start(), 0.1, session_start(), 0.1, 5.0],
                      limits=Limits(session_s=0.05, idle_s=10))
    assert error is not None and error.code == "ModelTimeoutException" and "maximum duration" in error.message


def test_voice_activity_detector_follows_speech_and_pauses():
    vad = audio.VoiceActivity(16000, audio.Endpointing.of("HIGH"))
    assert vad.feed(bytes(3200)) == (False, False)
    assert vad.feed(_tone(0.3)) == (True, False)
    assert vad.feed(bytes(2 * 9600)) == (False, True)  # 0.6 s of silence ends the turn at HIGH sensitivity
    assert 0.3 <= vad.take_turn() <= 0.8 and not vad.speaking
