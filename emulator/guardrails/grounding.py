"""Contextual grounding checks, approximated with the local sentence-embedding model.

Bedrock scores GROUNDING (is the answer supported by the `grounding_source`?) and RELEVANCE (does it answer the
`query`?) with its own models. The emulator's stand-in, an **approximation**: cosine similarities from the local
embedding model (all-MiniLM-L6-v2 by default). Grounding is the mean, over the answer's sentences, of each
sentence's best similarity to a sentence of the source (an answer quoted from the source scores 1.0); relevance
is the similarity of the whole answer to the query. A score below the configured threshold fails the check.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from .policies import Finding, Guardrail

# texts -> unit-length vectors, one row per text (computed off the event loop by the caller's model)
Embedder = Callable[[list[str]], Awaitable[np.ndarray]]

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_MAX_SENTENCES = 64  # bounds the work per check whatever the sizes sent


def sentences(text: str) -> list[str]:
    found = [part.strip() for part in _SENTENCE.split(text) if part and part.strip()]
    return found[:_MAX_SENTENCES] or ([text.strip()] if text.strip() else [])


@dataclass
class GroundingContext:
    """What the caller marked: `grounding_source` and `query` qualified content."""

    sources: list[str]
    queries: list[str]

    @property
    def usable(self) -> bool:
        return bool(self.sources) and bool(self.queries)


async def scores(embed: Embedder, context: GroundingContext, answer: str) -> dict[str, float]:
    source_text = "\n".join(context.sources)
    if answer.strip() and " ".join(answer.split()).lower() in " ".join(source_text.split()).lower():
        grounding = 1.0
    else:
        src, ans = sentences(source_text), sentences(answer)
        if not src or not ans:
            grounding = 0.0
        else:
            vectors = await embed(src + ans)
            sims = vectors[len(src):] @ vectors[: len(src)].T
            grounding = float(np.clip(sims.max(axis=1), 0.0, 1.0).mean())
    if answer.strip():
        pair = await embed([" ".join(context.queries), answer])
        relevance = float(np.clip(pair[0] @ pair[1], 0.0, 1.0))
    else:
        relevance = 0.0
    return {"GROUNDING": round(grounding, 2), "RELEVANCE": round(relevance, 2)}


async def check(guardrail: Guardrail, embed: Embedder, context: GroundingContext, answer: str) -> list[Finding]:
    """One contextualGroundingPolicy filter entry per configured type; a score under its threshold blocks."""
    if not guardrail.grounding or not context.usable:
        return []
    found = await scores(embed, context, answer)
    findings = []
    for kind, threshold in guardrail.grounding.items():
        failed = found[kind] < threshold
        entry = {"type": kind, "threshold": threshold, "score": found[kind],
                 "action": "BLOCKED" if failed else "NONE", "detected": failed}
        findings.append(Finding("contextualGroundingPolicy", "filters", entry, failed))
    return findings
