"""InvokeModel's envelope and validation: Bedrock's errors for bad headers, bodies and family/operation mismatches.

None of these reach the model, so they are quick.
"""

from __future__ import annotations

import json

import pytest
from native_calls import QUESTION, invoke, malformed, rejected, stream

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
CLAUDE = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 1, "messages": [{"role": "user", "content": QUESTION}]}


def test_missing_required_key_uses_the_schema_validators_words(client):
    body = {k: v for k, v in CLAUDE.items() if k != "max_tokens"}
    message = rejected(lambda: invoke(client, HAIKU, body))
    assert message == malformed("#: required key [max_tokens] not found")


def test_every_violation_is_listed(client):
    body = {"messages": CLAUDE["messages"], "max_tokens": "ten", "top_p": 2, "chat_id": "x"}
    message = rejected(lambda: invoke(client, HAIKU, body))
    assert message == malformed(
        "#: required key [anthropic_version] not found#: extraneous key [chat_id] is not permitted"
        "#/max_tokens: expected type: Integer, found: String#/top_p: 2 is not less or equal to 1"
    )


def test_claude_accepts_any_anthropic_version_string(client):
    reply, _ = invoke(client, HAIKU, {**CLAUDE, "anthropic_version": "2026-10-21"})
    assert reply["usage"]["output_tokens"] == 1


def test_claude_3_rejects_the_text_completions_body(client):
    body = {"prompt": f"\n\nHuman: {QUESTION}\n\nAssistant:", "max_tokens_to_sample": 5}
    message = rejected(lambda: invoke(client, HAIKU, body))
    assert message == '"claude-3-haiku-20240307" is not supported on this API. Please use the Messages API instead.'


def test_legacy_prompt_must_end_with_an_assistant_turn(client):
    body = {"prompt": f"\n\nHuman: {QUESTION}", "max_tokens_to_sample": 5}
    message = rejected(lambda: invoke(client, "anthropic.claude-v2", body))
    assert message == 'Invalid prompt: prompt must end with "\\n\\nAssistant:" turn'


def test_claude_message_content_rules(client):
    empty = {**CLAUDE, "messages": [{"role": "user", "content": ""}]}
    assert rejected(lambda: invoke(client, HAIKU, empty)) == "messages: text content blocks must be non-empty"
    bad_block = {**CLAUDE, "messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    assert rejected(lambda: invoke(client, HAIKU, bad_block)) == malformed("#/messages/0/content/0: required key [type] not found")
    spaced_prefill = {**CLAUDE, "messages": [*CLAUDE["messages"], {"role": "assistant", "content": "The answer is "}]}
    assert rejected(lambda: invoke(client, HAIKU, spaced_prefill)) == (
        "messages: final assistant content cannot end with trailing whitespace"
    )
    bad_role = {**CLAUDE, "messages": [{"role": "system", "content": "hi"}]}
    assert rejected(lambda: invoke(client, HAIKU, bad_role)) == malformed("#/messages/0/role: system is not a valid enum value")


@pytest.mark.parametrize(
    "model, body, detail",
    [
        ("amazon.titan-text-express-v1", {"inputText": "x", "textGenerationConfig": {"stopSequences": ["Observation"]}},
         "#/textGenerationConfig/stopSequences/0: string [Observation] does not match pattern ^(\\|+|User:)$"),
        ("amazon.titan-text-express-v1", {"inputText": "x", "textGenerationConfig": {"stopSequences": ["|", "User:"]}},
         "#/textGenerationConfig/stopSequences: expected maximum item count: 1, found: 2"),
        ("amazon.titan-text-express-v1", {"inputText": "x", "textGenerationConfig": {"temperature": 1.5}},
         "#/textGenerationConfig/temperature: 1.5 is not less or equal to 1"),
        ("meta.llama3-8b-instruct-v1:0", {"prompt": "x", "stop_sequences": ["a"]},
         "#: extraneous key [stop_sequences] is not permitted"),
        ("meta.llama3-8b-instruct-v1:0", {"prompt": "x", "max_gen_len": 4096}, "#/max_gen_len: 4096 is not less or equal to 2048"),
        ("cohere.command-r-v1:0", {"message": "x", "p": 1}, "#/p: 1 is not less or equal to 0.99"),
        ("cohere.command-r-v1:0", {"prompt": "x", "max_tokens": 5},
         "#: required key [message] not found#: extraneous key [prompt] is not permitted"),
        ("cohere.command-text-v14", {"prompt": "x", "stop_sequences": ["a", "b", "c", "d", "e"]},
         "#/stop_sequences: expected maximum item count: 4, found: 5"),
        ("amazon.nova-micro-v1:0", {"messages": [{"role": "user", "content": [{"text": "x"}]}], "inferenceConfig": {"topK": 500}},
         "#/inferenceConfig/topK: 500 is not less or equal to 128"),
        ("amazon.nova-micro-v1:0", {"messages": [{"role": "user", "content": [{"text": "x"}]}], "system": []},
         "#/system: expected minimum item count: 1, found: 0"),
        ("mistral.mistral-large-2407-v1:0", {"messages": [{"role": "user", "content": "x"}], "stop": ["a"]},
         "#: extraneous key [stop] is not permitted"),
        ("mistral.mistral-7b-instruct-v0:2", {"prompt": "x", "top_k": 0}, "#/top_k: 0 is not greater or equal to 1"),
        ("ai21.j2-mid-v1", {"prompt": "x", "stopSequences": ["a", "b"]}, "#/stopSequences: expected maximum item count: 1, found: 2"),
        ("us.deepseek.r1-v1:0", {"prompt": "x", "max_tokens": 0}, "#/max_tokens: 0 is not greater or equal to 1"),
        ("openai.gpt-oss-120b-1:0", {"messages": [{"role": "robot", "content": "x"}]},
         "#/messages/0/role: robot is not a valid enum value"),
    ],
)
def test_family_schemas(client, model, body, detail):
    assert rejected(lambda: invoke(client, model, body)) == malformed(detail)


def test_max_tokens_above_the_model_limit(client):
    body = {**CLAUDE, "max_tokens": 100_000}
    assert rejected(lambda: invoke(client, HAIKU, body)) == (
        "The maximum tokens you requested exceeds the model limit of 4096. "
        "Try again with a maximum tokens value that is lower than 4096."
    )


def test_gpt_oss_stream_flag_and_model_must_match_the_call(client):
    body = {"messages": [{"role": "user", "content": QUESTION}], "max_completion_tokens": 1}
    model = "openai.gpt-oss-20b-1:0"
    assert "stream" in rejected(lambda: invoke(client, model, {**body, "stream": True}))
    assert "stream" in rejected(lambda: stream(client, model, {**body, "stream": False}))
    assert "model" in rejected(lambda: invoke(client, model, {**body, "model": "openai.gpt-oss-120b-1:0"}))


def test_several_generations_do_not_stream(client):
    body = {"messages": [{"role": "user", "content": QUESTION}], "max_completion_tokens": 1, "n": 2}
    message = rejected(lambda: stream(client, "openai.gpt-oss-20b-1:0", body))
    assert message == "The emulator streams one generation per request; ask for a single generation to stream."


def test_non_json_bodies(client):
    assert rejected(lambda: invoke(client, HAIKU, b"not json")).startswith("Malformed input request: #: the request body is not valid JSON")
    assert rejected(lambda: invoke(client, HAIKU, b"[1, 2]")) == malformed("#: expected type: JSONObject, found: JSONArray")
    assert rejected(lambda: invoke(client, HAIKU, b"\xff\xfe")).startswith("Malformed input request:")


def test_content_types_clients_send_are_accepted(client):
    for content_type in ("application/json", "application/octet-stream", "*/*", "application/json; charset=utf-8"):
        reply, _ = invoke(client, HAIKU, CLAUDE, contentType=content_type, accept="*/*")
        assert reply["usage"]["output_tokens"] == 1


def test_unsupported_content_and_accept_types(client):
    assert rejected(lambda: invoke(client, HAIKU, CLAUDE, contentType="text/plain")) == (
        "The provided Content Type is invalid or not supported for this model"
    )
    assert rejected(lambda: invoke(client, HAIKU, CLAUDE, accept="image/png")) == (
        "The provided Accept Type is invalid or not supported for this model"
    )


def test_headers_are_validated_against_the_service_model(client):
    message = rejected(lambda: invoke(client, HAIKU, CLAUDE, trace="LOUD"))
    assert message == (
        "1 validation error detected: Value 'LOUD' at 'trace' failed to satisfy constraint: "
        "Member must satisfy enum value set: [ENABLED, DISABLED, ENABLED_FULL]"
    )
    reply, headers = invoke(client, HAIKU, CLAUDE, performanceConfigLatency="optimized", serviceTier="priority")
    assert headers["x-amzn-bedrock-performanceconfig-latency"] == "optimized"
    assert headers["x-amzn-bedrock-service-tier"] == "priority"


def test_unknown_model_id(client):
    assert rejected(lambda: invoke(client, "acme.unknown-model-v1", CLAUDE)) == "The provided model identifier is invalid."


def test_embedding_and_image_models_do_not_stream(client):
    for model, body in [
        ("amazon.titan-embed-text-v2:0", {"inputText": "x"}),
        ("amazon.titan-image-generator-v2:0", {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "x"}}),
        ("ai21.j2-mid-v1", {"prompt": "x"}),
    ]:
        assert rejected(lambda: stream(client, model, body)) == "The model is unsupported for streaming."


def test_text_models_asked_to_embed_and_embedding_models_asked_to_generate(client):
    assert rejected(lambda: invoke(client, HAIKU, {"inputText": "hello"})) == malformed(
        "#: required key [anthropic_version] not found#: required key [max_tokens] not found"
        "#: required key [messages] not found#: extraneous key [inputText] is not permitted"
    )
    assert rejected(lambda: invoke(client, "cohere.embed-english-v3", {"inputText": "hello"})) == malformed(
        "#: required key [texts] not found#: required key [input_type] not found#: extraneous key [inputText] is not permitted"
    )
    message = rejected(lambda: client.converse(modelId="amazon.titan-embed-text-v2:0",
                                               messages=[{"role": "user", "content": [{"text": "hi"}]}]))
    assert message.startswith("This action doesn't support the model that you provided.")


def test_profiles_and_arns_reach_the_same_family(client):
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
    reply, _ = invoke(client, arn, CLAUDE)
    assert reply["model"] == "claude-3-haiku-20240307"


def test_body_is_sent_raw_not_json_encoded_twice(client):
    # A compact body, as the JS SDK and litellm send it.
    reply, _ = invoke(client, HAIKU, json.dumps(CLAUDE, separators=(",", ":")).encode())
    assert reply["usage"]["output_tokens"] == 1
