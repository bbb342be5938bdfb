"""Real agent frameworks (pydantic-ai, strands, langchain, the Anthropic SDK) run their tool loops against the
emulator's own model (no scripted answers): the model's tool calls are decoded under each tool's schema, so the
framework's own validation always accepts them.

Each framework is pointed at the emulator the way its users would point it at Bedrock (see clients.md).
"""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from conftest import HAIKU
from pydantic import BaseModel, Field

NO_RETRIES = Config(retries={"total_max_attempts": 1}, read_timeout=300)


class Weather(BaseModel):
    """Weather report for a city."""

    city: str
    celsius: int = Field(ge=-60, le=60)
    sunny: bool


def test_pydantic_ai_structured_output(client):
    pydantic_ai = pytest.importorskip("pydantic_ai")
    from pydantic_ai.models.bedrock import BedrockConverseModel
    from pydantic_ai.providers.bedrock import BedrockProvider

    model = BedrockConverseModel(HAIKU, provider=BedrockProvider(bedrock_client=client))
    agent = pydantic_ai.Agent(model, output_type=Weather, model_settings={"max_tokens": 60, "temperature": 0})
    result = agent.run_sync("It is 21 degrees and sunny in Paris. Report the weather.")
    assert isinstance(result.output, Weather)
    assert -60 <= result.output.celsius <= 60


def test_strands_agent_calls_a_python_tool_and_finishes(server):
    strands = pytest.importorskip("strands")
    from strands.models import BedrockModel

    calls: list[str] = []

    @strands.tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        calls.append(city)
        return f"Sunny and 21 degrees in {city}."

    session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    model = BedrockModel(model_id=HAIKU, boto_session=session, endpoint_url=server.url, boto_client_config=NO_RETRIES,
                         max_tokens=40, temperature=0)  # streams through ConverseStream, strands' default
    agent = strands.Agent(model=model, tools=[get_weather], callback_handler=None)
    result = agent("What's the weather in Paris?")
    assert calls and all(isinstance(city, str) for city in calls)  # the tool ran with schema-valid arguments
    assert result.stop_reason in ("end_turn", "max_tokens")  # after the tool result the model answered in text
    roles = [m["role"] for m in agent.messages]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert "toolUse" in agent.messages[1]["content"][-1] and "toolResult" in agent.messages[2]["content"][0]


def test_langchain_with_structured_output_and_bound_tools(server):
    pytest.importorskip("langchain_aws")
    from langchain_aws import ChatBedrockConverse

    llm = ChatBedrockConverse(model=HAIKU, endpoint_url=server.url, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test", config=NO_RETRIES,
                              max_tokens=60, temperature=0)
    report = llm.with_structured_output(Weather).invoke("It is 21 degrees and sunny in Paris. Report the weather.")
    assert isinstance(report, Weather)

    message = llm.bind_tools([Weather]).invoke("What's the weather report for Rome?")
    (call,) = message.tool_calls
    assert call["name"] == "Weather"
    Weather.model_validate(call["args"])
    assert call["id"].startswith("tooluse_")


def test_anthropic_sdk_tool_runner(claude):
    anthropic = pytest.importorskip("anthropic")
    calls: list[tuple[str, int]] = []

    @anthropic.beta_tool
    def get_forecast(city: str, days: int) -> str:
        """Get the weather forecast for a city.

        Args:
            city: The city.
            days: How many days ahead.
        """
        calls.append((city, days))
        return f"Sunny for {days} days in {city}, 21 degrees Celsius."

    runner = claude.beta.messages.tool_runner(
        model=HAIKU, max_tokens=60, tools=[get_forecast], extra_body={"temperature": 0},
        messages=[{"role": "user", "content": "What's the weather forecast for Paris for the next 3 days?"}])
    final = runner.until_done()
    assert len(calls) == 1 and isinstance(calls[0][0], str) and isinstance(calls[0][1], int)
    assert final.stop_reason in ("end_turn", "max_tokens") and final.content[0].type == "text"
