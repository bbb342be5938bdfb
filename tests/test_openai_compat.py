"""The OpenAI-compatible APIs under /openai/v1 (Chat Completions, Responses, models) through the OpenAI Python SDK,
LangChain's ChatOpenAI and raw HTTP: what a user of those clients sees, exactly."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from conftest import raw_request
from pydantic import BaseModel

from emulator.admin_client import EmulatorAdmin

GPT_OSS = "openai.gpt-oss-20b-1:0"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
          "required": ["city", "unit"], "additionalProperties": False}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Get the weather for a city.",
                                            "parameters": SCHEMA}}
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]


class City(BaseModel):
    name: str
    population: int


@pytest.fixture(scope="module")
def oai(server):
    return openai.OpenAI(base_url=server.url + "/openai/v1", api_key="bedrock-api-key", max_retries=0, timeout=120)


@pytest.fixture
def admin(server):
    admin = EmulatorAdmin(server.url)
    admin.reset()
    yield admin
    admin.reset()


def chat(oai, **kwargs):
    kwargs.setdefault("model", GPT_OSS)
    kwargs.setdefault("messages", [{"role": "developer", "content": "You are terse."},
                                   {"role": "user", "content": "What is the capital of France?"}])
    kwargs.setdefault("temperature", 0)
    return oai.chat.completions.create(**kwargs)


def error_of(exc: openai.APIStatusError) -> dict:
    return exc.response.json()["error"]


# --- Chat Completions ---------------------------------------------------------------------------------------

def test_chat_answers_with_the_same_model_and_tokenizer_as_converse(oai, client):
    reply = chat(oai, max_tokens=24)
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-") and reply.model == GPT_OSS
    (choice,) = reply.choices
    assert choice.index == 0 and choice.message.role == "assistant" and choice.message.tool_calls is None
    # The same conversation through Converse: greedy, so the same text and the same token counts.
    converse = client.converse(modelId=GPT_OSS, system=[{"text": "You are terse."}],
                               messages=[{"role": "user", "content": [{"text": "What is the capital of France?"}]}],
                               inferenceConfig={"maxTokens": 24, "temperature": 0})
    assert choice.message.content == converse["output"]["message"]["content"][0]["text"]
    assert reply.usage.prompt_tokens == converse["usage"]["inputTokens"]
    assert reply.usage.completion_tokens == converse["usage"]["outputTokens"]
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert choice.finish_reason == {"end_turn": "stop", "max_tokens": "length"}[converse["stopReason"]]


def test_max_tokens_and_max_completion_tokens_cut_the_answer(oai):
    for key in ("max_tokens", "max_completion_tokens"):
        reply = chat(oai, messages=[{"role": "user", "content": "Write a long story about a dragon."}], **{key: 5})
        assert reply.choices[0].finish_reason == "length"
        assert reply.usage.completion_tokens == 5


def test_stop_sequence_ends_the_answer_before_it(oai):
    full = chat(oai, max_tokens=30, messages=[{"role": "user", "content": "Describe Paris in two sentences."}])
    text = full.choices[0].message.content
    word = text.split()[3]
    cut = chat(oai, max_tokens=30, messages=[{"role": "user", "content": "Describe Paris in two sentences."}], stop=word)
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[:text.index(word)]


def test_n_choices_share_the_prompt_and_add_up_their_output(oai):
    reply = chat(oai, max_tokens=8, n=2, temperature=1, seed=7)
    assert [c.index for c in reply.choices] == [0, 1]
    one = chat(oai, max_tokens=8)
    assert reply.usage.prompt_tokens == one.usage.prompt_tokens
    assert reply.usage.completion_tokens <= 16


def test_stream_with_usage_matches_the_whole_reply(oai):
    whole = chat(oai, max_tokens=20)
    chunks = list(chat(oai, max_tokens=20, stream=True, stream_options={"include_usage": True}))
    assert len({c.id for c in chunks}) == 1 and all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]
    last = chunks[-1]
    assert last.choices == [] and last.usage.model_dump() == whole.usage.model_dump()


def test_stream_without_include_usage_has_no_usage_chunk(oai):
    chunks = list(chat(oai, max_tokens=5, stream=True))
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)


def test_sse_wire_format_ends_with_done(server):
    body = json.dumps({"model": GPT_OSS, "messages": ASK, "max_tokens": 3, "stream": True}).encode()
    reply = raw_request(server.url, "/openai/v1/chat/completions", body, headers={"Authorization": "Bearer k"})
    assert reply.status == 200 and reply.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert reply.headers["x-amzn-RequestId"]
    events = reply.body.decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""] and all(e.startswith("data: {") for e in events[:-2])


def test_forced_tool_call_round_trip(oai):
    reply = chat(oai, messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=60)
    (choice,) = reply.choices
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert call.id.startswith("call_") and len(call.id) == 29
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, SCHEMA)
    # The tool's answer goes back; the model now answers in text.
    history = [*ASK, choice.message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"}]
    answer = chat(oai, messages=history, tools=[WEATHER], max_tokens=30)
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.choices[0].message.tool_calls is None and answer.choices[0].message.content


def test_named_tool_choice_and_none(oai):
    other = {"type": "function", "function": {"name": "get_time", "description": "Time in a city.",
                                              "parameters": {"type": "object", "properties": {"tz": {"type": "string"}},
                                                             "required": ["tz"]}}}
    reply = chat(oai, messages=ASK, tools=[WEATHER, other], max_tokens=40,
                 tool_choice={"type": "function", "function": {"name": "get_time"}})
    (call,) = reply.choices[0].message.tool_calls
    assert call.function.name == "get_time" and set(json.loads(call.function.arguments)) == {"tz"}
    none = chat(oai, messages=ASK, tools=[WEATHER], tool_choice="none", max_tokens=10)
    assert none.choices[0].message.tool_calls is None and none.choices[0].finish_reason in ("stop", "length")


def test_streamed_tool_call_arguments_add_up(oai):
    chunks = list(chat(oai, messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=60, stream=True))
    deltas = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
    assert deltas[0].id.startswith("call_") and deltas[0].function.name == "get_weather"
    assert {t.index for t in deltas} == {0} and all(t.id is None for t in deltas[1:])
    jsonschema.validate(json.loads("".join(t.function.arguments or "" for t in deltas)), SCHEMA)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_messages_must_answer_the_calls(oai):
    with pytest.raises(openai.BadRequestError) as caught:
        chat(oai, messages=[*ASK, {"role": "tool", "tool_call_id": "call_1", "content": "x"}], tools=[WEATHER])
    assert error_of(caught.value)["message"] == ("Invalid parameter: messages with role 'tool' must be a response to a "
                                                 "preceeding message with 'tool_calls'.")
    asked = {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                                                  "function": {"name": "get_weather", "arguments": "{}"}}]}
    with pytest.raises(openai.BadRequestError) as caught:
        chat(oai, messages=[*ASK, asked, {"role": "user", "content": "well?"}], tools=[WEATHER])
    assert error_of(caught.value)["message"].endswith("did not have response messages: call_1")


def test_parse_with_a_pydantic_model(oai):
    parse = getattr(oai.chat.completions, "parse", None) or oai.beta.chat.completions.parse
    reply = parse(model=GPT_OSS, messages=[{"role": "user", "content": "Name a big city and its population."}],
                  response_format=City, max_tokens=60, temperature=0)
    parsed = reply.choices[0].message.parsed
    assert isinstance(parsed, City) and reply.choices[0].finish_reason == "stop"


def test_json_object_needs_the_word_json(oai):
    with pytest.raises(openai.BadRequestError) as caught:
        chat(oai, response_format={"type": "json_object"}, max_tokens=30)
    assert error_of(caught.value) == {
        "message": "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
                   "'json_object'.", "type": "invalid_request_error", "param": "messages", "code": None}
    reply = chat(oai, messages=[{"role": "user", "content": "Describe Paris as JSON."}],
                 response_format={"type": "json_object"}, max_tokens=40)
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(reply.choices[0].message.content), dict)


def test_image_parts_are_accepted(oai):
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    reply = chat(oai, max_tokens=5, messages=[{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                                          image]}])
    plain = chat(oai, max_tokens=5, messages=[{"role": "user", "content": "What is this?"}])
    assert reply.usage.prompt_tokens > plain.usage.prompt_tokens  # the model sees a stand-in for the image
    response = oai.responses.create(model=GPT_OSS, max_output_tokens=16, input=[{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]}])
    assert response.usage.input_tokens > 0


def test_reasoning_effort_is_accepted(oai):
    reply = chat(oai, max_tokens=5, reasoning_effort="low")
    assert reply.choices[0].message.content is not None


# --- errors -------------------------------------------------------------------------------------------------

def test_unknown_and_unserved_models(oai):
    with pytest.raises(openai.NotFoundError) as caught:
        chat(oai, model="gpt-4o")
    assert error_of(caught.value) == {"message": "The model `gpt-4o` does not exist or you do not have access to it.",
                                      "type": "not_found_error", "param": "model", "code": "model_not_found"}
    with pytest.raises(openai.BadRequestError) as caught:
        chat(oai, model="anthropic.claude-3-haiku-20240307-v1:0")
    assert error_of(caught.value)["message"] == "model `anthropic.claude-3-haiku-20240307-v1:0` isn't supported on this route"
    assert caught.value.response.headers["x-amzn-RequestId"]


@pytest.mark.parametrize("extra, param, code, message", [
    ({"temperature": 3}, "temperature", "decimal_above_max_value",
     "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 instead."),
    ({"max_tokens": 0}, "max_tokens", "integer_below_min_value",
     "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead."),
    ({"max_tokens": 200000}, "max_tokens", "invalid_value",  # gpt-oss: 128,000 (models/bedrock-models.yaml)
     "max_tokens is too large: 200000. This model supports at most 128000 completion tokens, whereas you provided 200000."),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length",
     "Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length 5 instead."),
    ({"extra_body": {"frobnicate": 1}}, "frobnicate", "unknown_parameter", "Unknown parameter: 'frobnicate'."),
    ({"messages": []}, "messages", "array_below_min_length",
     "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an array with length 0 instead."),
])
def test_invalid_parameters_get_openai_errors(oai, extra, param, code, message):
    with pytest.raises(openai.BadRequestError) as caught:
        chat(oai, **extra)
    assert error_of(caught.value) == {"message": message, "type": "invalid_request_error", "param": param, "code": code}


def test_malformed_json_and_unknown_paths(server):
    reply = raw_request(server.url, "/openai/v1/chat/completions", b"{not json")
    assert reply.status == 400 and json.loads(reply.body)["error"]["type"] == "invalid_request_error"
    reply = raw_request(server.url, "/openai/v1/embeddings", b"{}")
    assert reply.status == 404
    assert json.loads(reply.body)["error"]["message"] == "Invalid URL (POST /openai/v1/embeddings)"


def test_sigv4_signed_requests_are_accepted(server):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = json.dumps({"model": GPT_OSS, "messages": ASK, "max_tokens": 3})
    request = AWSRequest("POST", server.url + "/openai/v1/chat/completions", data=body,
                         headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), "bedrock", "us-east-1").add_auth(request)
    reply = raw_request(server.url, "/openai/v1/chat/completions", body.encode(), headers=dict(request.headers))
    assert reply.status == 200 and json.loads(reply.body)["usage"]["completion_tokens"] == 3


def test_models_list_and_retrieve(oai):
    ids = [m.id for m in oai.models.list()]
    assert ids == ["openai.gpt-oss-20b-1:0", "openai.gpt-oss-120b-1:0"]
    card = oai.models.retrieve("openai.gpt-oss-120b-1:0")
    assert (card.id, card.object, card.owned_by) == ("openai.gpt-oss-120b-1:0", "model", "openai")
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("gpt-4o")


# --- testing tools: rules, faults, rate limits, the invocation log ---------------------------------------------

def test_scripted_rules_faults_and_the_log_apply(oai, admin):
    admin.script("Scripted hello.", operation="OpenAIChatCompletions", usage={"input_tokens": 3, "output_tokens": 4})
    reply = chat(oai)
    assert reply.choices[0].message.content == "Scripted hello."
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (3, 4)
    admin.script(tool_calls=[{"name": "get_weather", "input": {"city": "Paris", "unit": "celsius"}}],
                 operation="OpenAIResponses")
    response = oai.responses.create(model=GPT_OSS, input="Weather in Paris?", tools=[
        {"type": "function", "name": "get_weather", "parameters": SCHEMA}])
    (item,) = response.output
    assert item.type == "function_call" and json.loads(item.arguments) == {"city": "Paris", "unit": "celsius"}
    log = admin.invocations()
    assert [(e["operation"], e["modelId"]) for e in log] == [("OpenAIChatCompletions", GPT_OSS),
                                                              ("OpenAIResponses", GPT_OSS)]
    admin.clear_rules()
    admin.fail("ThrottlingException", operation="OpenAIChatCompletions", count=1)
    with pytest.raises(openai.RateLimitError) as caught:
        chat(oai)
    assert error_of(caught.value) == {"message": "Too many requests, please wait before trying again.",
                                      "type": "rate_limit_error", "param": None, "code": "ThrottlingException"}
    admin.fail("ModelStreamErrorException", operation="OpenAIChatCompletions", after_events=2, count=1)
    chunks = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in chat(oai, max_tokens=20, stream=True):
            chunks.append(chunk)
    assert caught.value.body == {"message": "The model encountered an error while streaming the response.",
                                 "type": "model_error", "param": None, "code": "ModelStreamErrorException"}
    assert len(chunks) == 3  # the role chunk and two content deltas, then the error event
    admin.set_rate_limits([{"model": "openai.*", "rpm": 1}])
    chat(oai, max_tokens=2)
    with pytest.raises(openai.RateLimitError):
        oai.responses.create(model=GPT_OSS, input="hi", max_output_tokens=16)


# --- Responses ----------------------------------------------------------------------------------------------

def test_responses_text(oai):
    response = oai.responses.create(model=GPT_OSS, instructions="You are terse.",
                                    input="What is the capital of France?", max_output_tokens=24, temperature=0)
    assert response.object == "response" and response.id.startswith("resp_") and response.store is False
    assert response.status in ("completed", "incomplete") and response.model == GPT_OSS
    (message,) = response.output
    assert message.type == "message" and message.content[0].type == "output_text"
    assert response.output_text == message.content[0].text and response.output_text
    chat_reply = oai.chat.completions.create(
        model=GPT_OSS, max_tokens=24, temperature=0,
        messages=[{"role": "developer", "content": "You are terse."},
                  {"role": "user", "content": "What is the capital of France?"}])
    assert response.output_text == chat_reply.choices[0].message.content
    assert response.usage.input_tokens == chat_reply.usage.prompt_tokens
    assert response.usage.output_tokens == chat_reply.usage.completion_tokens


def test_responses_incomplete_at_max_output_tokens(oai):
    response = oai.responses.create(model=GPT_OSS, input="Write a long story about a dragon.", max_output_tokens=16)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens == 16


def test_responses_function_call_round_trip(oai):
    tools = [{"type": "function", "name": "get_weather", "description": "Get the weather for a city.",
              "parameters": SCHEMA, "strict": True}]
    first = oai.responses.create(model=GPT_OSS, input="What's the weather in Paris?", tools=tools,
                                 tool_choice="required", max_output_tokens=80)
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id.startswith("call_")
    assert call.id.startswith("fc_") and call.status == "completed"
    jsonschema.validate(json.loads(call.arguments), SCHEMA)
    second = oai.responses.create(model=GPT_OSS, tools=tools, max_output_tokens=40, input=[
        {"role": "user", "content": "What's the weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "18 degrees and sunny"}])
    assert [item.type for item in second.output] == ["message"] and second.output_text


def test_responses_parse_structured_output(oai):
    response = oai.responses.parse(model=GPT_OSS, input="Name a big city and its population.", text_format=City,
                                   max_output_tokens=80, temperature=0)
    assert isinstance(response.output_parsed, City)


def test_responses_stream_events_decoded_by_the_sdk(oai):
    # No max_output_tokens: the answer ends on its own (natural endings), so the stream completes.
    with oai.responses.stream(model=GPT_OSS, input="Say hello.", temperature=0) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert final.output_text == deltas and final.usage.output_tokens > 0


def test_responses_stream_function_call(oai):
    tools = [{"type": "function", "name": "get_weather", "parameters": SCHEMA}]
    events = list(oai.responses.create(model=GPT_OSS, input="Weather in Paris?", tools=tools, tool_choice="required",
                                       max_output_tokens=80, stream=True))
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    streamed = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert done.arguments == streamed and done.name == "get_weather"
    jsonschema.validate(json.loads(streamed), SCHEMA)
    assert events[-1].type == "response.completed" and events[-1].response.output[0].arguments == streamed


def test_responses_stream_fails_with_an_error_event(oai, admin):
    admin.fail("ModelStreamErrorException", operation="OpenAIResponses", after_events=2, count=1)
    events = list(oai.responses.create(model=GPT_OSS, input="Tell me a story.", max_output_tokens=40, stream=True))
    assert [e.type for e in events][-3:] == ["response.output_text.delta", "response.output_text.delta", "error"]
    error = events[-1]
    assert (error.code, error.message) == ("ModelStreamErrorException",
                                           "The model encountered an error while streaming the response.")
    assert error.sequence_number == len(events) - 1


def test_responses_is_stateless(oai):
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.create(model=GPT_OSS, input="And then?", previous_response_id="resp_123")
    assert error_of(caught.value) == {"message": "Previous response with id 'resp_123' not found.",
                                      "type": "invalid_request_error", "param": "previous_response_id",
                                      "code": "previous_response_not_found"}
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.create(model=GPT_OSS, input="hi", tools=[{"type": "web_search"}])
    assert error_of(caught.value)["param"] == "tools[0].type"


# --- LangChain ----------------------------------------------------------------------------------------------

def test_langchain_chat_openai(server):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=GPT_OSS, base_url=server.url + "/openai/v1", api_key="bedrock-api-key", temperature=0,
                     max_tokens=20, max_retries=0)
    message = llm.invoke("What is the capital of France?")
    assert message.content and message.usage_metadata["input_tokens"] > 0
    assert message.usage_metadata["output_tokens"] <= 20
    streamed = "".join(chunk.content for chunk in llm.stream("What is the capital of France?"))
    assert streamed == message.content


# --- malformed input: always an OpenAI-shaped 4xx, never a 500 ------------------------------------------------

ODD_VALUES = [None, 0, -1, 1.5, "x", "", [], [1], {}, {"a": 1}, True, "\u0000", 10 ** 30]
CHAT_BASE = {"model": GPT_OSS, "messages": ASK, "max_tokens": 1}
RESPONSES_BASE = {"model": GPT_OSS, "input": "hi", "max_output_tokens": 16}


@pytest.mark.parametrize("path, base, fields", [
    ("/openai/v1/chat/completions", CHAT_BASE,
     ["model", "messages", "temperature", "top_p", "n", "stop", "seed", "stream", "stream_options", "tools",
      "tool_choice", "response_format", "reasoning_effort", "logprobs", "max_completion_tokens"]),
    ("/openai/v1/responses", RESPONSES_BASE,
     ["model", "input", "instructions", "temperature", "top_p", "tools", "tool_choice", "text", "stream", "store",
      "previous_response_id", "reasoning", "truncation", "metadata", "background"]),
])
def test_odd_values_in_every_field_get_openai_errors(server, admin, path, base, fields):
    admin.script("ok", usage={"input_tokens": 1, "output_tokens": 1})  # what validation lets through answers fast
    for field in fields:
        for value in ODD_VALUES:
            body = json.dumps({**base, field: value}).encode()
            reply = raw_request(server.url, path, body)
            assert reply.status in (200, 400, 404), (field, value, reply.status, reply.body[:300])
            if reply.status != 200:
                error = json.loads(reply.body)["error"]
                assert set(error) == {"message", "type", "param", "code"} and error["message"], (field, value)
            assert reply.headers["x-amzn-RequestId"]


# --- --auth-keys: these paths are verified too, refusals in OpenAI's shape ------------------------------------

def test_auth_keys_verify_bearer_and_sigv4(server, tmp_path):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from sibling_server import sibling

    from emulator.app import Settings
    from emulator.protocol.access import AccessConfig

    keys = tmp_path / "credentials"
    keys.write_text("[ci]\naws_access_key_id = AKIDOPENAI\naws_secret_access_key = secret\n"
                    "bearer_token = ABSKb3BlbmFpLXRlc3Q=\n")
    with sibling(server, Settings(access=AccessConfig(auth_keys_path=keys))) as checked:
        admin = EmulatorAdmin(checked.url)
        admin.script("Verified.")
        good = openai.OpenAI(base_url=checked.url + "/openai/v1", api_key="ABSKb3BlbmFpLXRlc3Q=", max_retries=0)
        assert good.chat.completions.create(model=GPT_OSS, messages=ASK).choices[0].message.content == "Verified."
        assert good.responses.create(model=GPT_OSS, input="hi").output_text == "Verified."
        assert [m.id for m in good.models.list()][0] == GPT_OSS
        bad = openai.OpenAI(base_url=checked.url + "/openai/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.PermissionDeniedError) as caught:
            bad.chat.completions.create(model=GPT_OSS, messages=ASK)
        assert error_of(caught.value) == {"message": "Authentication failed: Please make sure your API Key is valid.",
                                          "type": "authentication_error", "param": None,
                                          "code": "AccessDeniedException"}
        with pytest.raises(openai.PermissionDeniedError):
            bad.models.list()
        body = json.dumps({"model": GPT_OSS, "messages": ASK})
        for secret, status in (("secret", 200), ("not-the-secret", 403)):
            request = AWSRequest("POST", checked.url + "/openai/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
            SigV4Auth(Credentials("AKIDOPENAI", secret), "bedrock", "us-east-1").add_auth(request)
            reply = raw_request(checked.url, "/openai/v1/chat/completions", body.encode(), headers=dict(request.headers))
            assert reply.status == status
        assert json.loads(reply.body)["error"]["code"] == "InvalidSignatureException"
        assert [e["operation"] for e in admin.invocations()] == ["OpenAIChatCompletions", "OpenAIResponses",
                                                                 "OpenAIChatCompletions"]
