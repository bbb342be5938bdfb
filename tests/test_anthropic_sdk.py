"""The Anthropic SDK's `AnthropicBedrock` client, pointed at the emulator with `base_url`, works end to end.

It sends Claude's Messages body to InvokeModel (raw `:` in the path, its own `anthropic_version`), decodes the
stream with botocore's event-stream parser and validates replies with its pydantic models.
"""

from __future__ import annotations

import anthropic
import pytest

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
# anthropic 2.x has no `temperature` argument any more; sampling controls travel in `extra_body`.
GREEDY = {"extra_body": {"temperature": 0}}
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]



def test_create_honours_max_tokens(claude):
    message = claude.messages.create(model=MODEL, max_tokens=3, messages=QUESTION, **GREEDY)
    assert message.id.startswith("msg_bdrk_")
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3 and message.usage.input_tokens > 0
    assert message.content[0].type == "text" and message.content[0].text


def test_stop_sequence(claude):
    message = claude.messages.create(model=MODEL, max_tokens=12, messages=QUESTION,
                                     stop_sequences=["France"], system="Answer in one sentence.", **GREEDY)
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "France"
    assert "France" not in message.content[0].text


def test_stream_helper_gives_the_same_text_as_create(claude):
    created = claude.messages.create(model=MODEL, max_tokens=4, messages=QUESTION, **GREEDY)
    with claude.messages.stream(model=MODEL, max_tokens=4, messages=QUESTION, **GREEDY) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == created.content[0].text == final.content[0].text
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 4 and final.usage.input_tokens == created.usage.input_tokens


def test_raw_stream_events_in_order(claude):
    events = list(claude.messages.create(model=MODEL, max_tokens=2, messages=QUESTION, stream=True, **GREEDY))
    kinds = [event.type for event in events]
    assert kinds == ["message_start", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]


def test_prefill_is_continued(claude):
    messages = [*QUESTION, {"role": "assistant", "content": "The capital of France is"}]
    message = claude.messages.create(model=MODEL, max_tokens=3, messages=messages, **GREEDY)
    assert "Paris" in message.content[0].text


def test_bad_request_surfaces_as_the_sdks_error(claude):
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model=MODEL, max_tokens=3, messages=QUESTION, extra_body={"temperature": 2})
    assert caught.value.status_code == 400
    assert "#/temperature: 2 is not less or equal to 1" in str(caught.value)
