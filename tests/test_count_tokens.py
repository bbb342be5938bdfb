"""CountTokens in both forms counts exactly what Converse and InvokeModel bill as input tokens."""

from __future__ import annotations

import json

from conftest import HAIKU, user
from native_calls import QUESTION, count_invoke_tokens, invoke, malformed, rejected


def count_converse(client, model_id: str, **converse) -> int:
    return client.count_tokens(modelId=model_id, input={"converse": converse})["inputTokens"]


def test_converse_form_equals_converse_input_tokens(client):
    messages = [user("Remember the number 7."), {"role": "assistant", "content": [{"text": "Noted."}]}, user(QUESTION)]
    system = [{"text": "Answer in one word."}]
    reply = client.converse(modelId=HAIKU, messages=messages, system=system, inferenceConfig={"maxTokens": 1})
    assert count_converse(client, HAIKU, messages=messages, system=system) == reply["usage"]["inputTokens"]


def test_converse_form_counts_the_tool_instructions_a_tool_turn_is_billed_for(client):
    tools = {"tools": [{"toolSpec": {"name": "get_weather", "description": "The weather in a city.",
                                     "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}},
                                                              "required": ["city"]}}}}]}
    messages = [user("Is it raining in Paris?")]
    reply = client.converse(modelId=HAIKU, messages=messages, toolConfig=tools, inferenceConfig={"maxTokens": 1})
    counted = count_converse(client, HAIKU, messages=messages, toolConfig=tools)
    assert counted == reply["usage"]["inputTokens"] > count_converse(client, HAIKU, messages=messages)


def test_system_prompt_and_history_are_counted(client):
    short = count_converse(client, HAIKU, messages=[user(QUESTION)], system=[{"text": "Be brief."}])
    longer = count_converse(client, HAIKU, messages=[user(QUESTION)], system=[{"text": "Be brief and polite."}])
    history = [user("Hi"), {"role": "assistant", "content": [{"text": "Hello!"}]}, user(QUESTION)]
    assert longer > short > len(QUESTION.split())
    assert count_converse(client, HAIKU, messages=history, system=[{"text": "Be brief."}]) > short


def test_invoke_form_equals_invoke_model_input_tokens(client):
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 1, "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}]}
    _, headers = invoke(client, HAIKU, body)
    assert count_invoke_tokens(client, HAIKU, body) == int(headers["x-amzn-bedrock-input-token-count"])


def test_both_forms_agree_for_the_same_conversation(client):
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": [{"role": "user", "content": QUESTION}]}
    assert count_invoke_tokens(client, HAIKU, body) == count_converse(client, HAIKU, messages=[user(QUESTION)])


def test_invoke_form_validates_the_native_body(client):
    bad = {"anthropic_version": "bedrock-2023-05-31", "messages": [{"role": "user", "content": "hi"}]}
    assert rejected(lambda: count_invoke_tokens(client, HAIKU, bad)) == malformed("#: required key [max_tokens] not found")
    raw = {"invokeModel": {"body": b"{not json"}}
    message = rejected(lambda: client.count_tokens(modelId=HAIKU, input=raw))
    assert message.startswith("Malformed input request:")


def test_image_models_do_not_count_tokens(client):
    body = json.dumps({"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "x"}}).encode()
    message = rejected(lambda: client.count_tokens(modelId="amazon.nova-canvas-v1:0", input={"invokeModel": {"body": body}}))
    assert message == "The provided model doesn't support counting tokens."
