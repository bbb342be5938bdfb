"""Native InvokeModel bodies checked as Bedrock's everit validator checks them: which pass, and the exact wording."""

from __future__ import annotations

import pytest

from emulator import families
from emulator.catalog import Entry
from emulator.families import schema as s
from emulator.protocol.errors import BedrockError

SPEC = s.Obj(
    {
        "prompt": s.Str(),
        "max_tokens": s.Int(1, 4096),
        "temperature": s.Num(0, 1),
        "stop": s.Arr(s.Str(pattern=r"^(\|+|User:)$"), max_items=1),
        "mode": s.Str(enum=("fast", "slow")),
        "system": s.OneOf("string", "array"),
        "flag": s.Bool(),
        "tag": s.Str(min_length=2, max_length=4),
        "extra": s.Obj(closed=False),
    },
    required=("prompt", "max_tokens"),
)


def refusal(spec: s.Spec, body: object, require: bool = True) -> str:
    with pytest.raises(BedrockError) as caught:
        s.check(spec, body, require=require)
    assert caught.value.code == "ValidationException"
    assert caught.value.status == 400
    return caught.value.message


def family_refusal(name: str, body: dict) -> str:
    with pytest.raises(BedrockError) as caught:
        families.get(name).validate(body)
    return caught.value.message


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "hi", "max_tokens": 10},
        {"prompt": "hi", "max_tokens": 10.0},  # an integral float passes as an integer
        {"prompt": "", "max_tokens": 1, "temperature": 0, "stop": ["||"], "mode": "slow", "system": [],
         "flag": False, "tag": "abcd", "extra": {"anything": [1, {"goes": None}]}},
        {"prompt": "hi", "max_tokens": 4096, "temperature": 1, "stop": ["User:"], "system": "text"},
    ],
)
def test_bodies_within_the_schema_pass(body):
    s.check(SPEC, body)
    assert s.violations(SPEC, body) == []


@pytest.mark.parametrize(
    "body, detail",
    [
        ({}, "#: required key [prompt] not found#: required key [max_tokens] not found"),
        ({"prompt": "x", "max_tokens": 5, "zz": 1, "aa": 2},
         "#: extraneous key [zz] is not permitted#: extraneous key [aa] is not permitted"),
        ({"prompt": "x", "max_tokens": "5"}, "#/max_tokens: expected type: Integer, found: String"),
        ({"prompt": "x", "max_tokens": 5.5}, "#/max_tokens: expected type: Integer, found: BigDecimal"),
        ({"prompt": "x", "max_tokens": True}, "#/max_tokens: expected type: Integer, found: Boolean"),
        ({"prompt": None, "max_tokens": 5}, "#/prompt: expected type: String, found: Null"),
        ({"prompt": ["x"], "max_tokens": 5}, "#/prompt: expected type: String, found: JSONArray"),
        ({"prompt": {}, "max_tokens": 5}, "#/prompt: expected type: String, found: JSONObject"),
        ({"prompt": "x", "max_tokens": 0}, "#/max_tokens: 0 is not greater or equal to 1"),
        ({"prompt": "x", "max_tokens": 5000}, "#/max_tokens: 5000 is not less or equal to 4096"),
        ({"prompt": "x", "max_tokens": 5, "temperature": 1.5}, "#/temperature: 1.5 is not less or equal to 1"),
        ({"prompt": "x", "max_tokens": 5, "temperature": -2.0}, "#/temperature: -2 is not greater or equal to 0"),
        ({"prompt": "x", "max_tokens": 5, "stop": [" Observation"]},
         "#/stop/0: string [ Observation] does not match pattern ^(\\|+|User:)$"),
        ({"prompt": "x", "max_tokens": 5, "stop": ["|", "|", "User:"]},
         "#/stop: expected maximum item count: 1, found: 3"),
        ({"prompt": "x", "max_tokens": 5, "mode": "medium"}, "#/mode: medium is not a valid enum value"),
        ({"prompt": "x", "max_tokens": 5, "system": 3},
         "#/system: expected type: one of [String, JSONArray], found: Integer"),
        ({"prompt": "x", "max_tokens": 5, "flag": "yes"}, "#/flag: expected type: Boolean, found: String"),
        ({"prompt": "x", "max_tokens": 5, "tag": "a"}, "#/tag: expected minLength: 2, actual: 1"),
        ({"prompt": "x", "max_tokens": 5, "tag": "abcde"}, "#/tag: expected maxLength: 4, actual: 5"),
        ([], "#: expected type: JSONObject, found: JSONArray"),
    ],
)
def test_each_violation_has_the_validators_wording(body, detail):
    assert refusal(SPEC, body) == f"Malformed input request: {detail}, please reformat your input and try again."


def test_every_violation_is_reported_required_then_extraneous_then_members_without_separator():
    body = {"temperature": 3, "bogus": 1, "stop": ["x", "y"]}
    assert refusal(SPEC, body) == (
        "Malformed input request: #: required key [prompt] not found#: required key [max_tokens] not found"
        "#: extraneous key [bogus] is not permitted#/temperature: 3 is not less or equal to 1"
        "#/stop: expected maximum item count: 1, found: 2#/stop/0: string [x] does not match pattern ^(\\|+|User:)$"
        "#/stop/1: string [y] does not match pattern ^(\\|+|User:)$, please reformat your input and try again."
    )


def test_a_partial_body_skips_required_keys_but_not_the_members_present():
    s.check(SPEC, {"temperature": 0.5}, require=False)
    assert refusal(SPEC, {"temperature": 5}, require=False).startswith(
        "Malformed input request: #/temperature: 5 is not less or equal to 1,")


def test_nested_pointers_start_where_the_value_was_found():
    spec = s.Obj({"type": s.Str(), "text": s.Str()}, required=("type", "text"))
    with pytest.raises(BedrockError) as caught:
        s.check_at(spec, {"type": "text", "cache": 1}, ("messages", 0, "content", 2))
    assert caught.value.message == (
        "Malformed input request: #/messages/0/content/2: required key [text] not found"
        "#/messages/0/content/2: extraneous key [cache] is not permitted, please reformat your input and try again."
    )


def test_long_values_are_quoted_cut_short():
    detail = refusal(SPEC, {"prompt": "x", "max_tokens": 5, "mode": "m" * 1000})
    assert "#/mode: " + "m" * 256 + "... is not a valid enum value" in detail


@pytest.mark.parametrize("value, text", [(1.0, "1"), (0.99, "0.99"), (2, "2"), (1.5, "1.5"), (-0.0, "0")])
def test_numbers_print_as_the_validator_prints_them(value, text):
    assert s.number_text(value) == text


# --- the families' own schemas -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "family, body, detail",
    [
        ("llama", {"prompt": "hi", "stop_sequences": ["x"]}, "#: extraneous key [stop_sequences] is not permitted"),
        ("llama", {"prompt": "hi", "max_gen_len": 4096}, "#/max_gen_len: 4096 is not less or equal to 2048"),
        ("cohere-command-r", {"message": "hi", "p": 1}, "#/p: 1 is not less or equal to 0.99"),
        ("cohere-command-r", {"message": "hi", "prompt": "x", "logit_bias": {}},
         "#: extraneous key [prompt] is not permitted#: extraneous key [logit_bias] is not permitted"),
        ("titan-text", {"inputText": "hi", "textGenerationConfig": {"stopSequences": [" Observation"]}},
         "#/textGenerationConfig/stopSequences/0: string [ Observation] does not match pattern ^(\\|+|User:)$"),
        ("titan-text", {"inputText": "hi", "textGenerationConfig": {"stopSequences": ["|", "|", "|", "|", "|"]}},
         "#/textGenerationConfig/stopSequences: expected maximum item count: 1, found: 5"),
        ("anthropic", {"messages": []},
         "#: required key [anthropic_version] not found#: required key [max_tokens] not found"),
        ("anthropic", {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": [], "chat_id": "1"},
         "#: extraneous key [chat_id] is not permitted"),
        ("anthropic", {"anthropic_version": "v", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
         "#/messages/0/role: system is not a valid enum value"),
        ("ai21-j2", {"prompt": "hi", "stopSequences": ["a", "b"]}, "#/stopSequences: expected maximum item count: 1, found: 2"),
        ("deepseek", {"prompt": "hi", "max_tokens": 40000}, "#/max_tokens: 40000 is not less or equal to 32768"),
        ("mistral", {"prompt": "hi", "top_k": 0}, "#/top_k: 0 is not greater or equal to 1"),
        ("nova", {"messages": [], "system": []}, "#/system: expected minimum item count: 1, found: 0"),
        ("openai", {"messages": []}, "#/messages: expected minimum item count: 1, found: 0"),
    ],
)
def test_family_schemas_refuse_what_bedrock_refuses(family, body, detail):
    assert family_refusal(family, body) == f"Malformed input request: {detail}, please reformat your input and try again."


@pytest.mark.parametrize(
    "family, body",
    [
        ("llama", {"prompt": "hi", "max_gen_len": 2048, "temperature": 0.5, "top_p": 0.9}),
        ("titan-text", {"inputText": "User: hi\nBot:", "textGenerationConfig": {"stopSequences": ["User:"], "maxTokenCount": 10}}),
        ("anthropic", {"anthropic_version": "2026-10-21", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
                       "top_k": 250, "stop_sequences": ["\n\nHuman:"]}),
        ("cohere-command-r", {"message": "hi", "p": 0.99, "k": 500, "seed": 42, "chat_history": [{"role": "CHATBOT", "message": "x"}]}),
        ("nova", {"messages": [{"role": "user", "content": [{"text": "hi"}]}],
                  "inferenceConfig": {"maxTokens": 5, "topK": 20}}),
        ("mistral", {"prompt": "<s>[INST] hi [/INST]", "stop": ["\n\n"], "top_k": 200}),
    ],
)
def test_family_schemas_accept_documented_bodies(family, body):
    families.get(family).validate(body)


def test_an_unknown_family_name_is_refused_with_its_name():
    with pytest.raises(BedrockError) as caught:
        families.get("no-such-family")
    assert caught.value.message == "The model family 'no-such-family' named in the model catalog is not supported."


# --- sampling controls read from native bodies ---------------------------------------------------------------


def entry(family: str, limit: int = 4096, **defaults) -> Entry:
    return Entry(id="test.model-v1:0", family=family, max_output_tokens=limit, defaults=defaults)


@pytest.fixture(autouse=True)
def default_budget(monkeypatch):
    monkeypatch.delenv("BEDROCK_EMULATOR_NATURAL_BUDGET", raising=False)


def test_anthropic_controls_and_defaults():
    family = families.get("anthropic")
    p = family.sampling({"max_tokens": 300, "temperature": 0.2, "stop_sequences": ["END"]}, entry("anthropic"))
    assert (p.max_new_tokens, p.temperature, p.top_p, p.top_k, p.stop_sequences) == (300, 0.2, 0.999, 0, ("END",))
    assert (p.natural_end, p.fallback_budget, p.seed) == (False, False, None)


def test_titan_reads_its_nested_controls_and_its_own_defaults():
    family = families.get("titan-text")
    p = family.sampling({"textGenerationConfig": {"maxTokenCount": 50, "topP": 0.5}}, entry("titan-text"))
    assert (p.max_new_tokens, p.temperature, p.top_p, p.top_k) == (50, 0.7, 0.5, 0)


def test_the_catalogue_entry_defaults_override_the_familys():
    p = families.get("mistral").sampling({"max_tokens": 5}, entry("mistral", temperature=0.7, top_p=1.0))
    assert (p.temperature, p.top_p, p.top_k) == (0.7, 1.0, 50)


def test_nova_accepts_both_spellings_of_its_controls():
    family = families.get("nova")
    camel = family.sampling({"inferenceConfig": {"maxTokens": 9, "topP": 0.3, "topK": 7}}, entry("nova"))
    snake = family.sampling({"inferenceConfig": {"max_new_tokens": 9, "top_p": 0.3, "top_k": 7}}, entry("nova"))
    assert camel == snake
    assert (camel.max_new_tokens, camel.top_p, camel.top_k) == (9, 0.3, 7)


def test_a_body_without_a_token_limit_ends_naturally_within_the_fallback_budget():
    p = families.get("anthropic").sampling({}, entry("anthropic", limit=64000))
    assert (p.max_new_tokens, p.natural_end, p.fallback_budget) == (1024, True, True)


def test_asking_for_the_models_own_maximum_means_no_limit():
    p = families.get("anthropic").sampling({"max_tokens": 64000}, entry("anthropic", limit=64000))
    assert (p.max_new_tokens, p.natural_end) == (1024, True)


def test_a_token_limit_over_the_models_maximum_is_refused_with_bedrocks_message():
    with pytest.raises(BedrockError) as caught:
        families.get("anthropic").sampling({"max_tokens": 5000}, entry("anthropic", limit=4096))
    assert caught.value.message == (
        "The maximum tokens you requested exceeds the model limit of 4096. "
        "Try again with a maximum tokens value that is lower than 4096."
    )


def test_seeds_are_read_where_the_family_has_one():
    assert families.get("cohere-command-r").sampling({"seed": 42}, entry("cohere-command-r")).seed == 42
    assert families.get("openai").sampling({"seed": -3}, entry("openai")).seed == -3
    assert families.get("anthropic").sampling({}, entry("anthropic")).seed is None


def test_too_many_stop_sequences_are_refused():
    with pytest.raises(BedrockError) as caught:
        families.get("cohere-command").sampling({"stop_sequences": ["a"] * 5}, entry("cohere-command"))
    assert caught.value.message == ("Malformed input request: #/stop_sequences: expected maximum item count: 4, "
                                    "found: 5, please reformat your input and try again.")


def test_converse_inference_config_maps_onto_each_familys_native_members():
    config = {"maxTokens": 10, "temperature": 0.1, "topP": 0.2, "stopSequences": ["x"]}
    assert families.get("titan-text").converse_native(config, None) == {
        "textGenerationConfig": {"maxTokenCount": 10, "temperature": 0.1, "topP": 0.2, "stopSequences": ["x"]}}
    assert families.get("cohere-command-r").converse_native(config, {"k": 5}) == {
        "max_tokens": 10, "temperature": 0.1, "p": 0.2, "stop_sequences": ["x"], "k": 5}
    assert families.get("nova").converse_native({"maxTokens": 3}, {"inferenceConfig": {"topK": 20}}) == {
        "inferenceConfig": {"maxTokens": 3, "topK": 20}}


def test_converse_stop_sequences_are_refused_for_a_family_without_them():
    with pytest.raises(BedrockError) as caught:
        families.get("llama").converse_native({"stopSequences": ["x"]}, None)
    assert caught.value.message == "This model doesn't support the stopSequences field. Remove stopSequences and try again."
