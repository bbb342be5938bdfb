"""A real inference engine behind the emulator: llama.cpp's OpenAI-compatible server (llama-cpp-python[server]) on
loopback, serving the default model's own GGUF, reached by boto3 through the emulator's Bedrock API.

The server is built once into `<cache>/engines/llama-cpp-venv` by `scripts/llama-server-venv` (minutes on first
use, then cached). What the emulator answers is compared with what the same engine answers when called directly.

A silent engine (ModelTimeoutException) is tested with the scripted server in test_engines_protocol.py: a client
that leaves llama-cpp-python before its first chunk leaves that server stuck (its publisher blocks on a send to
the gone client while holding the model lock), so a real-engine timeout test would wedge the engine for the rest.
"""

from __future__ import annotations

import json
import socket
import textwrap
import threading
import time
import urllib.request

import jsonschema
import numpy as np
import pytest
from botocore.exceptions import ClientError, EventStreamError
from conftest import make_client, user
from native_calls import invoke, rejected, stream

from emulator.app import Settings
from emulator.server import BackgroundServer
from emulator.testing import llama_server

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
LLAMA = "meta.llama3-8b-instruct-v1:0"
DEAD = "anthropic.claude-dead-engine"  # a rule whose engine is not running
NARROW = "anthropic.claude-narrow-engine"  # max_concurrency 1
MORTAL = "anthropic.claude-mortal-engine"  # its own engine process, killed by a test
COUNTED = "anthropic.claude-tokenizer-engine"  # counts input tokens with the entry's tokenizer
QUESTION = "Describe Paris in detail, in at least 200 words."
GREEDY = {"temperature": 0, "topP": 1}
# What the emulator sends along with Bedrock's sampling fields to llama-cpp-python: plain sampling, no penalties.
ENGINE_PLAIN = {"temperature": 0, "top_p": 1, "top_k": 0, "min_p": 0, "repeat_penalty": 1.0}


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again: nothing listens there


@pytest.fixture(scope="module")
def engine_python():
    python = llama_server.venv_python(build=True)
    if python is None:
        pytest.skip("llama-cpp-python[server] could not be built here (scripts/llama-server-venv failed; see stderr)")
    return python


@pytest.fixture(scope="module")
def gguf():
    return llama_server.default_gguf()


@pytest.fixture(scope="module")
def engine(engine_python, gguf):
    server = llama_server.LlamaServer(engine_python, gguf).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def embedding_engine(engine_python, gguf):
    """The same GGUF in llama.cpp's embedding mode (mean-pooled hidden states): no small embedding GGUF is in the
    cache (the default embedding model is a transformers folder), so the decoder stands in to test the plumbing."""
    server = llama_server.LlamaServer(engine_python, gguf, embedding=True, n_ctx=512).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mortal_engine(engine_python, gguf):
    server = llama_server.LlamaServer(engine_python, gguf).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def emulator(engine, embedding_engine, mortal_engine, tmp_path_factory):
    def entry(url: str, **extra) -> str:
        fields = {"base_url": url, "model": llama_server.MODEL_ALIAS, "engine": "llama-cpp-python", "timeout_s": 60,
                  **extra}
        return json.dumps(fields)

    catalog = tmp_path_factory.mktemp("engines") / "catalog.yaml"
    dead = f"http://127.0.0.1:{_dead_port()}/v1"
    catalog.write_text(textwrap.dedent(f"""
        local_models:
          engine-text: {{kind: text, openai: {entry(engine.base_url)}}}
          engine-embed: {{kind: embedding, openai: {entry(embedding_engine.base_url)}}}
          engine-dead: {{kind: text, openai: {entry(dead)}}}
          engine-narrow: {{kind: text, openai: {entry(engine.base_url, max_concurrency=1)}}}
          engine-mortal: {{kind: text, openai: {entry(mortal_engine.base_url)}}}
          engine-counted: {{kind: text, openai: {entry(engine.base_url, tokenizer=str(llama_server.default_model_folder()))}}}
        models:
          - {{id: "{DEAD}", family: anthropic, local: engine-dead, max_output_tokens: 4096}}
          - {{id: "{NARROW}", family: anthropic, local: engine-narrow, max_output_tokens: 4096}}
          - {{id: "{MORTAL}", family: anthropic, local: engine-mortal, max_output_tokens: 4096}}
          - {{id: "{COUNTED}", family: anthropic, local: engine-counted, max_output_tokens: 4096}}
          - {{match: "anthropic.*", family: anthropic, local: engine-text, max_output_tokens: 4096}}
          - {{match: "meta.llama*", family: llama, local: engine-text, max_output_tokens: 2048}}
          - {{match: "amazon.nova-*", family: nova, local: engine-text, max_output_tokens: 5000}}
          - {{match: "amazon.titan-embed-text-v1*", family: titan-embed-v1, local: engine-embed}}
          - {{match: "amazon.titan-embed-text-v2*", family: titan-embed-v2, local: engine-embed}}
          - {{match: "cohere.embed*", family: cohere-embed, local: engine-embed}}
        """))
    server = BackgroundServer(Settings(catalog_path=catalog)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rc(emulator):
    return make_client(emulator.url)


def direct(engine, path: str, body: dict, timeout: float = 120) -> dict:
    """The engine called directly, as a user would without the emulator."""
    request = urllib.request.Request(engine.base_url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.loads(reply.read())


def direct_chat(engine, messages: list[dict], max_tokens: int, **extra) -> dict:
    return direct(engine, "/chat/completions", {"model": llama_server.MODEL_ALIAS, "messages": messages,
                                                "max_tokens": max_tokens, **ENGINE_PLAIN, **extra})


def converse(rc, text: str = QUESTION, max_tokens: int = 40, model: str = HAIKU, **kwargs) -> dict:
    return rc.converse(modelId=model, messages=[user(text)], inferenceConfig={"maxTokens": max_tokens, **GREEDY},
                       **kwargs)


def converse_stream(rc, text: str = QUESTION, max_tokens: int = 40, model: str = HAIKU, stops=(), **kwargs):
    config = {"maxTokens": max_tokens, **GREEDY, **({"stopSequences": list(stops)} if stops else {})}
    reply = rc.converse_stream(modelId=model, messages=[user(text)], inferenceConfig=config, **kwargs)
    return list(reply["stream"])


def streamed_text(events: list[dict]) -> str:
    return "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)


def only(events: list[dict], key: str) -> dict:
    found = [e[key] for e in events if key in e]
    assert len(found) == 1, events
    return found[0]


# --- text: the engine's own answer, through every API ---------------------------------------------------------

def test_greedy_converse_is_the_engines_greedy_chat_completion_with_its_usage(rc, engine):
    mine = converse(rc)
    theirs = direct_chat(engine, [{"role": "user", "content": QUESTION}], 40)
    assert mine["output"]["message"]["content"] == [{"text": theirs["choices"][0]["message"]["content"]}]
    assert mine["stopReason"] == "max_tokens" and theirs["choices"][0]["finish_reason"] == "length"
    assert mine["usage"]["inputTokens"] == theirs["usage"]["prompt_tokens"]
    assert mine["usage"]["outputTokens"] == theirs["usage"]["completion_tokens"] == 40
    assert mine["usage"]["totalTokens"] == theirs["usage"]["total_tokens"]


def test_the_stream_equals_the_non_stream_answer(rc):
    whole = converse(rc, max_tokens=30)
    events = converse_stream(rc, max_tokens=30)
    deltas = [e for e in events if "contentBlockDelta" in e]
    assert len(deltas) > 5  # token by token, as the engine streams
    assert streamed_text(events) == whole["output"]["message"]["content"][0]["text"]
    assert only(events, "messageStop")["stopReason"] == whole["stopReason"] == "max_tokens"
    assert only(events, "metadata")["usage"] == whole["usage"]


def test_count_tokens_equals_the_billed_input_tokens(rc):
    billed = converse(rc, max_tokens=3)["usage"]["inputTokens"]
    counted = rc.count_tokens(modelId=HAIKU, input={"converse": {"messages": [user(QUESTION)]}})["inputTokens"]
    assert counted == billed


def test_a_tokenizer_named_in_the_entry_counts_what_the_engine_bills(rc):
    """llama-cpp-python reports no usage in a stream: input tokens come from the entry's tokenizer (same GGUF)."""
    events = converse_stream(rc, max_tokens=3, model=COUNTED)
    billed = only(events, "metadata")["usage"]["inputTokens"]
    probed = converse(rc, max_tokens=3)["usage"]["inputTokens"]  # counted by a probe request on the engine
    counted = rc.count_tokens(modelId=COUNTED, input={"converse": {"messages": [user(QUESTION)]}})["inputTokens"]
    assert billed == probed == counted


def test_an_end_of_turn_stop_reason_and_short_answer(rc, engine):
    mine = converse(rc, "Reply with just the word: yes", max_tokens=100)
    theirs = direct_chat(engine, [{"role": "user", "content": "Reply with just the word: yes"}], 100)
    assert theirs["choices"][0]["finish_reason"] == "stop"
    assert mine["stopReason"] == "end_turn"
    assert mine["output"]["message"]["content"][0]["text"] == theirs["choices"][0]["message"]["content"]
    assert mine["usage"]["outputTokens"] == theirs["usage"]["completion_tokens"]


def test_max_tokens_cuts_the_answer_at_that_many_tokens(rc):
    reply = converse(rc, max_tokens=5)
    assert reply["stopReason"] == "max_tokens"
    assert reply["usage"]["outputTokens"] == 5


def _stop_inside(text: str) -> tuple[str, str]:
    """A stop sequence from the middle of `text` (several words, so it spans several tokens) and what precedes it."""
    words = text.split(" ")
    stop = " ".join(words[3:5])
    return stop, text[: text.index(stop)]


def test_stop_sequences_end_the_answer_and_never_leak_even_across_chunks(rc):
    full = converse(rc)["output"]["message"]["content"][0]["text"]
    stop, before = _stop_inside(full)
    reply = rc.converse(modelId=HAIKU, messages=[user(QUESTION)],
                        inferenceConfig={"maxTokens": 40, "stopSequences": [stop], **GREEDY})
    assert reply["stopReason"] == "stop_sequence"
    assert reply["output"]["message"]["content"][0]["text"] == before
    events = converse_stream(rc, stops=[stop])
    pieces = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    assert "".join(pieces) == before  # no piece of the stop sequence, not even a prefix held in a chunk
    assert only(events, "messageStop")["stopReason"] == "stop_sequence"


def test_anthropic_native_body_and_stream(rc):
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 30, "temperature": 0,
            "messages": [{"role": "user", "content": QUESTION}]}
    reply, headers = invoke(rc, HAIKU, body)
    converse_text = converse(rc, max_tokens=30)["output"]["message"]["content"][0]["text"]
    assert reply["content"] == [{"type": "text", "text": converse_text}]
    assert reply["stop_reason"] == "max_tokens" and reply["usage"]["output_tokens"] == 30
    chunks, _ = stream(rc, HAIKU, body)
    text = "".join(c["delta"].get("text", "") for c in chunks if c["type"] == "content_block_delta")
    assert text == converse_text
    start = next(c for c in chunks if c["type"] == "message_start")
    assert start["message"]["usage"]["input_tokens"] == reply["usage"]["input_tokens"]


def test_a_raw_llama_prompt_goes_to_the_engines_completions_as_written(rc, engine):
    prompt = "The three primary colours are"
    reply, _ = invoke(rc, LLAMA, {"prompt": prompt, "max_gen_len": 20, "temperature": 0})
    theirs = direct(engine, "/completions", {"model": llama_server.MODEL_ALIAS, "prompt": prompt, "max_tokens": 20,
                                             **ENGINE_PLAIN})
    assert reply["generation"] == theirs["choices"][0]["text"]
    assert reply["prompt_token_count"] == theirs["usage"]["prompt_tokens"]
    assert reply["generation_token_count"] == theirs["usage"]["completion_tokens"] == 20
    assert reply["stop_reason"] == "length"


# --- tools and structured output ------------------------------------------------------------------------------

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40},
                                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"]}
TIME = {"type": "object", "properties": {"timezone": {"type": "string", "maxLength": 40}}, "required": ["timezone"]}


def tool_config(choice: dict) -> dict:
    return {"tools": [{"toolSpec": {"name": "get_weather", "description": "Current weather in a city",
                                    "inputSchema": {"json": WEATHER}}},
                      {"toolSpec": {"name": "get_time", "description": "Current time in a timezone",
                                    "inputSchema": {"json": TIME}}}],
            "toolChoice": choice}


def test_a_forced_tool_call_is_schema_valid_in_converse_and_its_stream(rc):
    config = tool_config({"tool": {"name": "get_weather"}})
    reply = converse(rc, "What is the weather in Paris?", max_tokens=80, toolConfig=config)
    assert reply["stopReason"] == "tool_use"
    use = next(b["toolUse"] for b in reply["output"]["message"]["content"] if "toolUse" in b)
    assert use["name"] == "get_weather" and use["toolUseId"].startswith("tooluse_")
    jsonschema.validate(use["input"], WEATHER)
    events = converse_stream(rc, "What is the weather in Paris?", max_tokens=80, toolConfig=config)
    start = only(events, "contentBlockStart")["start"]["toolUse"]
    assert start["name"] == "get_weather"
    streamed = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events
                       if "contentBlockDelta" in e and "toolUse" in e["contentBlockDelta"]["delta"])
    assert json.loads(streamed) == use["input"]  # greedy: the same call, streamed as the engine produced it
    assert only(events, "messageStop")["stopReason"] == "tool_use"


def test_any_tool_choice_among_several_tools_yields_one_valid_call(rc):
    reply = converse(rc, "What time is it in Tokyo?", max_tokens=80, toolConfig=tool_config({"any": {}}))
    assert reply["stopReason"] == "tool_use"
    use = next(b["toolUse"] for b in reply["output"]["message"]["content"] if "toolUse" in b)
    jsonschema.validate(use["input"], WEATHER if use["name"] == "get_weather" else TIME)


def test_structured_output_follows_the_schema(rc):
    schema = {"type": "object", "properties": {"capital": {"type": "string", "maxLength": 40},
                                               "population_millions": {"type": "number"}},
              "required": ["capital", "population_millions"], "additionalProperties": False}
    reply = converse(rc, "What is the capital of France?", max_tokens=80,
                     outputConfig={"textFormat": {"type": "json_schema",
                                                  "structure": {"jsonSchema": {"schema": json.dumps(schema)}}}})
    assert reply["stopReason"] == "end_turn"
    jsonschema.validate(json.loads(reply["output"]["message"]["content"][0]["text"]), schema)


# --- embeddings -----------------------------------------------------------------------------------------------

def test_embeddings_in_every_family_shape_and_size(rc, embedding_engine):
    theirs = direct(embedding_engine, "/embeddings", {"model": llama_server.MODEL_ALIAS, "input": "A cat sits."})
    count = theirs["usage"]["prompt_tokens"]
    v1, _ = invoke(rc, "amazon.titan-embed-text-v1", {"inputText": "A cat sits."})
    assert len(v1["embedding"]) == 1536 and v1["inputTextTokenCount"] == count
    for size in (256, 512, 1024):
        v2, _ = invoke(rc, "amazon.titan-embed-text-v2:0", {"inputText": "A cat sits.", "dimensions": size})
        assert len(v2["embedding"]) == size and v2["inputTextTokenCount"] == count
        assert abs(float(np.linalg.norm(v2["embedding"])) - 1.0) < 1e-3  # V2 normalises by default
    cohere, _ = invoke(rc, "cohere.embed-english-v3", {"texts": ["A cat sits.", "Revenue grew."],
                                                        "input_type": "search_document"})
    assert [len(v) for v in cohere["embeddings"]] == [1024, 1024]
    counted = rc.count_tokens(modelId="amazon.titan-embed-text-v2:0",
                              input={"invokeModel": {"body": json.dumps({"inputText": "A cat sits."}).encode()}})
    assert counted["inputTokens"] == count


# --- engine faults as Bedrock errors --------------------------------------------------------------------------

def test_an_unreachable_engine_is_down_in_health_and_calls_get_503_at_once(rc, emulator):
    started = time.monotonic()
    message = rejected(lambda: converse(rc, model=DEAD), "ServiceUnavailableException", 503)
    assert time.monotonic() - started < 10
    assert "engine-dead" in message
    with urllib.request.urlopen(emulator.url + "/_emulator/health", timeout=10) as reply:
        health = json.loads(reply.read())
    assert health["status"] == "ok"
    assert "engine-dead" in health["down"] and "engine-dead" not in health["models"]
    assert "engine-text" in health["models"] and "engine-text" not in health["down"]


def test_too_long_an_input_is_bedrocks_validation_error(rc):
    long_text = "word " * 3000  # beyond the engine's 2048-token context
    assert rejected(lambda: converse(rc, long_text, max_tokens=5)) == "Input is too long for requested model."


def test_requests_beyond_max_concurrency_are_throttled(rc):
    # The first call holds the engine's only slot from its first event until the engine's stream ends; asking
    # while it is mid-stream (not after a fixed sleep, which a fast machine outruns) is deterministic.
    reply = rc.converse_stream(modelId=NARROW, messages=[user("Count from one to one hundred.")],
                               inferenceConfig={"maxTokens": 120, **GREEDY})
    events = iter(reply["stream"])
    assert "messageStart" in next(events)
    rejected(lambda: converse(rc, max_tokens=5, model=NARROW), "ThrottlingException", 429)
    assert "metadata" in list(events)[-1]  # the first call still completes


def test_a_client_that_goes_away_cancels_the_engine_request(rc, emulator, engine):
    """llama-cpp-python serves one request at a time: if the abandoned generation went on (600 tokens), the next
    request would wait for it; cancelled, the next one starts at once."""
    reply = rc.converse_stream(modelId=HAIKU, messages=[user("Count from one to one thousand, in words.")],
                               inferenceConfig={"maxTokens": 600, **GREEDY})
    events = iter(reply["stream"])
    for _ in range(5):
        next(events)
    reply["stream"].close()  # the connection goes away mid-stream
    time.sleep(0.5)
    started = time.monotonic()
    direct_chat(engine, [{"role": "user", "content": "Say hi."}], 5)
    assert time.monotonic() - started < 4  # 600 tokens would take far longer on this machine


def test_an_engine_killed_mid_stream_ends_the_stream_with_an_exception_frame(rc, mortal_engine):
    reply = rc.converse_stream(modelId=MORTAL, messages=[user("Count from one to one thousand, in words.")],
                               inferenceConfig={"maxTokens": 600, **GREEDY})
    events = iter(reply["stream"])
    next(events)
    next(events)
    mortal_engine.stop()
    with pytest.raises(EventStreamError) as caught:
        for _ in events:
            pass
    assert caught.value.response["Error"]["Code"] == "modelStreamErrorException"
    # ... and the next call finds it gone: 503, at once.
    started = time.monotonic()
    rejected(lambda: converse(rc, model=MORTAL), "ServiceUnavailableException", 503)
    assert time.monotonic() - started < 10
