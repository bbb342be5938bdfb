"""The wire shapes of the OpenAI-compatible paths (`/openai/v1`): requests as pydantic models that validate the
way OpenAI's API does (its parameter names, ranges and error codes; see errors.from_validation), and the reply
objects the handlers build. No serving logic here (like vLLM's protocol.py).

Parameters OpenAI defines that the local model has no use for are accepted and ignored (`_IGNORED`); anything
else is OpenAI's `unknown_parameter` error.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

Number = StrictFloat | StrictInt
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


class _Loose(BaseModel):
    """Nested objects: members OpenAI may add later pass through."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- Chat Completions request ------------------------------------------------------------------------------

class FunctionCall(_Loose):
    name: StrictStr
    arguments: StrictStr


class ToolCall(_Loose):
    id: StrictStr
    type: Literal["function"] = "function"
    function: FunctionCall


class ContentPart(_Loose):
    type: Literal["text", "image_url", "input_audio", "file", "refusal"]
    text: StrictStr | None = None
    image_url: dict | StrictStr | None = None
    refusal: StrictStr | None = None


class ChatMessage(_Loose):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: StrictStr | list[ContentPart] | None = None
    name: StrictStr | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: StrictStr | None = None
    refusal: StrictStr | None = None


class FunctionDef(_Loose):
    name: StrictStr = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: StrictStr | None = None
    parameters: dict | None = None
    strict: StrictBool | None = None


class ChatTool(_Loose):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Loose):
    name: StrictStr


class NamedToolChoice(_Loose):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(_Loose):
    name: StrictStr = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: StrictStr | None = None
    schema_: dict | None = Field(default=None, alias="schema")
    strict: StrictBool | None = None


class ResponseFormat(_Loose):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_Loose):
    include_usage: StrictBool | None = None


_IGNORED_CHAT = ("frequency_penalty", "presence_penalty", "logit_bias", "logprobs", "top_logprobs", "user", "metadata",
                 "store", "service_tier", "modalities", "audio", "prediction", "prompt_cache_key",
                 "prompt_cache_retention", "safety_identifier", "verbosity", "web_search_options", "function_call",
                 "functions")


class ChatCompletionRequest(_Request):
    model: StrictStr
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    temperature: Number | None = Field(default=None, ge=0.0, le=2.0)
    top_p: Number | None = Field(default=None, ge=0.0, le=1.0)
    n: StrictInt | None = Field(default=None, ge=1, le=128)
    stop: StrictStr | list[StrictStr] | None = None
    seed: StrictInt | None = Field(default=None, ge=-(2**63), le=2**63 - 1)  # what a torch generator takes
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    tools: list[ChatTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: StrictBool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: ReasoningEffort | None = None
    # Accepted and ignored (the local model has no use for them).
    frequency_penalty: Number | None = Field(default=None, ge=-2.0, le=2.0)
    presence_penalty: Number | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: Any = None
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = Field(default=None, ge=0, le=20)
    user: Any = None
    metadata: Any = None
    store: StrictBool | None = None
    service_tier: Any = None
    modalities: Any = None
    audio: Any = None
    prediction: Any = None
    prompt_cache_key: Any = None
    prompt_cache_retention: Any = None
    safety_identifier: Any = None
    verbosity: Any = None
    web_search_options: Any = None
    function_call: Any = None
    functions: Any = None


# --- Chat Completions reply --------------------------------------------------------------------------------

class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: dict = Field(default_factory=lambda: {"cached_tokens": 0})
    completion_tokens_details: dict = Field(default_factory=lambda: {"reasoning_tokens": 0})

    @classmethod
    def of(cls, prompt: int, completion: int) -> "Usage":
        return cls(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


class ReplyFunction(BaseModel):
    name: str
    arguments: str


class ReplyToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: ReplyFunction


class ReplyMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: None = None
    tool_calls: list[ReplyToolCall] | None = None


class Choice(BaseModel):
    index: int
    message: ReplyMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: None = None


class ChunkToolCall(BaseModel):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: dict


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ChunkToolCall] | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: None = None


# --- Responses request -------------------------------------------------------------------------------------

class TextFormat(_Loose):
    type: Literal["text", "json_object", "json_schema"]
    name: StrictStr | None = Field(default=None, pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: StrictStr | None = None
    schema_: dict | None = Field(default=None, alias="schema")
    strict: StrictBool | None = None


class TextConfig(_Loose):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class Reasoning(_Loose):
    effort: ReasoningEffort | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class ResponsesRequest(_Request):
    model: StrictStr
    input: StrictStr | list[dict] | None = None
    instructions: StrictStr | None = None
    max_output_tokens: StrictInt | None = Field(default=None, ge=16)
    temperature: Number | None = Field(default=None, ge=0.0, le=2.0)
    top_p: Number | None = Field(default=None, ge=0.0, le=1.0)
    tools: list[dict] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict | None = None
    parallel_tool_calls: StrictBool | None = None
    text: TextConfig | None = None
    reasoning: Reasoning | None = None
    stream: StrictBool | None = None
    store: StrictBool | None = None
    previous_response_id: StrictStr | None = None
    background: StrictBool | None = None
    conversation: Any = None
    truncation: Literal["auto", "disabled"] | None = None
    metadata: dict[str, StrictStr] | None = None
    # Accepted and ignored.
    include: list[StrictStr] | None = None
    user: Any = None
    service_tier: Any = None
    top_logprobs: StrictInt | None = Field(default=None, ge=0, le=20)
    max_tool_calls: StrictInt | None = Field(default=None, ge=1)
    safety_identifier: Any = None
    prompt_cache_key: Any = None
    prompt_cache_retention: Any = None
    stream_options: Any = None
    prompt: Any = None


# --- Responses reply ---------------------------------------------------------------------------------------

class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list = Field(default_factory=list)
    logprobs: list = Field(default_factory=list)


class MessageItem(BaseModel):
    type: Literal["message"] = "message"
    id: str
    status: Literal["in_progress", "completed", "incomplete"]
    role: Literal["assistant"] = "assistant"
    content: list[OutputText]


class FunctionCallItem(BaseModel):
    type: Literal["function_call"] = "function_call"
    id: str
    call_id: str
    name: str
    arguments: str
    status: Literal["in_progress", "completed", "incomplete"]


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: dict = Field(default_factory=lambda: {"cached_tokens": 0})
    output_tokens: int
    output_tokens_details: dict = Field(default_factory=lambda: {"reasoning_tokens": 0})
    total_tokens: int

    @classmethod
    def of(cls, prompt: int, completion: int) -> "ResponseUsage":
        return cls(input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion)


class ResponseObject(BaseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["in_progress", "completed", "incomplete", "failed"]
    error: dict | None = None
    incomplete_details: dict | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    model: str
    output: list[MessageItem | FunctionCallItem] = Field(default_factory=list)
    parallel_tool_calls: bool = True
    previous_response_id: None = None
    reasoning: dict = Field(default_factory=lambda: {"effort": None, "summary": None})
    store: bool = False
    temperature: float | None = None
    text: dict = Field(default_factory=lambda: {"format": {"type": "text"}})
    tool_choice: Any = "auto"
    tools: list = Field(default_factory=list)
    top_p: float | None = None
    truncation: str = "disabled"
    usage: ResponseUsage | None = None
    user: Any = None
    metadata: dict = Field(default_factory=dict)
    background: bool = False


# --- models ------------------------------------------------------------------------------------------------

class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def dump(model: BaseModel) -> dict:
    return model.model_dump(mode="json", by_alias=True)
