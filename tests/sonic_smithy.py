"""Nova Sonic sessions through AWS's Python SDK for bidirectional streams, `aws-sdk-bedrock-runtime` (smithy-python,
Python 3.12+), run by tests/test_bidirectional_sdk.py in a venv of its own. It uses the SDK's CRT transport (the
one with HTTP/2, so HTTPS with ALPN h2) as AWS's Nova Sonic samples do.

Usage: EP=https://127.0.0.1:PORT CA=/path/ca.pem SCENARIO=text|tools|audio|leave python sonic_smithy.py
Prints one JSON line: the output events seen per turn (the same summary as tests/js/bidi.mjs).
"""

import asyncio
import base64
import json
import math
import os
import struct

from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig
from aws_sdk_bedrock_runtime.models import (
    BidirectionalInputPayloadPart,
    InvokeModelWithBidirectionalStreamInputChunk,
    InvokeModelWithBidirectionalStreamOperationInput,
    InvokeModelWithBidirectionalStreamOutputChunk,
)
from awscrt import io as crt_io
from smithy_http.aio.crt import AWSCRTHTTPClient

PROMPT = "prompt-1"
SCENARIO = os.environ["SCENARIO"]


def transport() -> AWSCRTHTTPClient:
    client = AWSCRTHTTPClient()
    # The SDK has no TLS settings yet (a TODO in smithy_http.aio.crt): trust the emulator's local CA here.
    options = crt_io.TlsContextOptions()
    options.override_default_trust_store_from_path(None, os.environ["CA"])
    client._tls_ctx = crt_io.ClientTlsContext(options)
    return client


async def main() -> None:
    config = await AsyncBedrockRuntimeConfig.resolve(
        endpoint_uri=os.environ["EP"], region="us-east-1", transport=transport(),
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    client = AsyncBedrockRuntimeClient(config)
    stream = await client.invoke_model_with_bidirectional_stream(
        InvokeModelWithBidirectionalStreamOperationInput(model_id="amazon.nova-sonic-v1:0"))

    async def send(name: str, body: dict) -> None:
        raw = json.dumps({"event": {name: body}}).encode()
        await stream.input_stream.send(
            InvokeModelWithBidirectionalStreamInputChunk(value=BidirectionalInputPayloadPart(bytes_=raw)))

    async def text(name: str, role: str, content: str, interactive: bool) -> None:
        await send("contentStart", {"promptName": PROMPT, "contentName": name, "type": "TEXT", "role": role,
                                    "interactive": interactive, "textInputConfiguration": {"mediaType": "text/plain"}})
        await send("textInput", {"promptName": PROMPT, "contentName": name, "content": content})
        await send("contentEnd", {"promptName": PROMPT, "contentName": name})

    tools = {}
    if SCENARIO == "tools":
        schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        tools = {"toolUseOutputConfiguration": {"mediaType": "application/json"},
                 "toolConfiguration": {"tools": [{"toolSpec": {
                     "name": "getWeather", "description": "Get the current weather for a city",
                     "inputSchema": {"json": json.dumps(schema)}}}]}}
    await send("sessionStart", {"inferenceConfiguration": {"maxTokens": 1000 if SCENARIO == "leave" else 40,
                                                           "topP": 0.9, "temperature": 0}})
    await send("promptStart", {
        "promptName": PROMPT, "textOutputConfiguration": {"mediaType": "text/plain"},
        "audioOutputConfiguration": {"mediaType": "audio/lpcm", "sampleRateHertz": 24000, "sampleSizeBits": 16,
                                     "channelCount": 1, "voiceId": "matthew", "encoding": "base64",
                                     "audioType": "SPEECH"},
        **tools,
    })
    await text("system", "SYSTEM", "You are a helpful assistant. Keep answers short.", False)
    if SCENARIO == "audio":
        await send("contentStart", {"promptName": PROMPT, "contentName": "mic", "type": "AUDIO", "interactive": True,
                                    "role": "USER", "audioInputConfiguration": {
                                        "mediaType": "audio/lpcm", "sampleRateHertz": 16000, "sampleSizeBits": 16,
                                        "channelCount": 1, "audioType": "SPEECH", "encoding": "base64"}})
        frame = 512  # 32 ms: 1.5 s of a loud tone ("speech"), then 1 s of silence
        for start in range(0, int(2.5 * 16000), frame):
            samples = [int(8000 * math.sin(i / 5)) if i < 1.5 * 16000 else 0 for i in range(start, start + frame)]
            pcm = struct.pack(f"<{frame}h", *samples)
            await send("audioInput", {"promptName": PROMPT, "contentName": "mic",
                                      "content": base64.b64encode(pcm).decode()})
    else:
        question = {"text": "What is the capital of France?", "tools": "What is the weather in Paris?",
                    "leave": "Write a very long story about a dragon."}[SCENARIO]
        await text("user-1", "USER", question, True)

    _, output = await stream.await_output()
    turns, turn, thrown, completions = [], None, None, 0

    def begin() -> dict:
        return {"events": [], "text": {}, "audioBytes": 0, "toolUse": None, "ids": set()}

    turn = begin()
    try:
        async for part in output:
            if not isinstance(part, InvokeModelWithBidirectionalStreamOutputChunk):
                raise RuntimeError(f"unexpected output member {type(part).__name__}")
            event = json.loads(part.value.bytes_)["event"]
            [(name, body)] = event.items()
            label = name
            if name == "contentStart":
                stage = json.loads(body["additionalModelFields"])["generationStage"] if "additionalModelFields" in body else None
                label = "/".join(x for x in (name, body["type"], body["role"], stage) if x)
            if name in ("contentEnd", "completionEnd"):
                label = f"{name}/{body['stopReason']}"
            if name != "audioOutput" or not turn["events"] or turn["events"][-1] != "audioOutput":
                turn["events"].append(label)
            turn["ids"].add(body["completionId"])
            if name == "textOutput":
                turn["text"][body["role"]] = turn["text"].get(body["role"], "") + "|" + body["content"]
            if name == "audioOutput":
                turn["audioBytes"] += len(base64.b64decode(body["content"]))
            if name == "usageEvent":
                turn["usage"] = {"input": body["totalInputTokens"], "output": body["totalOutputTokens"]}
            if name == "toolUse":
                turn["toolUse"] = {"name": body["toolName"], "input": json.loads(body["content"])}
                await send("contentStart", {"promptName": PROMPT, "contentName": "result-1", "interactive": False,
                                            "type": "TOOL", "role": "TOOL", "toolResultInputConfiguration": {
                                                "toolUseId": body["toolUseId"], "type": "TEXT",
                                                "textInputConfiguration": {"mediaType": "text/plain"}}})
                await send("toolResult", {"promptName": PROMPT, "contentName": "result-1",
                                          "content": json.dumps({"forecast": "sunny, 21 C"})})
                await send("contentEnd", {"promptName": PROMPT, "contentName": "result-1"})
            if SCENARIO == "leave" and name == "textOutput":
                break  # the caller hangs up mid-answer: close() below resets the stream
            if name == "completionEnd":
                turns.append({**turn, "ids": len(turn["ids"])})
                turn = begin()
                completions += 1
                if SCENARIO == "text" and completions == 1:
                    await text("user-2", "USER", "And what is two plus two?", True)
                    continue
                if SCENARIO == "audio":
                    await send("contentEnd", {"promptName": PROMPT, "contentName": "mic"})
                await send("promptEnd", {"promptName": PROMPT})
                await send("sessionEnd", {})
                await stream.input_stream.close()
    except Exception as exc:  # noqa: BLE001 - reported to the test
        thrown = {"name": type(exc).__name__, "message": str(exc)}
    if SCENARIO == "leave":
        turns.append({**turn, "ids": len(turn["ids"])})
        await stream.close()
    print(json.dumps({"scenario": SCENARIO, "turns": turns, "thrown": thrown}), flush=True)


asyncio.run(main())
