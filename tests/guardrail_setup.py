"""A guardrail created through the control plane, shared by the guardrail tests (boto3 and the JS SDK)."""

from __future__ import annotations

import uuid

import boto3
from botocore.config import Config

BLOCKED_INPUT = "Your question is outside what I can answer."
BLOCKED_OUTPUT = "The answer was withheld by policy."


def control_client(url: str):
    return boto3.client("bedrock", endpoint_url=url, region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE",
                        aws_secret_access_key="secret", config=Config(retries={"total_max_attempts": 1}))


def config(name: str | None = None, topics: bool = True, grounding: bool = False) -> dict:
    """Deny investment advice, block custom words and SSNs, mask e-mail addresses (and ground, if asked)."""
    out: dict = {
        "name": name or f"test-{uuid.uuid4().hex[:10]}",
        "description": "guardrail tests",
        "blockedInputMessaging": BLOCKED_INPUT,
        "blockedOutputsMessaging": BLOCKED_OUTPUT,
        "wordPolicyConfig": {"wordsConfig": [{"text": "badword"}]},
        "sensitiveInformationPolicyConfig": {"piiEntitiesConfig": [
            {"type": "EMAIL", "action": "ANONYMIZE"}, {"type": "US_SOCIAL_SECURITY_NUMBER", "action": "BLOCK"}]},
    }
    if topics:
        out["topicPolicyConfig"] = {"topicsConfig": [{
            "name": "Investment advice", "definition": "Recommendations about where to invest money.",
            "examples": ["Which stocks should I buy?"], "type": "DENY"}]}
    if grounding:
        out["contextualGroundingPolicyConfig"] = {"filtersConfig": [
            {"type": "GROUNDING", "threshold": 0.6}, {"type": "RELEVANCE", "threshold": 0.3}]}
    return out
