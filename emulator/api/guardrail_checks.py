"""InvokeGuardrailChecks: inline checks (content filters, prompt attacks, sensitive information), no guardrail.

Scores are deterministic stand-ins for Bedrock's classifiers (a **keyword heuristic**): a category scores 1.0
when one of its trigger phrases appears as a whole phrase in the messages (the built-in phrases of
`guardrails/store.py` plus those the guardrails file configures for that content filter), else 0.0. Sensitive
information uses the PII regular expressions of `guardrails/policies.py` (confidence 1.0; types without one are
never found) and reports each match's offsets in its message and content block.
"""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from ..guardrails.policies import PII_PATTERNS, _luhn, _phrase
from ..guardrails.store import CATEGORY_TRIGGERS
from ..protocol.errors import validation
from ..service import SERVICE, Service
from .common import json_response
from .registry import operation

PROMPT_ATTACK_TRIGGERS = {
    "JAILBREAK": ("jailbreak", "do anything now", "pretend you have no rules", "developer mode"),
    "PROMPT_INJECTION": ("ignore previous instructions", "ignore all previous instructions",
                         "disregard your instructions"),
    "PROMPT_LEAKAGE": ("system prompt", "reveal your instructions", "repeat your instructions"),
}
_MAX_ENTITIES = 1000  # more matches than this: `truncated: true`


def _units(characters: int) -> int:
    return max(1, -(-characters // 1000)) if characters else 0


def _triggers(service: Service, category: str) -> list[str]:
    configured = [p for g in service.guardrails.values() for p in g.content.get(category, [])]
    return [*CATEGORY_TRIGGERS.get(category, ()), *configured]


def _run(service: Service, params: dict) -> dict:
    blocks = [(i, j, block["text"]) for i, message in enumerate(params["messages"])
              for j, block in enumerate(message["content"]) if "text" in block]
    texts = [text for _, _, text in blocks]
    units = _units(sum(len(t) for t in texts))
    checks = params["checks"]
    results: dict = {}
    usage: dict = {}

    def scored(category: str, phrases: list[str] | tuple[str, ...]) -> dict:
        hit = any(_phrase(text, phrase) for text in texts for phrase in phrases)
        return {"category": category, "severityScore": 1.0 if hit else 0.0}

    if "contentFilter" in checks:
        wanted = [c["category"] for c in checks["contentFilter"]["categories"]]
        results["contentFilter"] = {"results": [scored(c, _triggers(service, c)) for c in wanted]}
        usage["contentFilter"] = {"textUnits": units}
    if "promptAttack" in checks:
        wanted = [c["category"] for c in checks["promptAttack"]["categories"]]
        results["promptAttack"] = {"results": [scored(c, PROMPT_ATTACK_TRIGGERS[c]) for c in wanted]}
        usage["promptAttack"] = {"textUnits": units}
    if "sensitiveInformation" in checks:
        found: list[dict] = []
        for kind in dict.fromkeys(e["type"] for e in checks["sensitiveInformation"]["entities"]):
            pattern = PII_PATTERNS.get(kind)
            for message_index, content_index, text in blocks if pattern else ():
                for match in re.finditer(pattern, text):
                    if kind == "CREDIT_DEBIT_CARD_NUMBER" and not _luhn(match.group()):
                        continue
                    found.append({"type": kind, "confidenceScore": 1.0, "beginOffset": match.start(),
                                  "endOffset": match.end(), "messageIndex": message_index, "contentIndex": content_index})
        found.sort(key=lambda e: (e["messageIndex"], e["contentIndex"], e["beginOffset"]))
        results["sensitiveInformation"] = {"results": found[:_MAX_ENTITIES], "truncated": len(found) > _MAX_ENTITIES}
        usage["sensitiveInformation"] = {"textUnits": units}
    return {"results": results, "usage": usage}


@operation("InvokeGuardrailChecks")
async def invoke_guardrail_checks(request: web.Request, params: dict) -> web.Response:
    if not params["checks"]:
        raise validation("At least one check must be set in checks.")
    service: Service = request.app[SERVICE]
    return json_response(await asyncio.to_thread(_run, service, params))  # detection time grows with the text
