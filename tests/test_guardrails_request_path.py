"""Guardrails applied by Converse, ConverseStream (sync and async) and InvokeModel (headers), through boto3.

The guardrail is created through the control plane (CreateGuardrail); model output is scripted so each policy
fires on purpose. Every "expects a block" assertion is also shown failing against a misconfigured guardrail.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from conftest import HAIKU, user
from guardrail_setup import BLOCKED_INPUT, BLOCKED_OUTPUT, config, control_client

TITAN = "amazon.titan-text-express-v1"
MASKED_REPLY = "Write to jane.doe@example.com for the report."
SECRET_REPLY = "Sure, the number is 123-45-6789 as requested."


@pytest.fixture(scope="module")
def control(server):
    return control_client(server.url)


@pytest.fixture(scope="module")
def guardrail(control):
    created = control.create_guardrail(**config())
    yield created["guardrailId"]
    control.delete_guardrail(guardrailIdentifier=created["guardrailId"])


@pytest.fixture(scope="module")
def lenient(control):
    """Misconfigured for the tests below: no denied topic."""
    created = control.create_guardrail(**config(topics=False))
    yield created["guardrailId"]
    control.delete_guardrail(guardrailIdentifier=created["guardrailId"])


def gconfig(gid: str, **extra) -> dict:
    return {"guardrailIdentifier": gid, "guardrailVersion": "DRAFT", "trace": "enabled", **extra}


def text_of(reply: dict) -> str:
    return "".join(block.get("text", "") for block in reply["output"]["message"]["content"])


def assert_blocked_input(reply: dict) -> None:
    """What a caller's test checks when it expects its guardrail to block the question."""
    assert reply["stopReason"] == "guardrail_intervened"
    assert text_of(reply) == BLOCKED_INPUT


def stream(client, gid: str, text: str, mode: str, model: str = HAIKU) -> tuple[str, str, dict, list[str]]:
    reply = client.converse_stream(modelId=model, messages=[user(text)],
                                   guardrailConfig=gconfig(gid, streamProcessingMode=mode))
    texts, stop, metadata, names = [], None, {}, []
    for event in reply["stream"]:
        (name, payload), = event.items()
        names.append(name)
        if name == "contentBlockDelta":
            texts.append(payload["delta"]["text"])
        elif name == "messageStop":
            stop = payload["stopReason"]
        elif name == "metadata":
            metadata = payload
    return "".join(texts), stop, metadata, names


# -- Converse ---------------------------------------------------------------------------------------------------

def test_a_denied_topic_blocks_the_input_before_the_model_runs(client, guardrail, bedrock_emulator):
    bedrock_emulator.script("The model should never be asked.")
    reply = client.converse(modelId=HAIKU, messages=[user("Which stocks should I buy? Investment advice please.")],
                            guardrailConfig=gconfig(guardrail))
    assert_blocked_input(reply)
    assert reply["usage"] == {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}
    trace = reply["trace"]["guardrail"]
    topics = trace["inputAssessment"][guardrail]["topicPolicy"]["topics"]
    assert topics == [{"name": "Investment advice", "type": "DENY", "action": "BLOCKED", "detected": True}]
    assert "outputAssessments" not in trace and trace["actionReason"] == "Guardrail blocked."
    assert bedrock_emulator.invocations()[0]["scriptedRule"] is None  # the scripted answer was never used


def test_the_same_block_assertion_fails_when_the_guardrail_is_misconfigured(client, lenient, bedrock_emulator):
    bedrock_emulator.script("Buy index funds.")
    reply = client.converse(modelId=HAIKU, messages=[user("Which stocks should I buy? Investment advice please.")],
                            guardrailConfig=gconfig(lenient))
    with pytest.raises(AssertionError):
        assert_blocked_input(reply)
    assert reply["stopReason"] == "end_turn" and text_of(reply) == "Buy index funds."


@pytest.mark.parametrize("identifier, version", [("nosuchguardrail1", "DRAFT"), (None, "7")])
def test_an_unknown_guardrail_or_version_is_resource_not_found(client, guardrail, identifier, version):
    with pytest.raises(ClientError) as err:
        client.converse(modelId=HAIKU, messages=[user("hi")],
                        guardrailConfig={"guardrailIdentifier": identifier or guardrail, "guardrailVersion": version})
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_output_pii_is_masked_and_traced(client, guardrail, bedrock_emulator):
    bedrock_emulator.script(MASKED_REPLY)
    reply = client.converse(modelId=HAIKU, messages=[user("Who gets the report?")], guardrailConfig=gconfig(guardrail))
    assert text_of(reply) == "Write to {EMAIL} for the report."
    assert reply["stopReason"] == "guardrail_intervened"
    trace = reply["trace"]["guardrail"]
    assert trace["modelOutput"] == [MASKED_REPLY]
    [output] = trace["outputAssessments"][guardrail]
    assert output["sensitiveInformationPolicy"]["piiEntities"] == [
        {"match": "jane.doe@example.com", "type": "EMAIL", "action": "ANONYMIZED", "detected": True}]
    assert output["invocationMetrics"]["guardrailCoverage"]["textCharacters"]["guarded"] == len(MASKED_REPLY)
    assert reply["usage"]["outputTokens"] > 0


def test_blocked_output_is_replaced_by_the_blocked_messaging(client, guardrail, bedrock_emulator):
    bedrock_emulator.script(SECRET_REPLY)
    reply = client.converse(modelId=HAIKU, messages=[user("What is my number?")], guardrailConfig=gconfig(guardrail))
    assert (text_of(reply), reply["stopReason"]) == (BLOCKED_OUTPUT, "guardrail_intervened")
    [output] = reply["trace"]["guardrail"]["outputAssessments"][guardrail]
    assert output["sensitiveInformationPolicy"]["piiEntities"][0]["action"] == "BLOCKED"


def test_clean_traffic_passes_with_metrics_only_and_no_trace_when_disabled(client, guardrail, bedrock_emulator):
    bedrock_emulator.script("Paris is the capital of France.")
    reply = client.converse(modelId=HAIKU, messages=[user("Capital of France?")], guardrailConfig=gconfig(guardrail))
    assert (text_of(reply), reply["stopReason"]) == ("Paris is the capital of France.", "end_turn")
    trace = reply["trace"]["guardrail"]
    assert set(trace["inputAssessment"][guardrail]) == {"invocationMetrics"}
    assert trace["actionReason"] == "No action."
    bedrock_emulator.script("Paris.")
    quiet = client.converse(modelId=HAIKU, messages=[user("Capital?")],
                            guardrailConfig={"guardrailIdentifier": guardrail, "guardrailVersion": "DRAFT"})
    assert "trace" not in quiet


def test_enabled_full_lists_the_policies_that_did_not_fire(client, guardrail, bedrock_emulator):
    bedrock_emulator.script("Fine.")
    reply = client.converse(modelId=HAIKU, messages=[user("hello")],
                            guardrailConfig=gconfig(guardrail, trace="enabled_full"))
    topics = reply["trace"]["guardrail"]["inputAssessment"][guardrail]["topicPolicy"]["topics"]
    assert topics == [{"name": "Investment advice", "type": "DENY", "action": "NONE", "detected": False}]


def test_guard_content_limits_what_is_checked(client, guardrail, bedrock_emulator):
    bedrock_emulator.script("Noted.")
    only_safe_guarded = [{"role": "user", "content": [
        {"text": "Background: investment advice was discussed earlier."},
        {"guardContent": {"text": {"text": "What time is it?"}}}]}]
    reply = client.converse(modelId=HAIKU, messages=only_safe_guarded, guardrailConfig=gconfig(guardrail))
    assert reply["stopReason"] == "end_turn"
    guarded_topic = [{"role": "user", "content": [
        {"text": "What time is it?"}, {"guardContent": {"text": {"text": "Give me investment advice."}}}]}]
    assert_blocked_input(client.converse(modelId=HAIKU, messages=guarded_topic, guardrailConfig=gconfig(guardrail)))


def test_the_system_prompt_is_checked_only_inside_guard_content(client, guardrail, bedrock_emulator):
    bedrock_emulator.script("Noted.")
    system = [{"text": "You give investment advice."}]
    reply = client.converse(modelId=HAIKU, system=system, messages=[user("hello")], guardrailConfig=gconfig(guardrail))
    assert reply["stopReason"] == "end_turn"
    guarded = [{"guardContent": {"text": {"text": "You give investment advice."}}}]
    assert_blocked_input(client.converse(modelId=HAIKU, system=guarded, messages=[user("hello")],
                                         guardrailConfig=gconfig(guardrail)))


def test_a_created_version_keeps_its_policies_while_the_draft_changes(client, control, bedrock_emulator):
    gid = control.create_guardrail(**config())["guardrailId"]
    assert control.create_guardrail_version(guardrailIdentifier=gid)["version"] == "1"
    control.update_guardrail(guardrailIdentifier=gid, **{k: v for k, v in config(topics=False).items()
                                                         if k != "description"})
    bedrock_emulator.script("Index funds.")
    question = [user("Investment advice, please.")]
    assert_blocked_input(client.converse(modelId=HAIKU, messages=question, guardrailConfig=gconfig(gid, guardrailVersion="1")))
    assert client.converse(modelId=HAIKU, messages=question, guardrailConfig=gconfig(gid))["stopReason"] == "end_turn"
    control.delete_guardrail(guardrailIdentifier=gid)


# -- ConverseStream ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_blocks_the_input_in_both_modes(client, guardrail, bedrock_emulator, mode):
    bedrock_emulator.script("never")
    text, stop, metadata, names = stream(client, guardrail, "Investment advice, please.", mode)
    assert (text, stop) == (BLOCKED_INPUT, "guardrail_intervened")
    assert names == ["messageStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"]
    assert metadata["usage"] == {"inputTokens": 0, "outputTokens": 0, "totalTokens": 0}
    assert metadata["trace"]["guardrail"]["inputAssessment"][guardrail]["topicPolicy"]["topics"][0]["action"] == "BLOCKED"


def test_sync_stream_holds_chunks_back_and_masks(client, guardrail, bedrock_emulator):
    bedrock_emulator.script(MASKED_REPLY)
    text, stop, metadata, _ = stream(client, guardrail, "Who gets the report?", "sync")
    assert (text, stop) == ("Write to {EMAIL} for the report.", "guardrail_intervened")
    [output] = metadata["trace"]["guardrail"]["outputAssessments"][guardrail]
    assert output["sensitiveInformationPolicy"]["piiEntities"][0]["type"] == "EMAIL"


def test_sync_stream_never_sends_blocked_output(client, guardrail, bedrock_emulator):
    bedrock_emulator.script(SECRET_REPLY)
    text, stop, _, _ = stream(client, guardrail, "My number?", "sync")
    assert (text, stop) == (BLOCKED_OUTPUT, "guardrail_intervened")


def test_async_stream_sends_at_once_then_intervenes(client, guardrail, bedrock_emulator):
    long_reply = "Here is a long and harmless introduction to the topic you asked about today. " * 2 + SECRET_REPLY
    bedrock_emulator.script(long_reply + " More text that must never arrive.")
    text, stop, metadata, _ = stream(client, guardrail, "Tell me", "async")
    assert text.startswith("Here is a long and harmless introduction")  # sent before the guardrail saw it all
    assert text.endswith(BLOCKED_OUTPUT) and "must never arrive" not in text
    assert stop == "guardrail_intervened"
    [output] = metadata["trace"]["guardrail"]["outputAssessments"][guardrail]
    assert output["sensitiveInformationPolicy"]["piiEntities"][0]["action"] == "BLOCKED"


def test_async_stream_reports_but_cannot_mask(client, guardrail, bedrock_emulator):
    """AWS: 'Amazon Bedrock Guardrails doesn't support the masking of sensitive information with asynchronous mode.'"""
    bedrock_emulator.script(MASKED_REPLY)
    text, stop, metadata, _ = stream(client, guardrail, "Who gets the report?", "async")
    assert (text, stop) == (MASKED_REPLY, "end_turn")
    [output] = metadata["trace"]["guardrail"]["outputAssessments"][guardrail]
    assert output["sensitiveInformationPolicy"]["piiEntities"][0]["action"] == "ANONYMIZED"


# -- InvokeModel with guardrail headers ---------------------------------------------------------------------------

def claude_body(text: str) -> str:
    return json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
                       "messages": [{"role": "user", "content": text}]})


def test_invoke_model_claude_blocks_the_input(client, guardrail, bedrock_emulator):
    bedrock_emulator.script("never")
    reply = client.invoke_model(modelId=HAIKU, body=claude_body("Investment advice, please."),
                                guardrailIdentifier=guardrail, guardrailVersion="DRAFT", trace="ENABLED")
    body = json.loads(reply["body"].read())
    assert body["content"] == [{"type": "text", "text": BLOCKED_INPUT}]
    assert body["amazon-bedrock-guardrailAction"] == "INTERVENED"
    topics = body["amazon-bedrock-trace"]["guardrail"]["input"][guardrail]["topicPolicy"]["topics"]
    assert topics[0]["name"] == "Investment advice"
    assert reply["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"] == "0"


def test_invoke_model_without_trace_says_only_the_action(client, guardrail, bedrock_emulator):
    bedrock_emulator.script("Hello there.")
    reply = client.invoke_model(modelId=HAIKU, body=claude_body("hi"), guardrailIdentifier=guardrail,
                                guardrailVersion="DRAFT")
    body = json.loads(reply["body"].read())
    assert body["amazon-bedrock-guardrailAction"] == "NONE" and "amazon-bedrock-trace" not in body


def test_invoke_model_titan_masks_the_output(client, guardrail, bedrock_emulator):
    bedrock_emulator.script(MASKED_REPLY)
    reply = client.invoke_model(modelId=TITAN, body=json.dumps({"inputText": "Who gets the report?"}),
                                guardrailIdentifier=guardrail, guardrailVersion="DRAFT", trace="ENABLED")
    body = json.loads(reply["body"].read())
    assert body["results"][0]["outputText"] == "Write to {EMAIL} for the report."
    assert body["amazon-bedrock-guardrailAction"] == "INTERVENED"
    [outputs] = body["amazon-bedrock-trace"]["guardrail"]["outputs"]
    assert outputs[guardrail]["sensitiveInformationPolicy"]["piiEntities"][0]["action"] == "ANONYMIZED"


def test_invoke_model_titan_block_fails_when_misconfigured(client, lenient, bedrock_emulator):
    bedrock_emulator.script("Buy index funds.")
    reply = client.invoke_model(modelId=TITAN, body=json.dumps({"inputText": "Investment advice, please."}),
                                guardrailIdentifier=lenient, guardrailVersion="DRAFT")
    body = json.loads(reply["body"].read())
    with pytest.raises(AssertionError):
        assert body["amazon-bedrock-guardrailAction"] == "INTERVENED"


def test_input_tags_limit_the_invoke_model_check(client, guardrail, bedrock_emulator):
    bedrock_emulator.script("Fine.")
    tag = "amazon-bedrock-guardrails-guardContent_xyz"
    body = {"inputText": f"Investment advice was mentioned. <{tag}>What time is it?</{tag}>",
            "amazon-bedrock-guardrailConfig": {"tagSuffix": "xyz"}}
    reply = client.invoke_model(modelId=TITAN, body=json.dumps(body), guardrailIdentifier=guardrail,
                                guardrailVersion="DRAFT")
    assert json.loads(reply["body"].read())["amazon-bedrock-guardrailAction"] == "NONE"


def test_guardrail_config_in_the_body_needs_the_headers(client):
    body = {"inputText": "hi", "amazon-bedrock-guardrailConfig": {"streamProcessingMode": "SYNCHRONOUS"}}
    with pytest.raises(ClientError) as err:
        client.invoke_model(modelId=TITAN, body=json.dumps(body))
    assert err.value.response["Error"]["Code"] == "ValidationException"


@pytest.mark.parametrize("mode", ["SYNCHRONOUS", "ASYNCHRONOUS"])
def test_invoke_stream_marks_every_chunk_and_traces_the_last(client, guardrail, bedrock_emulator, mode):
    bedrock_emulator.script(SECRET_REPLY)
    body = json.loads(claude_body("My number?"))
    body["amazon-bedrock-guardrailConfig"] = {"streamProcessingMode": mode}
    reply = client.invoke_model_with_response_stream(modelId=HAIKU, body=json.dumps(body), guardrailIdentifier=guardrail,
                                                     guardrailVersion="DRAFT", trace="ENABLED")
    chunks = [json.loads(event["chunk"]["bytes"]) for event in reply["body"]]
    assert all("amazon-bedrock-guardrailAction" in chunk for chunk in chunks)
    assert chunks[-1]["amazon-bedrock-guardrailAction"] == "INTERVENED"
    assert "amazon-bedrock-trace" in chunks[-1] and not any("amazon-bedrock-trace" in c for c in chunks[:-1])
    text = "".join(c["delta"].get("text", "") for c in chunks if c["type"] == "content_block_delta")
    if mode == "SYNCHRONOUS":  # held back until checked: the number never leaves
        assert text == BLOCKED_OUTPUT
    else:  # sent as generated, then the guardrail intervenes
        assert text == SECRET_REPLY + BLOCKED_OUTPUT


# -- contextual grounding (an approximation with the local embedding model) ---------------------------------------

def test_contextual_grounding_blocks_an_unsupported_answer(client, control, bedrock_emulator):
    gid = control.create_guardrail(**config(grounding=True))["guardrailId"]
    source = "The Eiffel Tower is in Paris. It was completed in 1889 and is 330 metres tall."
    messages = [{"role": "user", "content": [
        {"guardContent": {"text": {"text": source, "qualifiers": ["grounding_source"]}}},
        {"guardContent": {"text": {"text": "When was the Eiffel Tower completed?", "qualifiers": ["query"]}}}]}]
    bedrock_emulator.script("It was completed in 1889.", times=1)
    grounded = client.converse(modelId=HAIKU, messages=messages, guardrailConfig=gconfig(gid))
    assert grounded["stopReason"] == "end_turn"
    filters = grounded["trace"]["guardrail"]["outputAssessments"][gid][0]["contextualGroundingPolicy"]["filters"]
    assert {f["type"]: f["action"] for f in filters} == {"GROUNDING": "NONE", "RELEVANCE": "NONE"}
    bedrock_emulator.script("Bananas are an excellent source of potassium for athletes.")
    off = client.converse(modelId=HAIKU, messages=messages, guardrailConfig=gconfig(gid))
    assert (text_of(off), off["stopReason"]) == (BLOCKED_OUTPUT, "guardrail_intervened")
    filters = off["trace"]["guardrail"]["outputAssessments"][gid][0]["contextualGroundingPolicy"]["filters"]
    grounding = next(f for f in filters if f["type"] == "GROUNDING")
    assert grounding["action"] == "BLOCKED" and grounding["score"] < grounding["threshold"] == 0.6
    control.delete_guardrail(guardrailIdentifier=gid)


# -- langchain-aws ---------------------------------------------------------------------------------------------

def test_langchain_chat_bedrock_converse_sees_the_intervention(server, guardrail, bedrock_emulator):
    from langchain_aws import ChatBedrockConverse

    bedrock_emulator.script("never")
    chat = ChatBedrockConverse(model=HAIKU, region_name="us-east-1", endpoint_url=server.url,
                               aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                               guardrail_config={"guardrailIdentifier": guardrail, "guardrailVersion": "DRAFT",
                                                 "trace": "enabled"})
    message = chat.invoke("Investment advice, please.")
    assert message.content == BLOCKED_INPUT
    assert message.response_metadata["stopReason"] == "guardrail_intervened"


# -- the failure that looks like a pass, on the streaming APIs too ----------------------------------------------

@pytest.mark.parametrize("api", ["converse_stream-sync", "converse_stream-async", "invoke_model_with_response_stream"])
def test_stream_block_assertions_fail_against_a_misconfigured_guardrail(client, guardrail, lenient, bedrock_emulator, api):
    def intervened(gid: str) -> bool:
        bedrock_emulator.script("Buy index funds.", times=1)
        if api.startswith("converse_stream"):
            return stream(client, gid, "Investment advice, please.", api.split("-")[1])[1] == "guardrail_intervened"
        reply = client.invoke_model_with_response_stream(modelId=HAIKU, body=claude_body("Investment advice, please."),
                                                         guardrailIdentifier=gid, guardrailVersion="DRAFT")
        chunks = [json.loads(event["chunk"]["bytes"]) for event in reply["body"]]
        return chunks[-1]["amazon-bedrock-guardrailAction"] == "INTERVENED"

    assert intervened(guardrail)
    with pytest.raises(AssertionError):
        assert intervened(lenient)
