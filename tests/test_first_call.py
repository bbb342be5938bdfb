"""Issue 9: the first call a real client makes works. Bedrock's real model catalogue and limits, natural endings
without `maxTokens`, agent loops that end, Claude's `output_config.format`, no prompt the caller did not send,
raw completion prompts, and the members botocore 1.44.8 added. Everything runs through real clients over HTTP.
"""

from __future__ import annotations

import json
import time

import boto3
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import user
from pydantic import BaseModel, Field

from emulator import families
from emulator.admin_client import EmulatorAdmin
from emulator.catalog import Catalog, bundled_model_file
from emulator.engine.loopguard import PARAGRAPH_CHARS, SENTENCE_CHARS, LoopGuard, NaturalEnding

SONNET_45 = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
HAIKU_45 = "global.anthropic.claude-haiku-4-5-20251001-v1:0"
INVALID_ID = "The provided model identifier is invalid."
KNOWN = yaml.safe_load(bundled_model_file("bedrock-models.yaml").read_text())["models"]
# The families with a text adapter (a new family is covered without editing this file).
TEXT_FAMILIES = {m["family"] for m in KNOWN
                 if m["family"] not in families.UNSERVED and isinstance(families.get(m["family"]), families.TextFamily)}


class Weather(BaseModel):
    """Weather report for a city."""

    city: str
    celsius: int = Field(ge=-60, le=60)
    sunny: bool


def error_of(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


# --- the catalogue ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("known", KNOWN, ids=[m["id"] for m in KNOWN])
def test_every_catalogue_id_resolves_to_its_family_and_limit(known):
    catalog = Catalog.load()
    forms = [known["id"], *(f"{prefix}.{known['id']}" for prefix in known["profiles"]),
             f"arn:aws:bedrock:us-east-1::foundation-model/{known['id']}"]
    for form in forms:
        entry = catalog.lookup(form)
        assert entry.family == known["family"], form
        if known["max_output_tokens"] is not None:
            assert entry.max_output_tokens == known["max_output_tokens"], form
        # Text and embedding models have local weights, and so does Nova Sonic (its text turns; audio is a stand-in).
        answered_locally = known["family"] in TEXT_FAMILIES or "embed" in known["family"] or known["family"] == "nova-sonic"
        assert (entry.local is None) == (not answered_locally), form


TEXT_IDS = [m for m in KNOWN if m["family"] in TEXT_FAMILIES]


@pytest.mark.parametrize("known", TEXT_IDS, ids=[m["id"] for m in TEXT_IDS])
def test_each_text_models_real_output_limit_over_http(client, known):
    limit = known["max_output_tokens"]
    code, message = error_of(lambda: client.converse(modelId=known["id"], messages=[user("Hi")],
                                                     inferenceConfig={"maxTokens": limit + 1}))
    assert code == "ValidationException"
    # Families whose native schema bounds the knob (Llama's max_gen_len) answer with the schema validator's words.
    assert message in (f"The maximum tokens you requested exceeds the model limit of {limit}. "
                       f"Try again with a maximum tokens value that is lower than {limit}.",) or (
        message.startswith("Malformed input request: #/") and f"{limit + 1} is not less or equal to {limit}," in message)


UNKNOWN_IDS = ["anthropic.no-such-model-v9:0", "us.anthropic.claude-sonnet-4-5-20990929-v1:0", "amazon.nova-nano-v1:0",
               "amazon.titan-text-ultra-v1", "meta.llama9-8b-instruct-v1:0", "mistral.mistral-huge-2501-v1:0",
               "cohere.command-z-v1:0", "ai21.jamba-9-v1:0", "deepseek.r9-v1:0", "openai.gpt-5-1:0",
               "qwen.qwen9-v1:0", "writer.palmyra-x9-v1:0", "stability.sd9-v1:0", "global.cohere.embed-v9:0",
               "no-provider-at-all"]


@pytest.mark.parametrize("model_id", UNKNOWN_IDS)
def test_unknown_ids_get_bedrocks_error_on_converse_and_invoke(client, model_id):
    assert error_of(lambda: client.converse(modelId=model_id, messages=[user("Hi")])) == ("ValidationException", INVALID_ID)
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]})
    assert error_of(lambda: client.invoke_model(modelId=model_id, body=body)) == ("ValidationException", INVALID_ID)


# --- natural endings -------------------------------------------------------------------------------------------

def test_loop_guard_catches_repeated_sentences_and_symbols():
    guard = LoopGuard()
    pieces = ["The capital ", "of France is", " Paris. "] * 3  # 7 units a round
    assert not any(guard.feed(p) for p in pieces)
    assert guard.feed("The ")  # 8 units after two full rounds, the first 8-gram comes round a third time
    long_sentence = "Paris is the capital and the largest city of France. "  # 11 units
    guard = LoopGuard()
    assert not guard.feed(long_sentence * 2 + "Paris is the capital and the largest")
    assert guard.feed(" city ")
    assert LoopGuard().feed("!" * 10)
    numbered = LoopGuard()
    assert numbered.feed("".join(f"Step {i}: stir the soup well.\n" for i in range(1, 4)))  # digits read as one


def test_loop_guard_leaves_ordinary_answers_alone():
    text = ("Paris is the capital of France. It is known for the Eiffel Tower, the Louvre and its cafes. "
            "The city sits on the Seine and has about two million inhabitants. 1. Food 2. Art 3. History.")
    guard = LoopGuard()
    assert not any(guard.feed(word + " ") for word in text.split())


def test_a_rambling_answer_ends_at_a_paragraph_then_a_sentence_boundary():
    ending = NaturalEnding()
    words = ["".join(chr(97 + (i * 7 + j * 3) % 26) for j in range(4 + i % 3)) for i in range(200)]  # no loop
    fed = 0
    for word in words:
        if fed + len(word) + 1 > PARAGRAPH_CHARS:
            break
        assert ending.feed(word + " ") is None
        fed += len(word) + 1
    assert ending.feed("and so on.\n") is None  # one line break is no paragraph break
    assert ending.feed("\nNext paragraph") == 0  # the break spans two pieces: nothing of this piece is kept
    late = NaturalEnding()
    assert late.feed("x" * 10 + " " * (SENTENCE_CHARS)) is None
    assert late.feed("It ends here. And") == len("It ends here.")


def test_converse_without_inference_config_ends_with_end_turn_in_seconds(client):
    started = time.monotonic()
    reply = client.converse(modelId=SONNET_45, messages=[user("What is the capital of France?")])
    assert reply["stopReason"] == "end_turn"
    assert reply["output"]["message"]["content"][0]["text"].strip()
    assert reply["usage"]["outputTokens"] < 1024
    assert time.monotonic() - started < 60  # a loaded 2-core CI machine; unguarded it ran for minutes


def test_a_request_with_max_tokens_keeps_exact_budget_behaviour(client):
    prompt = "Write a long, detailed story about a dragon who learns to cook, with many chapters."
    reply = client.converse(modelId=SONNET_45, messages=[user(prompt)], inferenceConfig={"maxTokens": 40, "temperature": 0})
    assert (reply["stopReason"], reply["usage"]["outputTokens"]) == ("max_tokens", 40)


# --- real clients ------------------------------------------------------------------------------------------------

def _pydantic_ai_model(client, model_id: str):
    pytest.importorskip("pydantic_ai")
    from pydantic_ai.models.bedrock import BedrockConverseModel
    from pydantic_ai.providers.bedrock import BedrockProvider

    return BedrockConverseModel(model_id, provider=BedrockProvider(bedrock_client=client))


def test_pydantic_ai_with_a_claude_45_id_and_default_settings(client):
    from pydantic_ai import Agent

    result = Agent(_pydantic_ai_model(client, SONNET_45)).run_sync("What is the capital of France?")
    assert isinstance(result.output, str) and result.output.strip()


def test_pydantic_ai_output_type_plus_a_tool_finishes_in_at_most_four_requests(client, server):
    from pydantic_ai import Agent, UsageLimits

    admin = EmulatorAdmin(server.url)
    admin.clear_invocations()
    agent = Agent(_pydantic_ai_model(client, SONNET_45), output_type=Weather)
    calls: list[str] = []

    @agent.tool_plain
    def get_temperature(city: str) -> int:
        """Current temperature in a city, in degrees Celsius."""
        calls.append(city)
        return 21

    result = agent.run_sync("What is the weather in Paris?", usage_limits=UsageLimits(request_limit=4))
    assert isinstance(result.output, Weather)
    requests = [e for e in admin.invocations() if e["operation"] == "Converse"]
    assert len(requests) <= 4
    # No call was made twice with the same input.
    seen = [(b["toolUse"]["name"], json.dumps(b["toolUse"]["input"], sort_keys=True))
            for e in requests for b in e["response"]["output"]["message"]["content"] if "toolUse" in b]
    assert len(seen) == len(set(seen))


def test_anthropic_messages_parse_applies_output_config_format(claude):
    parsed = claude.messages.parse(
        model=HAIKU_45, max_tokens=200,
        messages=[{"role": "user", "content": "It is 21 degrees and sunny in Paris. Report the weather."}],
        output_format=Weather, extra_body={"temperature": 0},
    )
    assert isinstance(parsed.parsed_output, Weather)
    assert parsed.stop_reason == "end_turn"


def test_output_config_format_streams_schema_valid_json_and_effort_is_accepted(client):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
              "additionalProperties": False}
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 80, "temperature": 0,
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "output_config": {"format": {"type": "json_schema", "schema": schema}, "effort": "low"}}
    reply = json.loads(client.invoke_model(modelId=HAIKU_45, body=json.dumps(body))["body"].read())
    assert set(json.loads(reply["content"][0]["text"])) == {"answer"}
    body["output_config"] = {"format": {"type": "json_object"}}
    code, message = error_of(lambda: client.invoke_model(modelId=HAIKU_45, body=json.dumps(body)))
    assert code == "ValidationException" and "output_config/format" in message


# --- no prompt the caller did not send --------------------------------------------------------------------------

def test_input_tokens_count_only_the_callers_text_and_the_template_markup(client, tokenizer):
    reply = client.converse(modelId=SONNET_45, messages=[user("who are you?")], inferenceConfig={"maxTokens": 1})
    # ChatML markup written out by hand, counted by a tokenizer loaded on its own: no default system prompt.
    expected = len(tokenizer("<|im_start|>user\nwho are you?<|im_end|>\n<|im_start|>assistant\n",
                             add_special_tokens=False)["input_ids"])
    assert reply["usage"]["inputTokens"] == expected
    with_system = client.converse(modelId=SONNET_45, messages=[user("who are you?")], system=[{"text": "Be brief."}],
                                  inferenceConfig={"maxTokens": 1})
    system_part = len(tokenizer("<|im_start|>system\nBe brief.<|im_end|>\n", add_special_tokens=False)["input_ids"])
    assert with_system["usage"]["inputTokens"] == expected + system_part


# --- raw completion prompts ---------------------------------------------------------------------------------------

RAW = "What is the capital of France? Answer in one short sentence."


@pytest.mark.parametrize(("model_id", "body", "text_of"), [
    ("meta.llama3-8b-instruct-v1:0", {"prompt": RAW, "max_gen_len": 30, "temperature": 0}, lambda r: r["generation"]),
    ("mistral.mistral-7b-instruct-v0:2", {"prompt": RAW, "max_tokens": 30, "temperature": 0},
     lambda r: r["outputs"][0]["text"]),
    ("deepseek.r1-v1:0", {"prompt": RAW, "max_tokens": 30, "temperature": 0}, lambda r: r["choices"][0]["text"]),
    ("amazon.titan-text-express-v1", {"inputText": RAW, "textGenerationConfig": {"maxTokenCount": 30, "temperature": 0}},
     lambda r: r["results"][0]["outputText"]),
    ("cohere.command-text-v14", {"prompt": RAW, "max_tokens": 30, "temperature": 0},
     lambda r: r["generations"][0]["text"]),
    ("ai21.j2-mid-v1", {"prompt": RAW, "maxTokens": 30, "temperature": 0},
     lambda r: r["completions"][0]["data"]["text"]),
])
def test_raw_completion_prompts_get_a_continuation(client, model_id, body, text_of):
    reply = json.loads(client.invoke_model(modelId=model_id, body=json.dumps(body))["body"].read())
    assert text_of(reply).strip()


# --- botocore 1.44.8 members ----------------------------------------------------------------------------------------

def test_project_identifier_effort_and_request_metadata_are_accepted(client):
    reply = client.converse(modelId=SONNET_45, messages=[user("Hi")], projectIdentifier="default",
                            outputConfig={"effort": "high"}, inferenceConfig={"maxTokens": 3})
    assert reply["stopReason"] in ("max_tokens", "end_turn")
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 3,
                       "messages": [{"role": "user", "content": "Hi"}]})
    reply = client.invoke_model(modelId=SONNET_45, body=body, projectIdentifier="my-project",
                                requestMetadata=json.dumps({"team": "search"}))
    assert json.loads(reply["body"].read())["type"] == "message"


def test_effort_outside_bedrocks_values_and_app_profiles_in_other_projects_are_refused(client):
    code, message = error_of(lambda: client.converse(modelId=SONNET_45, messages=[user("Hi")],
                                                     outputConfig={"effort": "extreme"}))
    assert code == "ValidationException" and "low, medium, high, xhigh, and max" in message
    profile = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 3,
                       "messages": [{"role": "user", "content": "Hi"}]})
    for call in (lambda: client.converse(modelId=profile, messages=[user("Hi")], projectIdentifier="proj-1"),
                 lambda: client.invoke_model(modelId=profile, body=body, projectIdentifier="proj-1")):
        code, message = error_of(call)
        assert code == "ValidationException" and "non-default projects" in message
    code, _ = error_of(lambda: client.converse(modelId=SONNET_45, messages=[user("Hi")], projectIdentifier="bad id!"))
    assert code == "ValidationException"


WEATHER_TOOL = {"toolSpec": {"name": "get_weather", "description": "Weather in a city",
                             "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}},
                                                      "required": ["city"]}}}}
TIME_TOOL = {"toolSpec": {"name": "get_time", "description": "Local time in a city",
                          "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}},
                                                   "required": ["city"]}}}}


def test_system_role_messages_add_and_remove_tools(client):
    removal = {"role": "system", "content": [{"toolRemoval": {"tool": {"type": "function", "name": "get_weather"}}}]}
    messages = [user("What is the weather in Paris?"), {"role": "assistant", "content": [{"text": "Let me see."}]},
                removal, user("And now?")]
    reply = client.converse(modelId=SONNET_45, messages=messages, inferenceConfig={"maxTokens": 40, "temperature": 0},
                            toolConfig={"tools": [WEATHER_TOOL, TIME_TOOL], "toolChoice": {"any": {}}})
    calls = [b["toolUse"]["name"] for b in reply["output"]["message"]["content"] if "toolUse" in b]
    assert calls == ["get_time"]  # the removed tool is no longer offered
    addition = {"role": "system", "content": [{"toolAddition": {"tool": {"name": "get_weather"}}}]}
    reply = client.converse(modelId=SONNET_45, messages=[*messages[:3], addition, user("And now?")],
                            inferenceConfig={"maxTokens": 40, "temperature": 0},
                            toolConfig={"tools": [WEATHER_TOOL], "toolChoice": {"any": {}}})
    assert [b["toolUse"]["name"] for b in reply["output"]["message"]["content"] if "toolUse" in b] == ["get_weather"]
    unknown = {"role": "system", "content": [{"toolRemoval": {"tool": {"name": "nope"}}}]}
    code, message = error_of(lambda: client.converse(modelId=SONNET_45, messages=[user("Hi"), unknown],
                                                     toolConfig={"tools": [WEATHER_TOOL]}))
    assert code == "ValidationException" and "nope" in message


def test_search_result_and_audio_blocks_reach_the_prompt(client, server):
    admin = EmulatorAdmin(server.url)
    search = {"searchResult": {"source": "https://example.com/paris", "title": "Paris facts",
                               "content": [{"text": "Paris is the capital of France."}]}}
    audio = {"audio": {"format": "mp3", "source": {"bytes": b"ID3" + bytes(29)}}}
    plain = client.converse(modelId=SONNET_45, messages=[user("Capital?")], inferenceConfig={"maxTokens": 1})
    rich = client.converse(modelId=SONNET_45, inferenceConfig={"maxTokens": 1},
                           messages=[{"role": "user", "content": [search, audio, {"text": "Capital?"}]}])
    assert rich["usage"]["inputTokens"] > plain["usage"]["inputTokens"] + 10
    assert admin.invocations(limit=1)[0]["status"] == 200


def test_an_answer_that_runs_out_of_context_stops_with_model_context_window_exceeded(server, tokenizer):
    from conftest import default_engine

    client = boto3.client("bedrock-runtime", endpoint_url=server.url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test",  # an 8k-token prompt: a slow read
                          config=Config(retries={"total_max_attempts": 1}, read_timeout=900))
    window = default_engine(server).model.context_length  # the local model's context (8192 for SmolLM2)

    def count(text: str) -> int:
        rendered = f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
        return len(tokenizer(rendered, add_special_tokens=False)["input_ids"])

    words = window - 40
    while count("apple " * words + "Go on.") > window - 6:
        words -= 8
    prompt = "apple " * words + "Go on."
    room = window - count(prompt)
    reply = client.converse(modelId=SONNET_45, messages=[user(prompt)],
                            inferenceConfig={"maxTokens": room + 50, "temperature": 0})
    if reply["stopReason"] == "end_turn":
        pytest.skip("the model ended its answer before the context ran out")
    assert reply["stopReason"] == "model_context_window_exceeded"
    assert reply["usage"]["outputTokens"] == room
    too_long = "apple " * (window + 10)
    assert error_of(lambda: client.converse(modelId=SONNET_45, messages=[user(too_long)])) == (
        "ValidationException", "Input is too long for requested model.")
