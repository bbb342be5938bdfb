"""Converse through boto3, answered by the real default model: every inference parameter changes the output as
Bedrock's would, and usage is what the model's own tokenizer counts.

Generations stay short (a few tokens) so the file runs in seconds; an open-ended prompt ("Tell me a story.") is
used wherever a test must be able to tell sampling from greedy decoding.
"""

from __future__ import annotations

import uuid

import pytest
import torch
from conftest import HAIKU, user

from emulator.engine.text_model import render_chat


def template_ids(tokenizer, messages: list[dict], continue_final: bool = False) -> list[int]:
    """Token ids of the messages under the model's chat template, with no system prompt the caller did not send."""
    return tokenizer(render_chat(tokenizer, messages, continue_final), add_special_tokens=False)["input_ids"]

CAPITAL = "What is the capital of France?"
STORY = "Tell me a story."


def converse(client, messages: list[dict], **kwargs) -> dict:
    return client.converse(modelId=HAIKU, messages=messages, **kwargs)


def text_of(reply: dict) -> str:
    (block,) = reply["output"]["message"]["content"]
    return block["text"]


def greedy(max_tokens: int) -> dict:
    return {"temperature": 0, "maxTokens": max_tokens}


@pytest.fixture(scope="module")
def capital(client) -> dict:
    """The greedy answer to the capital question (it ends on its own, well inside 12 tokens)."""
    return converse(client, [user(CAPITAL)], inferenceConfig=greedy(12), additionalModelResponseFieldPaths=["/stop_sequence"])


@pytest.fixture(scope="module")
def story(client) -> dict:
    """Eight greedy tokens of an open-ended answer: sampling would almost never reproduce them."""
    return converse(client, [user(STORY)], inferenceConfig=greedy(8))


def test_greedy_answer_is_real_and_ends_the_turn(capital):
    assert "Paris" in text_of(capital)
    assert capital["stopReason"] == "end_turn"
    assert capital["output"]["message"]["role"] == "assistant"
    assert capital["additionalModelResponseFields"] == {"stop_sequence": None}  # Anthropic's native field, unset


@pytest.fixture(scope="module")
def reference_model(tokenizer):
    """The same weights loaded separately, to decode with transformers' own `generate`."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tokenizer.name_or_path).eval()


@pytest.mark.parametrize("prompt", [CAPITAL, "Translate 'good morning' into Japanese."])
def test_temperature_zero_is_the_models_own_greedy_decoding(client, tokenizer, reference_model, prompt):
    """Token for token what transformers' greedy search produces (the Japanese answer has characters split
    across tokens, which the incremental detokenizer must put back together)."""
    reply = converse(client, [user(prompt)], inferenceConfig=greedy(12))
    inputs = tokenizer(render_chat(tokenizer, [{"role": "user", "content": prompt}]), add_special_tokens=False,
                       return_tensors="pt")
    with torch.inference_mode():
        out = reference_model.generate(**inputs, max_new_tokens=12, do_sample=False)
    generated = out[0, inputs["input_ids"].shape[1] :]
    assert text_of(reply) == tokenizer.decode(generated, skip_special_tokens=True)


def test_temperature_zero_is_deterministic(client, story):
    again = converse(client, [user(STORY)], inferenceConfig=greedy(8))
    assert text_of(again) == text_of(story)
    assert again["usage"] == story["usage"]


def test_temperature_one_samples(client, story):
    draws = {text_of(converse(client, [user(STORY)], inferenceConfig={"temperature": 1, "maxTokens": 4})) for _ in range(4)}
    assert len(draws) > 1, draws  # four identical samples of an open story: a sampler that ignores temperature


def test_tiny_top_p_keeps_only_the_most_likely_token(client, story):
    for _ in range(2):  # at temperature 1 alone, a sample repeats eight greedy tokens of a story only by rare chance
        reply = converse(client, [user(STORY)], inferenceConfig={"temperature": 1, "topP": 0.0001, "maxTokens": 8})
        assert text_of(reply) == text_of(story)


def test_top_k_one_from_additional_model_request_fields_is_greedy(client, story):
    for _ in range(2):
        reply = converse(
            client, [user(STORY)], inferenceConfig={"temperature": 1, "maxTokens": 8}, additionalModelRequestFields={"top_k": 1}
        )
        assert text_of(reply) == text_of(story)


def test_nova_top_k_one_in_its_native_inference_config_is_greedy(client, story):
    """Nova keeps top_k inside its own `inferenceConfig` (`topK`); Converse passes it through as Bedrock does."""
    for _ in range(2):
        reply = client.converse(
            modelId="us.amazon.nova-lite-v1:0", messages=[user(STORY)], inferenceConfig={"temperature": 1, "maxTokens": 8},
            additionalModelRequestFields={"inferenceConfig": {"topK": 1}},
        )
        assert text_of(reply) == text_of(story)  # same local model, same prompt: the same greedy path


def test_max_tokens_caps_the_output_exactly(client, story, tokenizer):
    reply = converse(client, [user(STORY)], inferenceConfig=greedy(3))
    assert reply["stopReason"] == "max_tokens"
    assert reply["usage"]["outputTokens"] == 3
    assert reply["usage"]["totalTokens"] == reply["usage"]["inputTokens"] + 3
    assert text_of(story).startswith(text_of(reply))  # the same greedy path, cut after three tokens
    assert len(tokenizer(text_of(reply), add_special_tokens=False)["input_ids"]) == 3


def test_stop_sequence_ends_the_output_before_it(client, capital):
    full = text_of(capital)
    reply = converse(
        client,
        [user(CAPITAL)],
        inferenceConfig={**greedy(12), "stopSequences": ["Paris", "never-produced"]},
        additionalModelResponseFieldPaths=["/stop_sequence", "/stop_reason"],
    )
    assert reply["stopReason"] == "stop_sequence"
    assert text_of(reply) == full[: full.index("Paris")]
    # JSON Pointers over Anthropic's native response: the matched string, and its own stop-reason name.
    assert reply["additionalModelResponseFields"] == {"stop_sequence": "Paris", "stop_reason": "stop_sequence"}


def test_stop_sequence_before_any_text_gives_an_empty_message(client, capital):
    first_word = text_of(capital).split()[0]
    reply = converse(client, [user(CAPITAL)], inferenceConfig={**greedy(12), "stopSequences": [first_word]})
    assert reply["stopReason"] == "stop_sequence"
    assert reply["output"]["message"] == {"role": "assistant", "content": []}  # no text, no text block
    assert reply["usage"]["outputTokens"] == 1


def test_system_prompt_changes_the_answer(client, tokenizer):
    plain = converse(client, [user("Hi!")], inferenceConfig=greedy(8))
    system = "You are a pirate."
    pirate = converse(client, [user("Hi!")], system=[{"text": system}], inferenceConfig=greedy(8))
    assert text_of(pirate) != text_of(plain)
    expected = template_ids(tokenizer, [{"role": "system", "content": system}, {"role": "user", "content": "Hi!"}])
    assert pirate["usage"]["inputTokens"] == len(expected)


def test_history_is_part_of_the_prompt(client, tokenizer):
    history = [
        user("My name is Zorblax."),
        {"role": "assistant", "content": [{"text": "Nice to meet you, Zorblax!"}]},
        user("What is my name?"),
    ]
    reply = converse(client, history, inferenceConfig=greedy(12))
    assert "Zorblax" in text_of(reply)  # only the earlier turns say it ("I'm glad to meet you, Zorblax. ...")
    chat = [{"role": m["role"], "content": m["content"][0]["text"]} for m in history]
    assert reply["usage"]["inputTokens"] == len(template_ids(tokenizer, chat))


def test_usage_is_counted_by_the_models_tokenizer(capital, tokenizer):
    usage = capital["usage"]
    assert usage["inputTokens"] == len(template_ids(tokenizer, [{"role": "user", "content": CAPITAL}]))
    assert usage["outputTokens"] == len(tokenizer(text_of(capital), add_special_tokens=False)["input_ids"])
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]


def test_latency_is_an_integer_of_milliseconds(capital):
    latency = capital["metrics"]["latencyMs"]
    assert isinstance(latency, int) and latency >= 0


def test_every_response_carries_a_uuid_request_id(client, capital):
    ids = {capital["ResponseMetadata"]["RequestId"], converse(client, [user("Hi")], inferenceConfig=greedy(1))["ResponseMetadata"]["RequestId"]}
    assert len(ids) == 2
    for request_id in ids:
        assert str(uuid.UUID(request_id)) == request_id
    assert capital["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/json"


def test_assistant_prefill_is_continued(client, tokenizer):
    prefill = "The capital of France is"
    reply = converse(
        client, [user(CAPITAL), {"role": "assistant", "content": [{"text": prefill}]}], inferenceConfig=greedy(4)
    )
    answer = text_of(reply)
    assert "Paris" in answer
    assert not answer.startswith(prefill)  # only the continuation comes back, as from Claude
    prompt = template_ids(tokenizer, [{"role": "user", "content": CAPITAL}, {"role": "assistant", "content": prefill}],
                          continue_final=True)
    assert reply["usage"]["inputTokens"] == len(prompt)
