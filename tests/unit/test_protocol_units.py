"""Protocol pieces without a server: request ids, service-model input validation (Coral wording), event-stream
frames (checked with botocore's own decoder), and catalogue lookups."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from emulator.catalog import Catalog, CatalogFile, base_model_id, load_known_models
from emulator.protocol.errors import BedrockError
from emulator.protocol.eventstream import encode_message, event_frame, exception_frame
from emulator.protocol.ids import random_bytes, request_id
from emulator.protocol.shapes import validate_input

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"

# --- ids -----------------------------------------------------------------------------------------------------


def test_request_ids_are_version_4_uuids_in_the_usual_form():
    ids = [request_id() for _ in range(2000)]
    for value in ids:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", value)
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
    assert len(set(ids)) == len(ids)
    assert {v[19] for v in ids} == set("89ab")  # the variant nibble takes all four values: the other bits are random


def test_random_bytes_have_the_asked_length_and_differ():
    assert len(random_bytes(22)) == 22
    assert random_bytes(0) == b""
    assert random_bytes(16) != random_bytes(16)


# --- service-model validation --------------------------------------------------------------------------------


def coral(operation: str, params: dict) -> str:
    with pytest.raises(BedrockError) as caught:
        validate_input(operation, params)
    assert caught.value.code == "ValidationException"
    return caught.value.message


def test_a_valid_converse_input_passes():
    validate_input("Converse", {
        "modelId": HAIKU,
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "inferenceConfig": {"maxTokens": 1, "temperature": 0, "topP": 1, "stopSequences": []},
    })


def test_one_error_is_reported_in_corals_words():
    params = {"modelId": HAIKU, "messages": [], "inferenceConfig": {"maxTokens": 0}}
    assert coral("Converse", params) == (
        "1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    )


def test_several_errors_are_counted_and_joined_in_the_service_models_member_order():
    params = {"inferenceConfig": {"topP": 1.5, "temperature": -1}, "modelId": HAIKU, "messages": [{"role": "bot", "content": []}]}
    assert coral("Converse", params) == (
        "3 validation errors detected: "
        "Value 'bot' at 'messages.1.member.role' failed to satisfy constraint: Member must satisfy enum value set: "
        "[user, assistant, system]; "
        "Value '-1' at 'inferenceConfig.temperature' failed to satisfy constraint: Member must have value greater than "
        "or equal to 0; "
        "Value '1.5' at 'inferenceConfig.topP' failed to satisfy constraint: Member must have value less than or equal to 1"
    )


def test_a_missing_required_member_is_null():
    assert coral("Converse", {"messages": []}) == (
        "1 validation error detected: Value null at 'modelId' failed to satisfy constraint: Member must not be null")


def test_a_content_block_must_set_exactly_one_member():
    params = {"modelId": HAIKU, "messages": [{"role": "user", "content": [{"text": "a", "image": None}, {}]}]}
    assert coral("Converse", params) == (
        "1 validation error detected: Value at 'messages.1.member.content.2.member' failed to satisfy constraint: "
        "Member must have exactly one member set"
    )


def test_wrong_json_types_are_named():
    params = {"modelId": HAIKU, "messages": "hi", "inferenceConfig": {"maxTokens": "5", "stopSequences": [None]}}
    assert coral("Converse", params) == (
        "3 validation errors detected: Value 'hi' at 'messages' failed to satisfy constraint: Member must be a list; "
        "Value '5' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must be an integer; "
        "Value null at 'inferenceConfig.stopSequences.1.member' failed to satisfy constraint: Member must not be null"
    )


def test_sensitive_values_are_not_quoted():
    message = coral("InvokeModel", {"modelId": HAIKU, "requestMetadata": "x" * 9000})
    assert message == ("1 validation error detected: Value at 'requestMetadata' failed to satisfy constraint: "
                       "Member must have length less than or equal to 8500")


def test_header_members_are_checked_against_their_enums():
    message = coral("InvokeModel", {"modelId": HAIKU, "trace": "ON"})
    assert message == ("1 validation error detected: Value 'ON' at 'trace' failed to satisfy constraint: "
                       "Member must satisfy enum value set: [ENABLED, DISABLED, ENABLED_FULL]")


def test_model_ids_outside_the_pattern_are_refused():
    message = coral("InvokeModel", {"modelId": "bad id!"})
    assert message.startswith("1 validation error detected: Value 'bad id!' at 'modelId' failed to satisfy constraint: "
                              "Member must satisfy regular expression pattern: (arn:aws")


# --- event-stream frames -------------------------------------------------------------------------------------


def decoded(frames: bytes) -> list:
    buffer = EventStreamBuffer()
    buffer.add_data(frames)
    return list(buffer)


def test_event_frames_decode_with_botocore_headers_in_aws_order():
    payload = {"contentBlockDelta": {"delta": {"text": "héllo 👋"}, "contentBlockIndex": 0}}
    [message] = decoded(event_frame("contentBlockDelta", payload))
    assert message.headers == {":event-type": "contentBlockDelta", ":content-type": "application/json",
                               ":message-type": "event"}
    assert list(message.headers) == [":event-type", ":content-type", ":message-type"]
    assert json.loads(message.payload) == payload
    assert "héllo 👋".encode() in message.payload  # UTF-8 as is, not \u escapes


def test_exception_frames_decode_with_botocore():
    [message] = decoded(exception_frame("throttlingException", {"message": "slow down"}))
    assert message.headers == {":exception-type": "throttlingException", ":content-type": "application/json",
                               ":message-type": "exception"}
    assert json.loads(message.payload) == {"message": "slow down"}


def test_several_frames_in_one_buffer_and_split_anywhere_decode_in_order():
    frames = b"".join(event_frame("chunk", {"bytes": str(i) * i}) for i in range(1, 6))
    buffer = EventStreamBuffer()
    seen = []
    for i in range(0, len(frames), 7):
        buffer.add_data(frames[i:i + 7])
        seen += [json.loads(m.payload)["bytes"] for m in buffer]
    assert seen == ["1", "22", "333", "4444", "55555"]


def test_the_prelude_and_message_lengths_and_checksums_are_botocores():
    frame = encode_message([("a", "b")], b"xyz")
    assert int.from_bytes(frame[:4], "big") == len(frame) == 16 + (1 + 1 + 1 + 2 + 1) + 3
    assert int.from_bytes(frame[4:8], "big") == 6
    [message] = decoded(frame)
    assert (message.headers, message.payload) == ({"a": "b"}, b"xyz")
    corrupted = frame[:-5] + b"Q" + frame[-4:]
    with pytest.raises(ChecksumMismatch):
        decoded(corrupted)


def test_an_empty_payload_frame():
    [message] = decoded(encode_message([], b""))
    assert (message.headers, message.payload) == ({}, b"")


# --- catalogue lookups ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.mark.parametrize(
    "model_id, base",
    [
        (HAIKU, HAIKU),
        ("us." + HAIKU, HAIKU),
        ("global.anthropic.claude-opus-4-6-v1", "anthropic.claude-opus-4-6-v1"),
        ("arn:aws:bedrock:us-east-1::foundation-model/" + HAIKU, HAIKU),
        ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu." + HAIKU, HAIKU),
        ("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123def456", "provisioned-model/abc123def456"),
    ],
)
def test_every_form_of_a_model_id_has_one_base(model_id, base):
    assert base_model_id(model_id) == base


@pytest.mark.parametrize(
    "model_id, family",
    [
        (HAIKU, "anthropic"),
        ("us." + HAIKU, "anthropic"),
        ("anthropic.claude-v2:1", "anthropic"),
        ("amazon.titan-text-express-v1", "titan-text"),
        ("us.amazon.nova-lite-v1:0", "nova"),
        ("meta.llama3-8b-instruct-v1:0", "llama"),
        ("mistral.mistral-7b-instruct-v0:2", "mistral"),
        ("mistral.mistral-large-2407-v1:0", "mistral-chat"),
        ("cohere.command-r-plus-v1:0", "cohere-command-r"),
        ("cohere.command-text-v14", "cohere-command"),
        ("ai21.jamba-1-5-large-v1:0", "ai21-jamba"),
        ("us.deepseek.r1-v1:0", "deepseek"),
        ("openai.gpt-oss-20b-1:0", "openai"),
        ("amazon.titan-embed-text-v2:0", "titan-embed-v2"),
    ],
)
def test_known_ids_resolve_to_their_family(catalog, model_id, family):
    assert catalog.lookup(model_id).family == family


def test_a_profile_and_its_base_id_resolve_alike(catalog):
    base, profile = catalog.lookup(HAIKU), catalog.lookup("us." + HAIKU)
    assert (profile.family, profile.local, profile.max_output_tokens) == (base.family, base.local, base.max_output_tokens)
    assert base.max_output_tokens == 4096  # Claude 3 Haiku's documented limit
    assert catalog.lookup(HAIKU) is base  # memoised


@pytest.mark.parametrize("model_id", ["anthropic.claude-99-v1:0", "not-a-model", "us.meta.llama9-1b-v1:0"])
def test_an_unknown_id_gets_bedrocks_error(catalog, model_id):
    with pytest.raises(BedrockError) as caught:
        catalog.lookup(model_id)
    assert (caught.value.code, caught.value.message) == ("ValidationException", "The provided model identifier is invalid.")


def test_an_id_rule_answers_any_id_and_a_glob_only_known_ones_when_bedrocks_list_is_used():
    spec = CatalogFile.model_validate({
        "bedrock_models": "bedrock-models.yaml",
        "models": [{"id": "my-finetune", "family": "llama", "max_output_tokens": 77}, {"match": "anthropic.*"}],
    })
    catalog = Catalog(spec, known=load_known_models())
    mine = catalog.lookup("my-finetune")
    assert (mine.family, mine.max_output_tokens) == ("llama", 77)
    assert catalog.lookup(HAIKU).family == "anthropic"
    with pytest.raises(BedrockError):
        catalog.lookup("anthropic.claude-made-up-v1:0")


def test_without_bedrocks_list_a_glob_matches_any_id_and_needs_a_family():
    free = Catalog(CatalogFile.model_validate({"models": [{"match": "acme.*", "family": "nova"}, {"match": "*"}]}))
    entry = free.lookup("acme.anything-v9")
    assert (entry.family, entry.max_output_tokens) == ("nova", 4096)
    with pytest.raises(BedrockError) as caught:
        free.lookup("other.model")
    assert caught.value.message == "The model catalog rule for other.model names no family, and Bedrock has no model other.model."


def test_a_rule_naming_an_unknown_local_model_is_refused_when_the_catalogue_loads():
    with pytest.raises(ValueError, match="names unknown local model 'nope'"):
        CatalogFile.model_validate({"models": [{"match": "*", "local": "nope"}]})


def test_resource_arns_match_only_rules_written_for_them(catalog):
    imported = catalog.lookup("arn:aws:bedrock:us-east-1:123456789012:imported-model/abc123def456")
    assert (imported.family, imported.max_output_tokens) == ("llama", 2048)
    spec = CatalogFile.model_validate({"bedrock_models": "bedrock-models.yaml", "models": [{"match": "*"}]})
    with pytest.raises(BedrockError) as caught:
        Catalog(spec, known=load_known_models()).lookup("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc")
    assert caught.value.message == "The provided model identifier is invalid."
