"""Scripted tool calls drive a real agent framework (pydantic-ai over boto3 Converse / ConverseStream).

The agent cannot tell the scripted model from Bedrock: it runs the tool the script asks for, sends the result back
in the next turn, and returns the scripted final answer (or the scripted structured output).
"""

from __future__ import annotations

import asyncio

import pytest
from conftest import HAIKU
from pydantic import BaseModel

pydantic_ai = pytest.importorskip("pydantic_ai")
from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.models.bedrock import BedrockConverseModel  # noqa: E402
from pydantic_ai.providers.bedrock import BedrockProvider  # noqa: E402


@pytest.fixture
def model(client):
    return BedrockConverseModel(HAIKU, provider=BedrockProvider(bedrock_client=client))


def test_a_scripted_tool_call_runs_the_agents_tool(model, bedrock_emulator):
    calls = []
    agent = Agent(model)

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        calls.append(city)
        return f"sunny, 21 °C in {city}"

    bedrock_emulator.script(tool_calls=[{"name": "get_weather", "input": {"city": "Paris"}}], turn=1)
    bedrock_emulator.script("It is sunny in Paris.", turn=2)
    result = agent.run_sync("What is the weather in Paris?")

    assert result.output == "It is sunny in Paris."
    assert calls == ["Paris"]
    first, second = bedrock_emulator.invocations()
    assert first["request"]["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    tool_use = first["response"]["output"]["message"]["content"][0]["toolUse"]
    [tool_result] = [block["toolResult"] for block in second["request"]["messages"][-1]["content"]
                     if "toolResult" in block]
    assert tool_result["toolUseId"] == tool_use["toolUseId"]
    assert tool_result["content"] == [{"text": "sunny, 21 °C in Paris"}]


class Weather(BaseModel):
    city: str
    celsius: int


def test_scripted_structured_output_becomes_the_agents_typed_result(model, bedrock_emulator):
    """pydantic-ai asks for structured output as a forced `final_result` tool call."""
    bedrock_emulator.script(tool_calls=[{"name": "final_result", "input": {"city": "Rome", "celsius": 25}}])
    result = Agent(model, output_type=Weather).run_sync("Weather in Rome?")
    assert result.output == Weather(city="Rome", celsius=25)
    assert bedrock_emulator.invocations()[0]["request"]["toolConfig"]["toolChoice"] == {"any": {}}


def test_a_streamed_scripted_answer_reaches_the_agent(model, bedrock_emulator):
    bedrock_emulator.script("Streaming through pydantic-ai works.", operation="ConverseStream")

    async def stream() -> str:
        async with Agent(model).run_stream("Say something") as run:
            return await run.get_output()

    assert asyncio.run(stream()) == "Streaming through pydantic-ai works."
    assert bedrock_emulator.invocations()[0]["operation"] == "ConverseStream"
