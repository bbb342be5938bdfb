"""The operations the emulator answers, as data: one line each.

A Bedrock Runtime operation's route, input members and stream shapes come from botocore's service model
(`protocol/shapes.service_model`); its line adds what the model does not say: whether it generates text through
`Service.generate` (so scripted responses, rate limits and token counts apply). Its handler is the function in
`emulator/api/` declared with `@operation("<name>")` (api/registry.py). The OpenAI-compatible paths (api/openai)
are not in the service model: their lines say how they stream and which Bedrock operation they fail like.

The testing layer's scopes (`GENERATING`, `STREAMING`, `STREAMING_INPUT`) are read from these lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from .shapes import service_model


@dataclass(frozen=True)
class Operation:
    name: str
    generates: bool = False  # answers through `Service.generate`: scripted responses and rate limits apply
    streams: bool = False  # the reply is a stream (an event stream, or server-sent events)
    streaming_input: bool = False  # the request body is a stream lasting the session (never read whole)
    fails_like: str | None = None  # not in the service model: it may fail as this Bedrock operation may
    bedrock: bool = True  # in the bedrock-runtime service model (route and input read from it)


def bedrock(name: str, *, generates: bool = False) -> Operation:
    """A Bedrock Runtime operation: streaming reply and streaming input as its service model says."""
    model = service_model().operation_model(name)
    return Operation(name, generates, streams=model.has_event_stream_output,
                     streaming_input=model.has_event_stream_input)


def openai(name: str, *, generates: bool, streams: bool, fails_like: str) -> Operation:
    return Operation(name, generates, streams, fails_like=fails_like, bedrock=False)


OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    bedrock("Converse", generates=True),
    bedrock("ConverseStream", generates=True),
    bedrock("InvokeModel", generates=True),
    bedrock("InvokeModelWithResponseStream", generates=True),
    bedrock("InvokeModelWithBidirectionalStream", generates=True),
    bedrock("CountTokens"),
    bedrock("ApplyGuardrail"),
    bedrock("InvokeGuardrailChecks"),
    bedrock("StartAsyncInvoke"),
    bedrock("GetAsyncInvoke"),
    bedrock("ListAsyncInvokes"),
    openai("OpenAIChatCompletions", generates=True, streams=True, fails_like="InvokeModelWithResponseStream"),
    openai("OpenAIResponses", generates=True, streams=True, fails_like="InvokeModelWithResponseStream"),
)}

GENERATING = tuple(name for name, op in OPERATIONS.items() if op.generates)
STREAMING = tuple(name for name, op in OPERATIONS.items() if op.streams)
STREAMING_INPUT = tuple(name for name, op in OPERATIONS.items() if op.streaming_input)
