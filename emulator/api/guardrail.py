"""ApplyGuardrail: a configured guardrail's policies applied to caller-supplied content, no model involved."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..guardrails import grounding
from ..guardrails.policies import Evaluation, assessment, evaluate, policy_units
from ..protocol import bounds
from ..protocol.reply import JsonReply
from ..service import SERVICE
from .common import Stopwatch
from .guarded import embedder
from .registry import operation

_EVALUATED = {"guard_content", "query"}  # grounding_source text is context, not checked content


@operation("ApplyGuardrail")
async def apply_guardrail(request: web.Request, params: dict) -> JsonReply:
    clock = Stopwatch()
    guardrail = request.app[SERVICE].guardrail(params["guardrailIdentifier"], params["guardrailVersion"])
    texts = [
        block["text"]["text"]
        for block in params["content"]
        if "text" in block and (not block["text"].get("qualifiers") or _EVALUATED & set(block["text"]["qualifiers"]))
    ]
    # Policies run over the caller's text (linear in its size) and the reply is encoded on worker threads, so the
    # event loop never waits on them however large the text is.
    evaluations = await asyncio.to_thread(lambda: [evaluate(guardrail, text) for text in texts])
    merged = Evaluation([finding for e in evaluations for finding in e.findings])
    characters = sum(len(text) for text in texts)
    embed = embedder(request.app[SERVICE])
    if params["source"] == "OUTPUT" and guardrail.grounding and embed is not None:  # contextual grounding
        blocks = [b["text"] for b in params["content"] if "text" in b]
        context = grounding.GroundingContext(
            [b["text"] for b in blocks if "grounding_source" in (b.get("qualifiers") or [])],
            [b["text"] for b in blocks if "query" in (b.get("qualifiers") or [])])
        answer = "\n".join(b["text"] for b in blocks if not b.get("qualifiers") or "guard_content" in b["qualifiers"])
        merged.findings += await grounding.check(guardrail, embed, context, answer)
    body = await asyncio.to_thread(_reply, guardrail, params, texts, evaluations, merged, characters, clock)
    return web.Response(body=body, headers={"Content-Type": "application/json"})


def _reply(guardrail, params: dict, texts: list[str], evaluations: list[Evaluation], merged: Evaluation,
           characters: int, clock: Stopwatch) -> bytes:
    if merged.blocked:
        action, reason = "GUARDRAIL_INTERVENED", "Guardrail blocked."
        messaging = guardrail.blocked_input_messaging if params["source"] == "INPUT" else guardrail.blocked_outputs_messaging
        outputs = [{"text": messaging}]
    elif any(f.entry.get("action") == "ANONYMIZED" for f in merged.findings):
        action, reason = "GUARDRAIL_INTERVENED", "Guardrail masked."
        outputs = [{"text": e.anonymized(text)} for e, text in zip(evaluations, texts)]
    else:
        action, reason = "NONE", "No action."
        outputs = [{"text": text} for text in texts] if params.get("outputScope") == "FULL" else []

    coverage = {"textCharacters": {"guarded": characters, "total": characters}}
    return bounds.dumps_bytes_yielding({
        "usage": policy_units(guardrail, characters),
        "action": action,
        "actionReason": reason,
        "outputs": outputs,
        "assessments": [assessment(guardrail, merged, characters, clock.ms)],
        "guardrailCoverage": coverage,
    })
