"""Each family's native reply body and stream chunks, built from one fixed list of engine events.

The stream driver below follows the API layer's contract (api/invoke.py): `stream_start` before the first event,
`stream_delta` per text piece (then `deltas` counts it), `stream_tool` per tool event, `stream_end` with the
result carrying the turn's tool calls. Bedrock's `amazon-bedrock-invocationMetrics` is the API layer's and is not
part of these chunks. Expected shapes follow /work/shared/reference/model-bodies.md (recorded traffic).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import replace

import pytest

from emulator import families
from emulator.api.common import Stopwatch
from emulator.api.invoke import _NativeChunks, _native_events
from emulator.catalog import Entry
from emulator.families.call import Call
from emulator.engine.types import (
    END_TURN,
    MAX_TOKENS,
    STOP_SEQUENCE,
    TOOL_USE,
    Finished,
    TextDelta,
    ToolInputDelta,
    ToolUse,
    ToolUseStart,
)
from emulator.families.base import NativeRequest

REQUEST_ID = "3266ca30-473c-4491-b6ef-5b1f033798d2"
HAIKU = "us.anthropic.claude-3-haiku-20240307-v1:0"
MSG_ID = re.compile(r"msg_bdrk_01[0-9A-Za-z]{22}")

TEXT = [TextDelta("Why"), TextDelta(" did"), TextDelta(" it?"), Finished(END_TURN, None, 12, 3, "Why did it?")]
CALL = ToolUse("toolu_1", "get_weather", {"city": "Paris"})
TEXT_THEN_TOOL = [
    TextDelta("Checking."),
    ToolUseStart("toolu_1", "get_weather"),
    ToolInputDelta('{"city": '),
    ToolInputDelta('"Paris"}'),
    CALL,
    Finished(TOOL_USE, None, 20, 9, "Checking."),
]


def native_request(model_id: str, body: dict | None = None, input_tokens: int = 12) -> NativeRequest:
    return NativeRequest(model_id, body or {}, REQUEST_ID, input_tokens=input_tokens, latency_ms=42, created=1700000000)


def stream(family, events, model_id: str, body: dict | None = None, input_tokens: int = 12) -> list[dict]:
    request = native_request(model_id, body, input_tokens)
    chunks = list(family.stream_start(request))
    uses = []
    for event in events:
        if isinstance(event, TextDelta):
            chunks += family.stream_delta(request, event.text)
            request.deltas += 1
        elif isinstance(event, (ToolUseStart, ToolInputDelta, ToolUse)):
            if isinstance(event, ToolUse):
                uses.append(event)
            chunks += family.stream_tool(request, event)
        elif isinstance(event, Finished):
            chunks += family.stream_end(request, replace(event, tool_uses=tuple(uses)))
    return chunks


def result(events) -> Finished:
    """The Finished event with the turn's tool calls, as the API layer hands it to `native_response`."""
    uses = tuple(e for e in events if isinstance(e, ToolUse))
    return replace(events[-1], tool_uses=uses)


# --- Anthropic Messages (model-bodies.md §1.2, §1.3) ---------------------------------------------------------

ANTHROPIC = families.get("anthropic")


def test_anthropic_reply_body():
    body = ANTHROPIC.native_response(result(TEXT), HAIKU, native_request(HAIKU))
    assert MSG_ID.fullmatch(body.pop("id"))
    assert body == {
        "type": "message", "role": "assistant", "model": "claude-3-haiku-20240307",
        "content": [{"type": "text", "text": "Why did it?"}],
        "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 3},
    }


def test_anthropic_reply_body_with_a_tool_call():
    body = ANTHROPIC.native_response(result(TEXT_THEN_TOOL), HAIKU)
    assert body["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    assert body["stop_reason"] == "tool_use"


def test_anthropic_reply_body_of_a_call_alone_has_no_text_block():
    only = [CALL, Finished(TOOL_USE, None, 5, 4, "")]
    assert [b["type"] for b in ANTHROPIC.native_response(result(only), HAIKU)["content"]] == ["tool_use"]


def test_anthropic_reply_body_names_the_matched_stop_sequence():
    body = ANTHROPIC.native_response(Finished(STOP_SEQUENCE, "END", 4, 2, "ok"), HAIKU)
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", "END")


def test_anthropic_stream():
    chunks = stream(ANTHROPIC, TEXT, HAIKU)
    message = chunks[0]["message"]
    assert MSG_ID.fullmatch(message.pop("id"))
    assert chunks == [
        {"type": "message_start", "message": {
            "type": "message", "role": "assistant", "model": "claude-3-haiku-20240307", "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Why"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " did"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " it?"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 3}},
        {"type": "message_stop"},
    ]


def test_anthropic_stream_with_text_then_a_tool_call():
    assert stream(ANTHROPIC, TEXT_THEN_TOOL, HAIKU)[1:] == [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking."}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city": '}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]


def test_anthropic_stream_of_a_scripted_call_sends_its_whole_input_in_one_fragment():
    chunks = stream(ANTHROPIC, [CALL, Finished(TOOL_USE, None, 5, 4, "")], HAIKU)
    assert chunks[1:4] == [
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'}},
        {"type": "content_block_stop", "index": 0},
    ]


def test_anthropic_stream_of_an_empty_generation_still_has_one_empty_text_block():
    chunks = stream(ANTHROPIC, [Finished(END_TURN, None, 5, 0, "")], HAIKU)
    assert [c["type"] for c in chunks] == [
        "message_start", "content_block_start", "content_block_stop", "message_delta", "message_stop"]
    assert chunks[1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}


# --- Claude Text Completions (§2.2, §2.3) --------------------------------------------------------------------

CLAUDE_V2 = "anthropic.claude-v2:1"
COMPLETIONS = ANTHROPIC.variant({"prompt": "\n\nHuman: hi\n\nAssistant:"}, CLAUDE_V2)


def test_claude_completions_reply_and_stream():
    assert COMPLETIONS.native_response(result(TEXT), CLAUDE_V2) == {
        "type": "completion", "completion": "Why did it?", "stop_reason": "stop_sequence", "stop": "\n\nHuman:"}
    assert stream(COMPLETIONS, TEXT, CLAUDE_V2) == [
        {"completion": "Why", "stop_reason": None, "stop": None},
        {"completion": " did", "stop_reason": None, "stop": None},
        {"completion": " it?", "stop_reason": None, "stop": None},
        {"completion": "", "stop_reason": "stop_sequence", "stop": "\n\nHuman:"},
    ]
    assert COMPLETIONS.native_response(Finished(MAX_TOKENS, None, 1, 3, "x"), CLAUDE_V2)["stop"] is None


# --- Amazon Nova (§9.2, §9.3) --------------------------------------------------------------------------------

NOVA = families.get("nova")
NOVA_ID = "us.amazon.nova-lite-v1:0"
CACHE_ZERO = {"cacheReadInputTokenCount": 0, "cacheWriteInputTokenCount": 0}


def test_nova_reply_body():
    assert NOVA.native_response(result(TEXT_THEN_TOOL), NOVA_ID) == {
        "output": {"message": {"role": "assistant", "content": [
            {"text": "Checking."},
            {"toolUse": {"toolUseId": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}}]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 20, "outputTokens": 9, "totalTokens": 29, **CACHE_ZERO},
    }


def test_nova_stream():
    assert stream(NOVA, TEXT, NOVA_ID) == [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "Why"}, "contentBlockIndex": 0}},
        {"contentBlockDelta": {"delta": {"text": " did"}, "contentBlockIndex": 0}},
        {"contentBlockDelta": {"delta": {"text": " it?"}, "contentBlockIndex": 0}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "end_turn"}},
        {"metadata": {"usage": {"inputTokens": 12, "outputTokens": 3, **CACHE_ZERO}, "metrics": {}, "trace": {}}},
    ]


def test_nova_stream_with_text_then_a_tool_call():
    assert stream(NOVA, TEXT_THEN_TOOL, NOVA_ID)[1:-2] == [
        {"contentBlockDelta": {"delta": {"text": "Checking."}, "contentBlockIndex": 0}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"contentBlockStart": {"start": {"toolUse": {"toolUseId": "toolu_1", "name": "get_weather"}}, "contentBlockIndex": 1}},
        {"contentBlockDelta": {"delta": {"toolUse": {"input": '{"city": '}}, "contentBlockIndex": 1}},
        {"contentBlockDelta": {"delta": {"toolUse": {"input": '"Paris"}'}}, "contentBlockIndex": 1}},
        {"contentBlockStop": {"contentBlockIndex": 1}},
    ]


def test_nova_stream_of_an_empty_generation_closes_one_empty_block():
    assert stream(NOVA, [Finished(MAX_TOKENS, None, 5, 0, "")], NOVA_ID)[:3] == [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "max_tokens"}},
    ]


# --- Titan Text (§3.2, §3.3) ---------------------------------------------------------------------------------

TITAN = families.get("titan-text")
TITAN_ID = "amazon.titan-text-express-v1"


def test_titan_reply_body():
    assert TITAN.native_response(result(TEXT), TITAN_ID) == {
        "inputTextTokenCount": 12, "results": [{"tokenCount": 3, "outputText": "Why did it?", "completionReason": "FINISH"}]}
    assert TITAN.native_response(Finished(MAX_TOKENS, None, 1, 3, "x"), TITAN_ID)["results"][0]["completionReason"] == "LENGTH"


def test_titan_stream_counts_input_in_the_first_chunk_and_the_total_in_the_last():
    chunks = stream(TITAN, TEXT, TITAN_ID)
    assert chunks == [
        {"outputText": "Why", "index": 0, "totalOutputTextTokenCount": None, "completionReason": None, "inputTextTokenCount": 12},
        {"outputText": " did", "index": 0, "totalOutputTextTokenCount": None, "completionReason": None, "inputTextTokenCount": None},
        {"outputText": " it?", "index": 0, "totalOutputTextTokenCount": None, "completionReason": None, "inputTextTokenCount": None},
        {"outputText": "", "index": 0, "totalOutputTextTokenCount": 3, "completionReason": "FINISH", "inputTextTokenCount": None},
    ]
    assert all(list(c) == ["outputText", "index", "totalOutputTextTokenCount", "completionReason", "inputTextTokenCount"]
               for c in chunks)


# --- Meta Llama (§6.2, §6.3) ---------------------------------------------------------------------------------

LLAMA = families.get("llama")
LLAMA_ID = "meta.llama3-8b-instruct-v1:0"


def test_llama_reply_body():
    assert LLAMA.native_response(result(TEXT), LLAMA_ID) == {
        "generation": "Why did it?", "prompt_token_count": 12, "generation_token_count": 3, "stop_reason": "stop"}
    assert LLAMA.native_response(Finished(MAX_TOKENS, None, 1, 3, "x"), LLAMA_ID)["stop_reason"] == "length"


def test_llama_stream_counts_cumulatively_and_the_prompt_only_first():
    assert stream(LLAMA, TEXT, LLAMA_ID) == [
        {"generation": "Why", "prompt_token_count": 12, "generation_token_count": 1, "stop_reason": None},
        {"generation": " did", "prompt_token_count": None, "generation_token_count": 2, "stop_reason": None},
        {"generation": " it?", "prompt_token_count": None, "generation_token_count": 3, "stop_reason": None},
        {"generation": "", "prompt_token_count": None, "generation_token_count": 3, "stop_reason": "stop"},
    ]


# --- Mistral and DeepSeek completions (§7.1, §10) ------------------------------------------------------------


@pytest.mark.parametrize("name, key", [("mistral", "outputs"), ("deepseek", "choices")])
def test_listed_completion_reply_and_stream(name, key):
    family = families.get(name)
    assert family.native_response(result(TEXT), "x") == {key: [{"text": "Why did it?", "stop_reason": "stop"}]}
    assert stream(family, TEXT, "x") == [
        {key: [{"text": "Why", "stop_reason": None}]},
        {key: [{"text": " did", "stop_reason": None}]},
        {key: [{"text": " it?", "stop_reason": None}]},
        {key: [{"text": "", "stop_reason": "stop"}]},
    ]
    assert family.native_response(Finished(MAX_TOKENS, None, 1, 3, "x"), "x")[key][0]["stop_reason"] == "length"


# --- Mistral Large 2 chat (§7.2) -----------------------------------------------------------------------------

MISTRAL_CHAT = families.get("mistral-chat")
LARGE = "mistral.mistral-large-2407-v1:0"


def mistral_chunk(content: str, role: str | None, reason: str | None, usage: dict | None) -> dict:
    return {
        "id": REQUEST_ID, "object": "chat.completion.chunk", "created": 1700000000, "model": "mistral-large-2407",
        "choices": [{"index": 0, "logprobs": None, "context_logits": None, "generation_logits": None,
                     "message": {"role": role, "content": content, "tool_calls": None, "index": None, "tool_call_id": None},
                     "stop_reason": reason}],
        "usage": usage,
    }


def test_mistral_chat_reply_body():
    assert MISTRAL_CHAT.native_response(result(TEXT), LARGE, native_request(LARGE)) == {
        "id": REQUEST_ID, "object": "chat.completion", "created": 1700000000, "model": "mistral-large-2407",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Why did it?", "tool_calls": None},
                     "stop_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }


def test_mistral_chat_stream_uses_message_and_stop_reason():
    assert stream(MISTRAL_CHAT, TEXT, LARGE) == [
        mistral_chunk("Why", "assistant", None, None),
        mistral_chunk(" did", None, None, None),
        mistral_chunk(" it?", None, None, None),
        mistral_chunk("", None, "stop", {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}),
    ]


# --- Cohere (§5.1, §5.2) -------------------------------------------------------------------------------------

COMMAND = families.get("cohere-command")
COMMAND_R = families.get("cohere-command-r")


def derived(salt: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{REQUEST_ID}/{salt}"))


def test_cohere_command_reply_and_stream():
    body = {"prompt": "Tell me a joke"}
    assert COMMAND.native_response(result(TEXT), "cohere.command-text-v14", native_request("c", body)) == {
        "id": REQUEST_ID,
        "generations": [{"id": derived("generation/0"), "text": "Why did it?", "finish_reason": "COMPLETE"}],
        "prompt": "Tell me a joke",
    }
    assert stream(COMMAND, TEXT, "c", body) == [
        {"text": "Why", "is_finished": False},
        {"text": " did", "is_finished": False},
        {"text": " it?", "is_finished": False},
        {"is_finished": True, "finish_reason": "COMPLETE"},
    ]


def test_cohere_command_several_generations_get_their_own_ids():
    results = [Finished(END_TURN, None, 2, 1, "a"), Finished(MAX_TOKENS, None, 2, 1, "b")]
    reply = COMMAND.native_responses(results, "c", native_request("c", {"prompt": "p"}))
    assert reply["generations"] == [
        {"id": derived("generation/0"), "text": "a", "finish_reason": "COMPLETE"},
        {"id": derived("generation/1"), "text": "b", "finish_reason": "MAX_TOKENS"},
    ]


def test_cohere_command_r_stream_ends_with_the_whole_response():
    body = {"message": "Weather?", "chat_history": [{"role": "USER", "message": "Hi"}, {"role": "CHATBOT", "message": "Hello!"}]}
    chunks = stream(COMMAND_R, TEXT_THEN_TOOL, "cohere.command-r-v1:0", body)
    response = {
        "response_id": derived("response"), "text": "Checking.", "generation_id": derived("generation"),
        "chat_history": [*body["chat_history"], {"role": "USER", "message": "Weather?"}, {"role": "CHATBOT", "message": "Checking."}],
        "finish_reason": "COMPLETE",
        "meta": {"api_version": {"version": "1"}, "billed_units": {"input_tokens": 20, "output_tokens": 9},
                 "tokens": {"input_tokens": 20, "output_tokens": 9}},
        "tool_calls": [{"name": "get_weather", "parameters": {"city": "Paris"}}],
    }
    assert chunks == [
        {"is_finished": False, "event_type": "stream-start", "generation_id": derived("generation")},
        {"is_finished": False, "event_type": "text-generation", "text": "Checking."},
        {"is_finished": False, "event_type": "tool-calls-generation", "text": "",
         "tool_calls": [{"name": "get_weather", "parameters": {"city": "Paris"}}]},
        {"is_finished": True, "event_type": "stream-end", "finish_reason": "COMPLETE", "response": response},
    ]
    assert COMMAND_R.native_response(result(TEXT_THEN_TOOL), "c", native_request("c", body)) == response


def test_cohere_command_r_reply_without_tool_calls_has_no_tool_calls_member():
    reply = COMMAND_R.native_response(Finished(MAX_TOKENS, None, 3, 2, "ok"), "c", native_request("c", {"message": "q"}))
    assert "tool_calls" not in reply
    assert reply["finish_reason"] == "MAX_TOKENS"


# --- AI21 (§8.1, §8.2) ---------------------------------------------------------------------------------------


def test_jurassic_reply_body_and_finish_reasons():
    j2 = families.get("ai21-j2")
    assert j2.streams is False
    results = [Finished(END_TURN, None, 5, 3, "a"), Finished(STOP_SEQUENCE, "##", 5, 2, "b"), Finished(MAX_TOKENS, None, 5, 7, "c")]
    assert j2.native_responses(results, "ai21.j2-mid-v1", native_request("j", {"prompt": "Translate"})) == {
        "id": 1234,
        "prompt": {"text": "Translate", "tokens": []},
        "completions": [
            {"data": {"text": "a", "tokens": []}, "finishReason": {"reason": "endoftext"}},
            {"data": {"text": "b", "tokens": []}, "finishReason": {"reason": "stop", "sequence": "##"}},
            {"data": {"text": "c", "tokens": []}, "finishReason": {"reason": "length", "length": 7}},
        ],
    }


def test_jamba_reply_body():
    jamba_id = "ai21.jamba-1-5-large-v1:0"
    reply = families.get("ai21-jamba").native_response(result(TEXT), jamba_id, native_request(jamba_id))
    assert reply == {
        "id": "chatcmpl-" + REQUEST_ID.replace("-", "")[:24], "object": "chat.completion", "created": 1700000000,
        "model": "jamba-1.5-large",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Why did it?", "tool_calls": None},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        "meta": {"requestDurationMillis": 42},
    }


# --- OpenAI gpt-oss (§10) ------------------------------------------------------------------------------------

OPENAI = families.get("openai")
GPT_OSS = "openai.gpt-oss-20b-1:0"
COMPLETION_ID = "chatcmpl-" + REQUEST_ID.replace("-", "")[:24]


def openai_chunk(delta: dict, reason: str | None = None, **extra) -> dict:
    return {"id": COMPLETION_ID, "object": "chat.completion.chunk", "created": 1700000000, "model": GPT_OSS,
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason}], **extra}


def test_openai_reply_body_with_a_tool_call():
    assert OPENAI.native_response(result(TEXT_THEN_TOOL), GPT_OSS, native_request(GPT_OSS)) == {
        "id": COMPLETION_ID, "object": "chat.completion", "created": 1700000000, "model": GPT_OSS,
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Checking.",
            "tool_calls": [{"id": "toolu_1", "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29},
    }


def test_openai_stream():
    assert stream(OPENAI, TEXT, GPT_OSS) == [
        openai_chunk({"role": "assistant", "content": ""}),
        openai_chunk({"content": "Why"}),
        openai_chunk({"content": " did"}),
        openai_chunk({"content": " it?"}),
        openai_chunk({}, "stop", usage={"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}),
    ]


def test_openai_stream_sends_a_tool_call_whole_once_complete():
    chunks = stream(OPENAI, [CALL, Finished(TOOL_USE, None, 5, 4, "")], GPT_OSS)
    assert chunks[1] == openai_chunk({"role": "assistant", "tool_calls": [
        {"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]})
    assert chunks[2]["choices"][0]["finish_reason"] == "tool_calls"
    assert len(chunks) == 3


# --- the API layer's own driver ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, model_id, events",
    [("anthropic", HAIKU, TEXT_THEN_TOOL), ("nova", NOVA_ID, TEXT_THEN_TOOL), ("openai", GPT_OSS, TEXT_THEN_TOOL),
     ("cohere-command-r", "cohere.command-r-v1:0", TEXT_THEN_TOOL), ("llama", LLAMA_ID, TEXT)],
)
async def test_the_api_layers_stream_writes_these_chunks_with_metrics_on_the_last_only(name, model_id, events):
    family = families.get(name)

    async def generation():
        for event in events:
            yield event

    call = Call("InvokeModelWithResponseStream", model_id, Entry(id=model_id, family=name), family)
    native = _NativeChunks(family, native_request(model_id, input_tokens=20), Stopwatch())
    frames = [frame async for frame in _native_events(generation(), call, native)]
    chunks = [json.loads(base64.b64decode(payload["bytes"])) for kind, payload in frames if kind == "chunk"]
    assert len(chunks) == len(frames)
    metrics = chunks[-1].pop("amazon-bedrock-invocationMetrics")
    assert list(metrics)[:4] == ["inputTokenCount", "outputTokenCount", "invocationLatency", "firstByteLatency"]
    assert (metrics["inputTokenCount"], metrics["outputTokenCount"]) == (events[-1].input_tokens, events[-1].output_tokens)
    assert {k: v for k, v in metrics.items() if k.startswith("cache")} == family.metrics_extra
    expected = stream(family, events, model_id, input_tokens=20)
    if name == "anthropic":  # the message id is drawn afresh
        chunks[0]["message"].pop("id"), expected[0]["message"].pop("id")
    assert chunks == expected
