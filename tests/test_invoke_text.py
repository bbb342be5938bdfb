"""Every text family through InvokeModel and InvokeModelWithResponseStream, as Bedrock answers each native body.

For each family: a max-token cap gives exactly that many output tokens and the family's "length" reason; the
token headers equal the body's own counts and CountTokens; the stream (decoded by boto3) carries the same text
at temperature 0, the metrics on its last chunk only; a stop sequence ends generation with the family's stop
reason and never appears in the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest
from conftest import user
from native_calls import QUESTION, count_invoke_tokens, invoke, metrics_only_last, stream, token_headers

LLAMA3_PROMPT = (
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
    f"{QUESTION}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
)
OPENAI_MESSAGES = [{"role": "user", "content": QUESTION}]


@dataclass
class Family:
    model: str
    body: Callable[[int, list[str] | None], dict]  # (max tokens, stop sequences) -> native body
    text: Callable[[dict], str]
    chunk_text: Callable[[dict], str]
    reason: Callable[[dict], str]
    length: str  # the family's stop reason for a max-token cap
    stop: str | None = None  # ... and for a stop sequence (None: the family has no stop sequences)
    counts: Callable[[dict], tuple[int, int]] | None = None  # (input, output) as the body reports them
    streams: bool = True


def _with(body: dict, key: str, stops: list[str] | None, where: dict | None = None) -> dict:
    if stops is not None:
        (where if where is not None else body)[key] = stops
    return body


def _anthropic(n, stops):
    return _with({"anthropic_version": "bedrock-2023-05-31", "max_tokens": n, "temperature": 0,
                  "messages": [{"role": "user", "content": QUESTION}]}, "stop_sequences", stops)


def _titan(n, stops):
    config = {"maxTokenCount": n, "temperature": 0}
    return {"inputText": QUESTION, "textGenerationConfig": _with(config, "stopSequences", stops)}


def _nova(n, stops):
    config = {"maxTokens": n, "temperature": 0}
    return {"schemaVersion": "messages-v1", "messages": [user(QUESTION)],
            "inferenceConfig": _with(config, "stopSequences", stops)}


def _choices_text(reply):
    return reply["choices"][0]["message"]["content"]


def _delta_text(chunk):
    return "".join(c.get("delta", {}).get("content") or "" for c in chunk.get("choices", []))


FAMILIES = {
    "anthropic": Family(
        "anthropic.claude-3-haiku-20240307-v1:0", _anthropic,
        text=lambda r: r["content"][0]["text"],
        chunk_text=lambda c: c["delta"].get("text", "") if c["type"] == "content_block_delta" else "",
        reason=lambda r: r["stop_reason"], length="max_tokens", stop="stop_sequence",
        counts=lambda r: (r["usage"]["input_tokens"], r["usage"]["output_tokens"]),
    ),
    "anthropic-completions": Family(
        "anthropic.claude-v2:1",
        lambda n, stops: _with({"prompt": f"\n\nHuman: {QUESTION}\n\nAssistant:", "max_tokens_to_sample": n,
                                "temperature": 0}, "stop_sequences", stops),
        text=lambda r: r["completion"], chunk_text=lambda c: c["completion"],
        reason=lambda r: r["stop_reason"], length="max_tokens", stop="stop_sequence",
    ),
    "titan-text": Family(
        "amazon.titan-text-express-v1", _titan,
        text=lambda r: r["results"][0]["outputText"], chunk_text=lambda c: c["outputText"],
        reason=lambda r: r["results"][0]["completionReason"], length="LENGTH",
        counts=lambda r: (r["inputTextTokenCount"], r["results"][0]["tokenCount"]),
    ),
    "nova": Family(
        "us.amazon.nova-lite-v1:0", _nova,
        text=lambda r: r["output"]["message"]["content"][0]["text"],
        chunk_text=lambda c: c.get("contentBlockDelta", {}).get("delta", {}).get("text", ""),
        reason=lambda r: r["stopReason"], length="max_tokens", stop="stop_sequence",
        counts=lambda r: (r["usage"]["inputTokens"], r["usage"]["outputTokens"]),
    ),
    "llama": Family(
        "meta.llama3-8b-instruct-v1:0", lambda n, stops: {"prompt": LLAMA3_PROMPT, "max_gen_len": n, "temperature": 0},
        text=lambda r: r["generation"], chunk_text=lambda c: c["generation"],
        reason=lambda r: r["stop_reason"], length="length",
        counts=lambda r: (r["prompt_token_count"], r["generation_token_count"]),
    ),
    "mistral": Family(
        "mistral.mistral-7b-instruct-v0:2",
        lambda n, stops: _with({"prompt": f"<s>[INST] {QUESTION} [/INST]", "max_tokens": n, "temperature": 0},
                               "stop", stops),
        text=lambda r: r["outputs"][0]["text"], chunk_text=lambda c: c["outputs"][0]["text"],
        reason=lambda r: r["outputs"][0]["stop_reason"], length="length", stop="stop",
    ),
    "mistral-chat": Family(
        "mistral.mistral-large-2407-v1:0",
        lambda n, stops: {"messages": OPENAI_MESSAGES, "max_tokens": n, "temperature": 0},
        text=_choices_text, chunk_text=lambda c: c["choices"][0]["message"]["content"] or "",
        reason=lambda r: r["choices"][0]["stop_reason"], length="length",
        counts=lambda r: (r["usage"]["prompt_tokens"], r["usage"]["completion_tokens"]),
    ),
    "cohere-command": Family(
        "cohere.command-text-v14",
        lambda n, stops: _with({"prompt": QUESTION, "max_tokens": n, "temperature": 0}, "stop_sequences", stops),
        text=lambda r: r["generations"][0]["text"], chunk_text=lambda c: c.get("text", ""),
        reason=lambda r: r["generations"][0]["finish_reason"], length="MAX_TOKENS", stop="COMPLETE",
    ),
    "cohere-command-r": Family(
        "cohere.command-r-plus-v1:0",
        lambda n, stops: _with({"message": QUESTION, "max_tokens": n, "temperature": 0}, "stop_sequences", stops),
        text=lambda r: r["text"],
        chunk_text=lambda c: c["text"] if c["event_type"] == "text-generation" else "",
        reason=lambda r: r["finish_reason"], length="MAX_TOKENS", stop="COMPLETE",
        counts=lambda r: (r["meta"]["billed_units"]["input_tokens"], r["meta"]["billed_units"]["output_tokens"]),
    ),
    "ai21-j2": Family(
        "ai21.j2-ultra-v1",
        lambda n, stops: _with({"prompt": QUESTION, "maxTokens": n, "temperature": 0}, "stopSequences", stops),
        text=lambda r: r["completions"][0]["data"]["text"], chunk_text=lambda c: "",
        reason=lambda r: r["completions"][0]["finishReason"]["reason"], length="length", stop="stop",
        streams=False,
    ),
    "ai21-jamba": Family(
        "ai21.jamba-1-5-mini-v1:0",
        lambda n, stops: _with({"messages": OPENAI_MESSAGES, "max_tokens": n, "temperature": 0}, "stop", stops),
        text=_choices_text, chunk_text=_delta_text,
        reason=lambda r: r["choices"][0]["finish_reason"], length="length", stop="stop",
        counts=lambda r: (r["usage"]["prompt_tokens"], r["usage"]["completion_tokens"]),
    ),
    "deepseek": Family(
        "us.deepseek.r1-v1:0",
        lambda n, stops: _with({"prompt": f"<｜begin▁of▁sentence｜><｜User｜>{QUESTION}<｜Assistant｜>",
                                "max_tokens": n, "temperature": 0}, "stop", stops),
        text=lambda r: r["choices"][0]["text"], chunk_text=lambda c: c["choices"][0]["text"],
        reason=lambda r: r["choices"][0]["stop_reason"], length="length", stop="stop",
    ),
    "openai": Family(
        "openai.gpt-oss-20b-1:0",
        lambda n, stops: _with({"messages": OPENAI_MESSAGES, "max_completion_tokens": n, "temperature": 0},
                               "stop", stops),
        text=_choices_text, chunk_text=_delta_text,
        reason=lambda r: r["choices"][0]["finish_reason"], length="length", stop="stop",
        counts=lambda r: (r["usage"]["prompt_tokens"], r["usage"]["completion_tokens"]),
    ),
}
STOPPING = [name for name, family in FAMILIES.items() if family.stop]


@pytest.mark.parametrize("name", FAMILIES)
def test_max_tokens_cap_headers_count_tokens_and_stream(client, name):
    family = FAMILIES[name]
    body = family.body(3, None)
    reply, headers = invoke(client, family.model, body)
    input_tokens, output_tokens = token_headers(headers)
    assert family.reason(reply) == family.length
    assert output_tokens == 3
    assert family.text(reply)
    if family.counts:
        assert family.counts(reply) == (input_tokens, output_tokens)
    assert count_invoke_tokens(client, family.model, body) == input_tokens
    if not family.streams:
        return
    chunks, stream_headers = stream(client, family.model, body)
    assert "x-amzn-bedrock-input-token-count" not in stream_headers  # streams carry their counts in the metrics
    assert stream_headers["content-type"] == "application/vnd.amazon.eventstream"
    metrics = metrics_only_last(chunks)
    assert (metrics["inputTokenCount"], metrics["outputTokenCount"]) == (input_tokens, 3)
    assert "".join(family.chunk_text(c) for c in chunks) == family.text(reply)


@pytest.mark.parametrize("name", STOPPING)
def test_stop_sequence_ends_generation_without_leaking(client, name):
    family = FAMILIES[name]
    reply, headers = invoke(client, family.model, family.body(12, ["France"]))
    assert family.reason(reply) == family.stop
    text = family.text(reply)
    assert text and "France" not in text
    assert token_headers(headers)[1] < 12


@pytest.mark.parametrize("name", ["anthropic", "nova", "openai", "cohere-command-r"])
def test_streamed_stop_sequence_never_appears_in_a_chunk(client, name):
    family = FAMILIES[name]
    body = family.body(12, ["France"])
    reply, _ = invoke(client, family.model, body)
    chunks, _ = stream(client, family.model, body)
    pieces = [family.chunk_text(c) for c in chunks]
    assert all("France" not in piece for piece in pieces)
    assert "".join(pieces) == family.text(reply)


def test_anthropic_reply_names_the_stop_sequence_and_uses_bedrock_ids(client):
    reply, _ = invoke(client, FAMILIES["anthropic"].model, _anthropic(12, ["France", "Paris"]))
    assert reply["stop_sequence"] == "France"
    assert reply["id"].startswith("msg_bdrk_")
    assert reply["model"] == "claude-3-haiku-20240307"
    assert reply["type"] == "message" and reply["role"] == "assistant"


def test_anthropic_stream_event_sequence(client):
    chunks, _ = stream(client, FAMILIES["anthropic"].model, _anthropic(3, None))
    kinds = [c["type"] for c in chunks]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start = chunks[0]["message"]
    assert start["id"].startswith("msg_bdrk_") and start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == chunks[-1]["amazon-bedrock-invocationMetrics"]["inputTokenCount"]
    assert chunks[-2]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert chunks[-2]["usage"] == {"output_tokens": 3}


def test_legacy_claude_reports_the_human_turn_as_its_natural_stop(client):
    family = FAMILIES["anthropic-completions"]
    reply, _ = invoke(client, family.model, family.body(40, None))
    assert reply == {"type": "completion", "completion": reply["completion"], "stop_reason": "stop_sequence",
                     "stop": "\n\nHuman:"}


def test_titan_stream_counts_sit_in_the_first_and_last_chunks(client):
    chunks, _ = stream(client, FAMILIES["titan-text"].model, _titan(3, None))
    assert chunks[0]["inputTextTokenCount"] == chunks[-1]["amazon-bedrock-invocationMetrics"]["inputTokenCount"]
    assert all(c["inputTextTokenCount"] is None for c in chunks[1:])
    assert chunks[-1]["totalOutputTextTokenCount"] == 3 and chunks[-1]["completionReason"] == "LENGTH"
    assert all(c["completionReason"] is None for c in chunks[:-1])


def test_nova_stream_shape_and_cache_counts(client):
    chunks, _ = stream(client, FAMILIES["nova"].model, _nova(3, None))
    assert chunks[0] == {"messageStart": {"role": "assistant"}}
    assert chunks[-3] == {"contentBlockStop": {"contentBlockIndex": 0}}
    assert chunks[-2] == {"messageStop": {"stopReason": "max_tokens"}}
    metadata = chunks[-1]
    assert metadata["metadata"]["usage"]["outputTokens"] == 3
    assert metadata["amazon-bedrock-invocationMetrics"]["cacheReadInputTokenCount"] == 0


def test_nova_accepts_both_inference_config_spellings(client):
    body = {"messages": [user(QUESTION)], "inferenceConfig": {"max_new_tokens": 2, "top_k": 1, "top_p": 0.5}}
    reply, headers = invoke(client, FAMILIES["nova"].model, body)
    assert reply["usage"]["outputTokens"] == 2 == token_headers(headers)[1]
    assert reply["usage"]["cacheReadInputTokenCount"] == 0
    assert headers["x-amzn-bedrock-cache-read-input-token-count"] == "0"


def test_llama_plain_prompt_is_continued_as_text(client):
    body = {"prompt": "The capital of France is", "max_gen_len": 2, "temperature": 0}
    reply, headers = invoke(client, FAMILIES["llama"].model, body)
    assert reply["prompt_token_count"] == token_headers(headers)[0] < 10  # no chat template around it
    assert reply["generation_token_count"] == 2


def test_cohere_r_history_and_stream_end_response(client):
    body = {"message": QUESTION, "chat_history": [{"role": "USER", "message": "Hi"}, {"role": "CHATBOT", "message": "Hello!"}],
            "preamble": "Answer briefly.", "max_tokens": 2, "temperature": 0}
    chunks, _ = stream(client, FAMILIES["cohere-command-r"].model, body)
    assert chunks[0]["event_type"] == "stream-start"
    end = chunks[-1]
    assert end["event_type"] == "stream-end" and end["is_finished"] and end["finish_reason"] == "MAX_TOKENS"
    assert end["response"]["generation_id"] == chunks[0]["generation_id"]
    assert [turn["role"] for turn in end["response"]["chat_history"]] == ["USER", "CHATBOT", "USER", "CHATBOT"]


def test_several_generations_in_one_request(client):
    body = {"prompt": QUESTION, "max_tokens": 2, "temperature": 0, "num_generations": 2}
    reply, headers = invoke(client, FAMILIES["cohere-command"].model, body)
    assert len(reply["generations"]) == 2
    assert reply["generations"][0]["text"] == reply["generations"][1]["text"]
    assert token_headers(headers)[1] == 4
    assert reply["id"] == headers["x-amzn-requestid"]


@pytest.mark.parametrize("name", [n for n in FAMILIES if n != "anthropic-completions"])
def test_converse_reaches_every_text_family(client, name):
    reply = client.converse(modelId=FAMILIES[name].model, messages=[user(QUESTION)],
                            inferenceConfig={"maxTokens": 2, "temperature": 0})
    assert reply["stopReason"] == "max_tokens"
    assert reply["usage"]["outputTokens"] == 2


def test_converse_top_k_reaches_nova_and_cohere_by_their_native_names(client):
    nova = client.converse(modelId=FAMILIES["nova"].model, messages=[user(QUESTION)],
                           inferenceConfig={"maxTokens": 2}, additionalModelRequestFields={"inferenceConfig": {"topK": 1}})
    greedy = client.converse(modelId=FAMILIES["nova"].model, messages=[user(QUESTION)],
                             inferenceConfig={"maxTokens": 2, "temperature": 0})
    assert nova["output"] == greedy["output"]  # top_k 1 is greedy whatever the temperature
    cohere = client.converse(modelId=FAMILIES["cohere-command-r"].model, messages=[user(QUESTION)],
                             inferenceConfig={"maxTokens": 2}, additionalModelRequestFields={"k": 1})
    assert cohere["output"] == greedy["output"]
