"""OpenAI-compatible inference engines (vLLM, SGLang, llama.cpp, Ollama, TGI, Ray Serve LLM) as backends.

A catalogue `local_models` entry with `openai: {base_url, model, ...}` is answered by an engine instead of local
weights. The engine produces the same event stream the local scheduler does (TextDelta ... Finished / Failed, and
ToolUseStart / ToolInputDelta / ToolUse for calls), so everything at the service seam (rules, faults, rate limits,
the invocation log, guardrails) applies unchanged.

- One pooled aiohttp session per engine; at most `max_concurrency` requests in flight, a request beyond that gets
  ThrottlingException at once (as Bedrock answers a burst over quota) instead of queueing without bound.
- Every generation streams from the engine (`stream: true`), for streaming and non-streaming Bedrock calls alike, so
  stop sequences are matched here with the local path's hold-back (stops.py: never leaked, even across chunks)
  and closing the event iterator (client gone, stop sequence found) closes the engine's connection, which cancels
  the engine's request.
- Chat messages go to `/chat/completions` (the engine applies its own chat template); a raw prompt (the native
  text-completion bodies of Llama, Mistral, ... when they carry no chat markup) goes to `/completions` as written.
- Usage: the engine's own counts when it reports them (`stream_options.include_usage`). When it does not
  (llama-cpp-python's server never reports usage in a stream), or the stream was cut at a stop sequence, output
  tokens are the streamed token chunks and input tokens come from `count_input` (below).
- Engine faults become Bedrock's errors (`_engine_error`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
import jsonschema
import numpy as np

from ..catalog import RemoteEngine
from ..protocol.errors import BedrockError, validation
from .loopguard import LoopGuard
from .stops import StopMatcher
from .types import (CONTEXT_EXCEEDED, END_TURN, MAX_TOKENS, STOP_SEQUENCE, TOOL_USE, Event, Failed, Finished,
                    SamplingParams, TextDelta, ToolInputDelta, ToolUse, ToolUseStart)


class Tool(Protocol):
    name: str
    description: str
    schema: dict


class ToolChoices(Protocol):
    """The tools a turn may call, as an engine is told them (the tool core's `ToolPlan`)."""

    tools: tuple[Tool, ...]
    choice: str  # auto | any | tool | none
    text_schema: dict | None  # the JSON schema a text answer must follow

    def callable_tools(self) -> tuple[Tool, ...]: ...

    def new_id(self) -> str: ...


class Conversation(Protocol):
    """What an engine answers (a service `Call`): a raw prompt, or chat messages and perhaps tools."""

    prompt: str | None
    messages: list[dict]
    tools: ToolChoices | None

log = logging.getLogger("emulator.engine.remote")

CONNECT_TIMEOUT_S = 5.0  # an engine that does not accept a connection in this time counts as unreachable
TOO_LONG = "Input is too long for requested model."
# How engines word "the prompt does not fit the context" (vLLM, SGLang, llama.cpp, TGI, Ollama).
_CONTEXT_WORDING = re.compile(
    r"context length|context window|maximum context|exceeds? (?:the )?(?:available )?context|"
    r"must be <= \d+|longer than the model|too many tokens|prompt is too long", re.IGNORECASE)
# vLLM: max_tokens too large for the prompt; the emulator retries with what fits (the local path never refuses).
_MAX_TOKENS_TOO_LARGE = re.compile(
    r"maximum context length is (\d+) tokens.*?(?:request has (\d+) input tokens|\((\d+) in the messages)",
    re.IGNORECASE | re.DOTALL)
# Engines that take `top_k` in an OpenAI-style body (Ollama's and TGI's OpenAI endpoints ignore it).
_TOP_K = {"vllm", "sglang", "llama.cpp", "llama-cpp-python", "ray-serve"}
# Engines that continue a trailing assistant message when told so (vLLM's chat extension).
_CONTINUE_FINAL = {"vllm", "sglang", "ray-serve"}
# Engines that ignore `tool_choice` (Ollama), or lack `required` (llama-cpp-python): a forced call is asked for as
# structured output ({"name", "arguments"} under the tools' schemas) and turned into the tool call here.
_NO_TOOL_CHOICE = {"ollama"}
_NO_REQUIRED = {"ollama", "llama-cpp-python"}
# Engines with vLLM's `POST /tokenize` (chat messages or a prompt in, `count` out).
_TOKENIZE = {"vllm", "sglang", "ray-serve"}


def _engine_error(status: int, message: str) -> BedrockError:
    """An engine's HTTP error as the Bedrock error a caller would get from the model behind Bedrock."""
    error = _bedrock_error(status, message)
    error.engine_message = message  # type: ignore[attr-defined]  # for the max_tokens retry; never sent
    return error


def _bedrock_error(status: int, message: str) -> BedrockError:
    if status == 429:
        return BedrockError("ThrottlingException", "Too many requests, please wait before trying again.")
    if status in (408, 504):
        return BedrockError("ModelTimeoutException", "Model has timed out in processing.")
    if status == 503:
        return BedrockError("ServiceUnavailableException")
    if status in (400, 413, 422) and _CONTEXT_WORDING.search(message):
        return validation(TOO_LONG)
    return BedrockError("ModelErrorException", f"The model returned the following errors: {message}",
                        originalStatusCode=status)


def _unreachable(name: str, exc: BaseException) -> BedrockError:
    return BedrockError("ServiceUnavailableException",
                        f"The service is temporarily unable to handle the request. Try again later. "
                        f"(inference engine {name!r} is unreachable: {exc.__class__.__name__})")


def _error_message(raw: bytes) -> str:
    """The message of an engine's error body (OpenAI's {"error": {"message"}}, FastAPI's {"detail"}, or text)."""
    text = raw.decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body.get("message", body)))
        if isinstance(error, dict):
            error = error.get("message", error)
        return str(error)[:1000]
    return text.strip()[:500]


class EngineClient:
    """The pooled HTTP client of one engine: connections, concurrency slots, error mapping, health."""

    def __init__(self, name: str, spec: RemoteEngine) -> None:
        self.name = name
        self.spec = spec
        self.base_url = spec.base_url.rstrip("/")
        self.root_url = re.sub(r"/v1$", "", self.base_url)
        self.in_flight = 0
        self.last_error: str | None = None
        self._session: aiohttp.ClientSession | None = None

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.spec.api_key_env) if self.spec.api_key_env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def session(self) -> aiohttp.ClientSession:
        """Created on first use, on the serving loop (an aiohttp session belongs to one loop)."""
        if self._session is None or self._session.closed:
            # Pool a little beyond max_concurrency: health probes and token counts must not wait on generations.
            connector = aiohttp.TCPConnector(limit=self.spec.max_concurrency + 4, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers())
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @asynccontextmanager
    async def request(self, path: str, body: dict, *, url: str | None = None):
        """POST to the engine; yields the (2xx) response. Raises the Bedrock error for anything else.

        `timeout_s` bounds each wait on the engine (for the response to start, then between chunks), so a long
        generation that keeps streaming is not cut, and a silent engine is."""
        if self.in_flight >= self.spec.max_concurrency:
            raise BedrockError("ThrottlingException", "Too many requests, please wait before trying again.")
        self.in_flight += 1
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(CONNECT_TIMEOUT_S, self.spec.timeout_s),
                                        sock_read=self.spec.timeout_s)
        response: aiohttp.ClientResponse | None = None
        try:
            try:
                try:
                    response = await self.session().post(url or self.base_url + path, json=body, timeout=timeout)
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                    # A pooled keep-alive connection the engine had closed: once more, on a new connection.
                    response = await self.session().post(url or self.base_url + path, json=body, timeout=timeout)
            except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, ConnectionError) as exc:
                self.last_error = f"{exc.__class__.__name__}: {exc}"
                raise _unreachable(self.name, exc) from None
            except asyncio.TimeoutError:
                raise BedrockError("ModelTimeoutException", "Model has timed out in processing.") from None
            except aiohttp.ClientError as exc:
                self.last_error = f"{exc.__class__.__name__}: {exc}"
                raise _unreachable(self.name, exc) from None
            self.last_error = None
            if response.status >= 400:
                message = _error_message(await response.read())
                log.info("engine %s answered %s: %s", self.name, response.status, message)
                raise _engine_error(response.status, message)
            yield response
        finally:
            self.in_flight -= 1
            if response is not None:
                response.close()  # unread rest (a stream cut short): drop the connection, the engine cancels

    async def post_json(self, path: str, body: dict, *, url: str | None = None) -> dict:
        async with self.request(path, body, url=url) as response:
            try:
                return await response.json(content_type=None)
            except asyncio.TimeoutError:
                raise BedrockError("ModelTimeoutException", "Model has timed out in processing.") from None
            except (aiohttp.ClientError, ValueError) as exc:
                raise BedrockError("ModelErrorException", f"The model returned an unreadable answer: {exc}") from None

    async def chunks(self, response: aiohttp.ClientResponse) -> AsyncIterator[dict]:
        """The JSON objects of a server-sent-event stream, until `[DONE]` or the end of the body."""
        try:
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue  # comments (pings), event names, blank separators
                data = line[5:].strip()
                if data == b"[DONE]":
                    return
                chunk = json.loads(data)
                if isinstance(chunk, dict) and chunk.get("error"):
                    raise BedrockError("ModelErrorException",
                                       f"The model returned the following errors: {_error_message(data)}")
                yield chunk
        except asyncio.TimeoutError:
            raise BedrockError("ModelTimeoutException", "Model has timed out in processing.") from None
        except (aiohttp.ClientError, ConnectionError, ValueError) as exc:
            self.last_error = f"{exc.__class__.__name__}: {exc}"
            raise BedrockError("ModelErrorException",
                               f"The model returned the following errors: the inference engine {self.name!r} "
                               f"broke off its response ({exc.__class__.__name__})") from None

    async def probe(self) -> str | None:
        """Health: None when the engine lists its models, else why not. Never waits more than a few seconds."""
        timeout = aiohttp.ClientTimeout(total=3.0)
        try:
            async with self.session().get(self.base_url + "/models", timeout=timeout) as response:
                if response.status >= 400:
                    return f"GET /models answered {response.status}"
                return None
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
            return f"unreachable ({exc.__class__.__name__})"


# --- text ---------------------------------------------------------------------------------------------------

# The markup the API layer renders tool calls and results in (tools.markup.render_call / render_result), read back so
# the engine gets OpenAI `tool_calls` and `tool` messages and its own template renders them as its model expects.
_RENDERED_CALL = re.compile(r"<tool_call>\n(\{.*?\})\n</tool_call>", re.DOTALL)
_RENDERED_RESULT = re.compile(r"(?:^|\n)The tool (returned|failed): ")


def openai_messages(messages: list[dict]) -> list[dict]:
    out: list[dict] = []
    open_ids: list[str] = []  # the previous assistant turn's calls, which the next user turn may answer
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "assistant":
            calls = []
            for found in _RENDERED_CALL.finditer(content):
                try:
                    call = json.loads(found.group(1))
                    name, arguments = call["name"], call["arguments"]
                except (ValueError, KeyError, TypeError):
                    continue
                calls.append({"id": f"call_{len(out)}_{len(calls)}", "type": "function",
                              "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}})
            if calls:
                out.append({"role": "assistant", "content": _RENDERED_CALL.sub("", content).strip(),
                            "tool_calls": calls})
                open_ids = [c["id"] for c in calls]
                continue
        elif role == "user" and open_ids and _RENDERED_RESULT.match(content):
            marks = list(_RENDERED_RESULT.finditer(content))
            if len(marks) == len(open_ids):
                for i, (mark, use_id) in enumerate(zip(marks, open_ids)):
                    end = marks[i + 1].start() if i + 1 < len(marks) else len(content)
                    text = content[mark.end():end]
                    out.append({"role": "tool", "tool_call_id": use_id,
                                "content": text if mark.group(1) == "returned" else f"The tool failed: {text}"})
                open_ids = []
                continue
        open_ids = []
        out.append({"role": role, "content": content})
    return out


def openai_tools(plan: ToolChoices) -> list[dict]:
    return [{"type": "function", "function": {"name": t.name, "description": t.description or t.name,
                                              "parameters": t.schema or {"type": "object"}}}
            for t in plan.tools]


def call_schema(plan: ToolChoices) -> dict:
    """One JSON document naming a callable tool and its input: structured output stands in for `tool_choice:
    required` where the engine has no such mode (llama-cpp-python)."""
    return {"anyOf": [
        {"type": "object", "properties": {"name": {"const": t.name}, "arguments": t.schema or {"type": "object"}},
         "required": ["name", "arguments"], "additionalProperties": False}
        for t in plan.callable_tools()]}


@dataclass
class _Turn:
    """What one engine response has produced so far."""

    text: list[str] = field(default_factory=list)
    chunks: int = 0  # streamed chunks that carried output (one token each in every engine we know)
    usage: dict | None = None
    finish: str | None = None


class RemoteTextEngine:
    """A text model served by an engine: the event stream of one generation, and the input token count."""

    def __init__(self, name: str, spec: RemoteEngine) -> None:
        self.name = name
        self.spec = spec
        self.client = EngineClient(name, spec)
        self._tokenizer = None
        self._tokenize_missing = False  # the engine answered 404 to /tokenize once: count by probing instead

    # The request body ---------------------------------------------------------------------------------------

    def _sampling(self, params: SamplingParams, max_tokens: int) -> dict:
        body: dict = {"max_tokens": max_tokens, "temperature": params.temperature, "top_p": params.top_p}
        if params.seed is not None:
            body["seed"] = params.seed
        engine = self.spec.engine
        if engine in _TOP_K:
            # 0 disables top-k in vLLM/SGLang as -1 does; llama.cpp's servers treat 0 as disabled too.
            body["top_k"] = params.top_k if params.top_k > 0 else (0 if engine.startswith("llama") else -1)
        if engine.startswith("llama"):
            # llama.cpp's servers default to min_p 0.05 (and llama-cpp-python to repeat_penalty 1.1): Bedrock's
            # parameters mean plain temperature / top_p / top_k sampling.
            body["min_p"] = 0.0
            body["repeat_penalty"] = 1.0
        return body

    def _response_format(self, schema: dict) -> dict:
        if self.spec.engine == "llama-cpp-python":
            return {"type": "json_object", "schema": schema}
        if self.spec.engine == "tgi":
            return {"type": "json", "value": schema}
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema, "strict": True}}

    def body(self, call: Conversation, params: SamplingParams) -> tuple[str, dict, str]:
        """(path, body, mode): mode is `text`, `tools` (native tool calls) or `json_call` (a call as JSON)."""
        body = {"model": self.spec.model, "stream": True, "stream_options": {"include_usage": True},
                **self._sampling(params, params.max_new_tokens)}
        if call.prompt is not None:
            return "/completions", {**body, "prompt": call.prompt}, "text"
        body["messages"] = openai_messages(call.messages)
        if call.messages and call.messages[-1]["role"] == "assistant" and self.spec.engine in _CONTINUE_FINAL:
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        plan = call.tools
        mode = "text"
        if plan is not None:
            if plan.tools and plan.choice != "none":
                body["tools"] = openai_tools(plan)
                callable_tools = plan.callable_tools()
                if plan.choice == "auto":
                    body["tool_choice"] = "auto"
                    mode = "tools"
                elif len(callable_tools) == 1 and self.spec.engine not in _NO_TOOL_CHOICE:
                    body["tool_choice"] = {"type": "function", "function": {"name": callable_tools[0].name}}
                    mode = "tools"
                elif self.spec.engine in _NO_REQUIRED:  # the call as schema-constrained JSON instead
                    body.pop("tools")
                    body["response_format"] = self._response_format(call_schema(plan))
                    mode = "json_call"
                else:
                    body["tool_choice"] = "required"
                    mode = "tools"
            if plan.text_schema is not None and mode != "json_call":
                body["response_format"] = self._response_format(plan.text_schema)
        return ("/chat/completions", body, mode)

    # Generation ---------------------------------------------------------------------------------------------

    async def events(self, call: Conversation, params: SamplingParams) -> AsyncIterator[Event]:
        try:
            async for event in self._events(call, params):
                yield event
        except Exception as exc:  # as the local scheduler: a failure is an event (model_failure maps the rest)
            yield Failed(exc)

    async def _open(self, stack: AsyncExitStack, path: str, body: dict) -> tuple[aiohttp.ClientResponse, int]:
        """The engine's streaming response and the max_tokens it runs under. Where vLLM refuses a max_tokens too
        large for the prompt, once more with what fits (the local model never refuses: it stops at its context)."""
        try:
            return await stack.enter_async_context(self.client.request(path, body)), body["max_tokens"]
        except BedrockError as exc:
            fits = _MAX_TOKENS_TOO_LARGE.search(getattr(exc, "engine_message", ""))
            if fits is None:
                raise
            window, prompt = int(fits.group(1)), int(fits.group(2) or fits.group(3))
            if prompt >= window or window - prompt >= body["max_tokens"]:
                raise validation(TOO_LONG) from None
            body = {**body, "max_tokens": window - prompt}
            return await stack.enter_async_context(self.client.request(path, body)), body["max_tokens"]

    async def _events(self, call: Conversation, params: SamplingParams) -> AsyncIterator[Event]:
        path, body, mode = self.body(call, params)
        stops = StopMatcher(params.stop_sequences)
        turn = _Turn()
        stopped: str | None = None
        calls: list[list] = []  # [tool_use_id, name, argument fragments]
        plan = call.tools
        # HEURISTIC (loopguard.py): a request without a token limit whose free text falls into a degenerate loop
        # ends with end_turn, as on the local path. Only the loop guard: an engine's model ends its answers itself,
        # so the local path's length prior would cut real answers short.
        free_text = mode != "json_call" and (plan is None or plan.text_schema is None)
        loops = LoopGuard() if params.natural_end and free_text else None
        looped = False
        async with AsyncExitStack() as stack:
            response, budget = await self._open(stack, path, body)
            async for chunk in self.client.chunks(response):
                if chunk.get("usage"):
                    turn.usage = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") if path == "/chat/completions" else {"content": choice.get("text")}
                    delta = delta or {}
                    piece = delta.get("content") or ""
                    tool_deltas = delta.get("tool_calls") or []
                    if piece or tool_deltas:
                        turn.chunks += 1
                    if piece and mode != "json_call":
                        looped = loops is not None and loops.feed(piece)
                        safe, stopped = stops.feed(piece)
                        if safe:
                            turn.text.append(safe)
                            yield TextDelta(safe)
                        if stopped is not None or looped:
                            break
                    elif piece:
                        turn.text.append(piece)
                    for fragment in tool_deltas:
                        index = fragment.get("index", len(calls) - 1 if calls else 0)
                        function = fragment.get("function") or {}
                        if index >= len(calls):
                            if calls:
                                yield self._tool_use(plan, *calls[-1])
                            use_id = plan.new_id() if plan is not None else f"tooluse_{index}"
                            calls.append([use_id, function.get("name") or "", []])
                            yield ToolUseStart(use_id, calls[-1][1])
                        if function.get("arguments"):
                            calls[-1][2].append(function["arguments"])
                            yield ToolInputDelta(function["arguments"])
                    if choice.get("finish_reason"):
                        turn.finish = choice["finish_reason"]
                if stopped is not None or looped:
                    break
        if stopped is None and mode != "json_call":
            rest = stops.flush()
            if rest:
                turn.text.append(rest)
                yield TextDelta(rest)
        if calls and stopped is None and turn.finish != "length":  # cut by max_tokens: no call (as the local path)
            yield self._tool_use(plan, *calls[-1])
        input_tokens, output_tokens = await self._usage(call, params, turn, cut=stopped is not None or looped)
        text = "".join(turn.text)

        def finished(reason: str, stop: str | None = None) -> Finished:
            return Finished(reason, stop, input_tokens, output_tokens, text)

        if stopped is not None:
            yield finished(STOP_SEQUENCE, stopped)
        elif looped:
            yield finished(END_TURN)
        elif turn.finish == "length" and budget < params.max_new_tokens:
            yield finished(CONTEXT_EXCEEDED)
        elif turn.finish == "length":  # the emulator's fallback budget for a request without a limit: end_turn
            yield finished(END_TURN if params.fallback_budget and free_text else MAX_TOKENS)
        elif calls:
            yield finished(TOOL_USE)
        elif turn.finish is None:
            if not turn.chunks:
                # llama-cpp-python reports an error raised after its headers (e.g. too long a prompt) as an empty
                # stream: the same request without streaming answers with the error itself.
                await self._probe(path, body)
            raise BedrockError("ModelErrorException", "The model returned the following errors: the inference "
                               f"engine {self.name!r} ended its response without a finish reason")
        elif mode == "json_call":
            name, arguments = self._json_call(plan, text)
            use_id = plan.new_id()
            yield ToolUseStart(use_id, name)
            raw = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
            yield ToolInputDelta(raw)
            yield self._tool_use(plan, use_id, name, [raw])
            yield Finished(TOOL_USE, None, input_tokens, output_tokens, "")
        else:
            if plan is not None and plan.text_schema is not None:
                _check(text, plan.text_schema, "answer")
            yield finished(END_TURN)

    def _tool_use(self, plan: ToolChoices | None, use_id: str, name: str, fragments: list[str]) -> ToolUse:
        """A finished call, its input checked against the tool's schema (engines' guided decoding is trusted, but
        not blindly: a call that does not follow the schema is a model error, never passed on)."""
        raw = "".join(fragments) or "{}"
        tool = next((t for t in plan.tools if t.name == name), None) if plan is not None else None
        if tool is None:
            raise BedrockError("ModelErrorException",
                               f"The model returned the following errors: it called an unknown tool {name!r}")
        arguments = _check(raw, tool.schema or {"type": "object"}, f"input of tool {name!r}")
        return ToolUse(use_id, name, arguments)

    def _json_call(self, plan: ToolChoices, text: str) -> tuple[str, dict]:
        document = _check(text, call_schema(plan), "tool call")
        return document["name"], document["arguments"]

    async def _usage(self, call: Conversation, params: SamplingParams, turn: _Turn, cut: bool) -> tuple[int, int]:
        """The engine's counts where it reported them for the whole response, else ours (see module docstring)."""
        usage = turn.usage or {}
        if not cut and usage.get("completion_tokens") is not None and usage.get("prompt_tokens") is not None:
            return int(usage["prompt_tokens"]), int(usage["completion_tokens"])
        input_tokens = usage.get("prompt_tokens")
        if input_tokens is None:
            input_tokens = await self.count_input(call, params)
        return int(input_tokens), turn.chunks

    # Token counts -------------------------------------------------------------------------------------------

    async def count_input(self, call: Conversation, params: SamplingParams | None = None) -> int:
        """Input tokens the engine bills for `call`: a tokenizer named in the entry, else the engine's `/tokenize`
        (vLLM, SGLang, Ray Serve), else a one-token probe generation whose `usage.prompt_tokens` is the count."""
        if self.spec.tokenizer:
            return await asyncio.to_thread(self._count_with_tokenizer, call)
        probe_params = SamplingParams(max_new_tokens=1, temperature=0.0)
        path, body, _ = self.body(call, params or probe_params)
        if self.spec.engine in _TOKENIZE and not self._tokenize_missing:
            ask = {"model": self.spec.model}
            if "messages" in body:
                ask.update(messages=body["messages"], add_generation_prompt=body.get("add_generation_prompt", True))
                for key in ("tools", "continue_final_message"):
                    if key in body:
                        ask[key] = body[key]
            else:
                ask["prompt"] = body["prompt"]
            try:
                answer = await self.client.post_json("", ask, url=self.client.root_url + "/tokenize")
                return int(answer["count"])
            except BedrockError as exc:
                if exc.extra.get("originalStatusCode") not in (404, 405):
                    raise
                self._tokenize_missing = True
        return await self._probe(path, body)

    async def _probe(self, path: str, body: dict) -> int:
        """The request generating one token without streaming: its `usage.prompt_tokens`, or the engine's error."""
        probe = {**body, "stream": False, "max_tokens": 1}
        probe.pop("stream_options", None)
        answer = await self.client.post_json(path, probe)
        try:
            return int(answer["usage"]["prompt_tokens"])
        except (KeyError, TypeError, ValueError):
            raise BedrockError("ModelErrorException",
                               "The model returned the following errors: the engine reported no token usage") from None

    def _count_with_tokenizer(self, call: Conversation) -> int:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.spec.tokenizer)
        if call.prompt is not None:
            return len(self._tokenizer(call.prompt, add_special_tokens=False)["input_ids"])
        continue_final = bool(call.messages) and call.messages[-1]["role"] == "assistant"
        tools = openai_tools(call.tools) if call.tools is not None and call.tools.tools else None
        text = self._tokenizer.apply_chat_template(openai_messages(call.messages), tools=tools, tokenize=False,
                                                   add_generation_prompt=not continue_final,
                                                   continue_final_message=continue_final)
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    async def close(self) -> None:
        await self.client.close()


def _check(raw: str, schema: dict, what: str) -> object:
    """`raw` parsed as JSON and valid under `schema`, else the model error saying why."""
    try:
        value = json.loads(raw)
        jsonschema.validate(value, schema)
    except (ValueError, jsonschema.ValidationError) as exc:
        reason = exc.message if isinstance(exc, jsonschema.ValidationError) else "not valid JSON"
        raise BedrockError("ModelErrorException", f"The model returned the following errors: the {what} it produced "
                           f"does not follow the JSON schema ({reason})") from None
    except jsonschema.SchemaError as exc:
        raise validation(f"The JSON schema for the {what} is invalid: {exc.message}") from None
    return value


# --- embeddings ---------------------------------------------------------------------------------------------

class RemoteEmbeddingModel:
    """An embedding model served by an engine's `POST /v1/embeddings`, one request per text so each text's token
    count comes from the engine's own `usage.prompt_tokens`."""

    def __init__(self, name: str, spec: RemoteEngine) -> None:
        self.name = name
        self.spec = spec
        self.client = EngineClient(name, spec)
        # The engine refuses (or truncates) inputs beyond its window; without `context_length` that is its call.
        self.window = spec.context_length or 1 << 30

    async def embed_counted(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        async def one(text: str) -> tuple[np.ndarray, int]:
            answer = await self.client.post_json("/embeddings", {"model": self.spec.model, "input": text,
                                                                 "encoding_format": "float"})
            try:
                vector = np.asarray(answer["data"][0]["embedding"], dtype=np.float64)
                if vector.ndim == 2:  # an engine without a pooling layer (llama.cpp, decoder models): per token
                    vector = vector.mean(axis=0)
                usage = answer.get("usage") or {}
                count = usage.get("prompt_tokens", usage.get("total_tokens"))
                return vector, int(count) if count is not None else 0
            except (KeyError, IndexError, TypeError) as exc:
                raise BedrockError("ModelErrorException",
                                   f"The model returned an unreadable embedding answer ({exc!r})") from None

        done = await asyncio.gather(*(one(text) for text in texts))
        return np.stack([v for v, _ in done]), [c for _, c in done]

    async def embed(self, texts: list[str], normalize: bool = True, keep: str = "start"):
        """EmbeddingModel's interface (guardrails' grounding check uses it); `keep` is the engine's to apply."""
        import torch

        vectors = torch.from_numpy((await self.embed_counted(texts))[0])
        return torch.nn.functional.normalize(vectors, dim=-1) if normalize else vectors

    async def close(self) -> None:
        await self.client.close()
