"""The remote-engine backend against a scripted OpenAI-compatible server on loopback (no build, milliseconds).

What a real engine cannot be made to do on demand is scripted here: chunk boundaries inside a stop sequence, a 429,
vLLM's context-length wordings, a silent engine, stream usage, tool-call fragments, vLLM's /tokenize. The real
engine (llama.cpp's server) is exercised in test_engines_llama_cpp.py.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading

import pytest
from aiohttp import web
from conftest import make_client, user
from native_calls import rejected

from emulator.app import Settings
from emulator.server import BackgroundServer

VLLM = "anthropic.claude-3-haiku-20240307-v1:0"
PLAIN = "anthropic.claude-plain-engine"  # engine: openai (no top_k, no /tokenize)


class FakeEngine:
    """An aiohttp OpenAI-compatible server on its own loop thread, answering what the test scripted."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict]] = []
        self.script: dict = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.cancelled = threading.Event()

    def start(self) -> "FakeEngine":
        self.thread.start()

        async def boot():
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self.chat)
            app.router.add_post("/v1/completions", self.chat)
            app.router.add_post("/tokenize", self.tokenize)
            app.router.add_get("/v1/models", lambda r: web.json_response({"data": [{"id": "m"}]}))
            self.runner = web.AppRunner(app)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return site._server.sockets[0].getsockname()[1]

        self.port = asyncio.run_coroutine_threadsafe(boot(), self.loop).result()
        return self

    async def tokenize(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(("/tokenize", body))
        return web.json_response({"count": 77, "max_model_len": 4096, "tokens": list(range(77))})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((request.path, body))
        script = self.script
        if script.get("sleep"):
            await asyncio.sleep(script["sleep"])
        if script.get("status"):
            statuses = script["status"]
            status = statuses.pop(0) if isinstance(statuses, list) else statuses
            if status:
                return web.json_response({"error": {"message": script.get("message", "no")}}, status=status)
        if not body.get("stream"):
            return web.json_response({"choices": [{"message": {"content": "x"}, "finish_reason": "length"}],
                                      "usage": {"prompt_tokens": 55, "completion_tokens": 1}})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for piece in script.get("pieces", []):
                delta = piece if isinstance(piece, dict) else {"content": piece}
                chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
                await asyncio.sleep(script.get("gap", 0))
            if script.get("die"):
                request.transport.close()
                return response
            done = {"choices": [{"index": 0, "delta": {}, "finish_reason": script.get("finish", "stop")}]}
            await response.write(f"data: {json.dumps(done)}\n\n".encode())
            if script.get("usage"):
                usage = {"choices": [], "usage": script["usage"]}
                await response.write(f"data: {json.dumps(usage)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled.set()
            raise
        return response

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def fake():
    engine = FakeEngine().start()
    yield engine
    engine.stop()


@pytest.fixture
def scripted(fake):
    fake.requests.clear()
    fake.script = {}
    fake.cancelled.clear()
    return fake


@pytest.fixture(scope="module")
def rc(fake, tmp_path_factory):
    catalog = tmp_path_factory.mktemp("fake-engine") / "catalog.yaml"
    url = f"http://127.0.0.1:{fake.port}/v1"
    catalog.write_text(textwrap.dedent(f"""
        local_models:
          vllm: {{kind: text, openai: {{base_url: "{url}", model: m, engine: vllm, timeout_s: 1}}}}
          plain: {{kind: text, openai: {{base_url: "{url}", model: m, timeout_s: 1}}}}
        models:
          - {{id: "{PLAIN}", family: anthropic, local: plain, max_output_tokens: 4096}}
          - {{match: "anthropic.*", family: anthropic, local: vllm, max_output_tokens: 4096}}
        """))
    server = BackgroundServer(Settings(catalog_path=catalog)).start()
    yield make_client(server.url)
    server.stop()


def converse(rc, model=VLLM, **config):
    return rc.converse(modelId=model, messages=[user("hi")], inferenceConfig={"maxTokens": 50, **config})


def test_sampling_fields_reach_the_engine_in_its_dialect(rc, scripted):
    scripted.script = {"pieces": ["ok"], "usage": {"prompt_tokens": 9, "completion_tokens": 1}}
    rc.converse(modelId=VLLM, messages=[user("hi")], inferenceConfig={"maxTokens": 50, "temperature": 0.3,
                                                                      "topP": 0.8},
                additionalModelRequestFields={"top_k": 7})
    body = scripted.requests[-1][1]
    assert (body["model"], body["max_tokens"], body["temperature"], body["top_p"], body["top_k"]) == (
        "m", 50, 0.3, 0.8, 7)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"][-1] == {"role": "user", "content": "hi"}
    converse(rc, model=PLAIN)
    assert "top_k" not in scripted.requests[-1][1]  # a generic OpenAI server gets only OpenAI's fields


def test_usage_is_the_engines_stream_usage(rc, scripted):
    scripted.script = {"pieces": ["Hello", " there"], "usage": {"prompt_tokens": 31, "completion_tokens": 2}}
    reply = converse(rc)
    assert reply["output"]["message"]["content"] == [{"text": "Hello there"}]
    assert reply["usage"] == {"inputTokens": 31, "outputTokens": 2, "totalTokens": 33}
    assert reply["stopReason"] == "end_turn"


def test_a_stop_sequence_split_over_chunks_never_leaks(rc, scripted):
    scripted.script = {"pieces": ["The answer", " is ST", "O", "P and more"], "gap": 0.01}
    reply = rc.converse_stream(modelId=VLLM, messages=[user("hi")],
                               inferenceConfig={"maxTokens": 50, "stopSequences": ["STOP"]})
    events = list(reply["stream"])
    pieces = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    assert "".join(pieces) == "The answer is "
    assert not any("S" in p for p in pieces)
    assert next(e for e in events if "messageStop" in e)["messageStop"]["stopReason"] == "stop_sequence"
    usage = next(e for e in events if "metadata" in e)["metadata"]["usage"]
    assert usage["outputTokens"] == 4  # the chunks read up to the one completing the stop (as the local path)
    assert usage["inputTokens"] == 77
    assert scripted.requests[-1][0] == "/tokenize"


def test_count_tokens_asks_vllms_tokenize_with_the_messages(rc, scripted):
    counted = rc.count_tokens(modelId=VLLM, input={"converse": {"messages": [user("hi")]}})
    assert counted["inputTokens"] == 77
    path, body = scripted.requests[-1]
    assert path == "/tokenize" and body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["add_generation_prompt"] is True


def test_count_tokens_without_a_tokenize_endpoint_probes_one_token(rc, scripted):
    assert rc.count_tokens(modelId=PLAIN, input={"converse": {"messages": [user("hi")]}})["inputTokens"] == 55
    path, body = scripted.requests[-1]
    assert path == "/v1/chat/completions" and body["max_tokens"] == 1 and body["stream"] is False


def test_engine_429_is_throttling(rc, scripted):
    scripted.script = {"status": 429, "message": "rate limited"}
    assert rejected(lambda: converse(rc), "ThrottlingException", 429) == (
        "Too many requests, please wait before trying again.")


def test_a_silent_engine_is_a_model_timeout(rc, scripted):
    scripted.script = {"sleep": 1.5}
    rejected(lambda: converse(rc), "ModelTimeoutException", 408)


@pytest.mark.parametrize("wording", [
    "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens in the messages.",
    "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000 `inputs` tokens",
])
def test_context_length_errors_are_bedrocks_validation_error(rc, scripted, wording):
    scripted.script = {"status": 400, "message": wording}
    assert rejected(lambda: converse(rc)) == "Input is too long for requested model."


def test_too_large_a_max_tokens_is_retried_with_what_fits(rc, scripted):
    scripted.script = {"status": [400, 0], "pieces": ["a", "b"], "finish": "length",
                       "message": "'max_tokens' or 'max_completion_tokens' is too large: 4096. This model's maximum "
                                  "context length is 2048 tokens and your request has 2000 input tokens (4096 > "
                                  "2048 - 2000).",
                       "usage": {"prompt_tokens": 2000, "completion_tokens": 2}}
    reply = rc.converse(modelId=VLLM, messages=[user("hi")], inferenceConfig={"maxTokens": 4096})
    assert scripted.requests[-1][1]["max_tokens"] == 48
    assert reply["stopReason"] == "model_context_window_exceeded"


def test_an_engine_error_is_a_model_error(rc, scripted):
    scripted.script = {"status": 500, "message": "CUDA out of memory"}
    message = rejected(lambda: converse(rc), "ModelErrorException", 424)
    assert message == "The model returned the following errors: CUDA out of memory"


def test_an_engine_dying_mid_stream_is_an_exception_frame(rc, scripted):
    from botocore.exceptions import EventStreamError

    scripted.script = {"pieces": ["a", "b"], "die": True}
    reply = rc.converse_stream(modelId=VLLM, messages=[user("hi")], inferenceConfig={"maxTokens": 50})
    with pytest.raises(EventStreamError) as caught:
        list(reply["stream"])
    assert caught.value.response["Error"]["Code"] == "modelStreamErrorException"


def test_tool_calls_stream_as_the_engine_sends_them_and_are_checked(rc, scripted):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    config = {"tools": [{"toolSpec": {"name": "weather", "description": "Weather", "inputSchema": {"json": schema}}}],
              "toolChoice": {"tool": {"name": "weather"}}}
    fragments = [{"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                                  "function": {"name": "weather", "arguments": ""}}]},
                 {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
                 {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}]
    scripted.script = {"pieces": fragments, "finish": "tool_calls",
                       "usage": {"prompt_tokens": 40, "completion_tokens": 6}}
    reply = rc.converse(modelId=VLLM, messages=[user("weather in Paris?")], toolConfig=config)
    body = scripted.requests[-1][1]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert body["tools"][0]["function"] == {"name": "weather", "description": "Weather", "parameters": schema}
    use = reply["output"]["message"]["content"][0]["toolUse"]
    assert (use["name"], use["input"], reply["stopReason"]) == ("weather", {"city": "Paris"}, "tool_use")
    assert reply["usage"]["outputTokens"] == 6
    # An input that breaks the schema is a model error, never handed on.
    fragments[2] = {"tool_calls": [{"index": 0, "function": {"arguments": '7}'}}]}
    message = rejected(lambda: rc.converse(modelId=VLLM, messages=[user("weather?")], toolConfig=config),
                       "ModelErrorException", 424)
    assert "does not follow the JSON schema" in message


def test_structured_output_uses_the_json_schema_response_format(rc, scripted):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    scripted.script = {"pieces": ['{"a":', ' 1}'], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}
    reply = rc.converse(modelId=VLLM, messages=[user("hi")], inferenceConfig={"maxTokens": 50},
                        outputConfig={"textFormat": {"type": "json_schema",
                                                     "structure": {"jsonSchema": {"schema": json.dumps(schema)}}}})
    assert json.loads(reply["output"]["message"]["content"][0]["text"]) == {"a": 1}
    assert scripted.requests[-1][1]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "response", "schema": schema, "strict": True}}


def test_tool_calls_and_results_in_the_history_reach_the_engine_as_openai_messages(rc, scripted):
    scripted.script = {"pieces": ["Sunny."], "usage": {"prompt_tokens": 50, "completion_tokens": 2}}
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    config = {"tools": [{"toolSpec": {"name": "weather", "inputSchema": {"json": schema}}}]}
    messages = [user("Weather in Paris and Rome?"),
                {"role": "assistant", "content": [
                    {"text": "Let me check."},
                    {"toolUse": {"toolUseId": "tooluse_a", "name": "weather", "input": {"city": "Paris"}}},
                    {"toolUse": {"toolUseId": "tooluse_b", "name": "weather", "input": {"city": "Rome"}}}]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "tooluse_a", "content": [{"text": "sunny\n22C"}]}},
                    {"toolResult": {"toolUseId": "tooluse_b", "content": [{"text": "rain"}], "status": "error"}}]}]
    reply = rc.converse(modelId=VLLM, messages=messages, toolConfig=config)
    assert reply["output"]["message"]["content"] == [{"text": "Sunny."}]
    sent = scripted.requests[-1][1]["messages"]
    assert sent[1:] == [
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "call_1_0", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_1_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_1_0", "content": "sunny\n22C"},
        {"role": "tool", "tool_call_id": "call_1_1", "content": "The tool failed: rain"}]


def test_an_engine_going_silent_mid_stream_is_a_stream_error_frame(rc, scripted):
    from botocore.exceptions import EventStreamError

    scripted.script = {"pieces": ["a", "b"], "gap": 1.5}
    reply = rc.converse_stream(modelId=VLLM, messages=[user("hi")], inferenceConfig={"maxTokens": 50})
    with pytest.raises(EventStreamError) as caught:
        list(reply["stream"])
    error = caught.value.response
    assert error["Error"]["Code"] == "modelStreamErrorException"
    assert error["Error"]["Message"] == "Model has timed out in processing."


def test_without_a_token_limit_a_degenerate_loop_ends_the_turn(rc, scripted):
    scripted.script = {"pieces": ["Hi. "] + ["I like the red car very much. "] * 6 + ["never sent"],
                       "usage": {"prompt_tokens": 5, "completion_tokens": 9}}
    reply = rc.converse(modelId=VLLM, messages=[user("hi")])  # no maxTokens: the loop guard watches
    text = reply["output"]["message"]["content"][0]["text"]
    assert reply["stopReason"] == "end_turn"
    assert text.startswith("Hi. I like the red car") and "never sent" not in text
    assert text.count("red car") == 3  # cut as the third round of the 8-word n-gram completes
    assert reply["usage"]["outputTokens"] == 4
    # With a limit, the same text runs on: exact token-budget behaviour.
    limited = rc.converse(modelId=VLLM, messages=[user("hi")], inferenceConfig={"maxTokens": 500})
    assert limited["output"]["message"]["content"][0]["text"].endswith("never sent")
