"""The README's promise in one test: Converse at temperature 0 answers the capital question with Paris."""

from conftest import HAIKU, user


def test_capital_of_france_is_paris(client):
    reply = client.converse(
        modelId=HAIKU,
        messages=[user("What is the capital of France?")],
        inferenceConfig={"temperature": 0, "maxTokens": 40},
    )
    assert "Paris" in reply["output"]["message"]["content"][0]["text"]
    assert reply["stopReason"] == "end_turn"
