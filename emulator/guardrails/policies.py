"""Guardrail definitions (loaded from YAML) and their deterministic evaluation over text.

Real Bedrock classifies content with models; the emulator uses exact words, trigger phrases and regular
expressions so a test can trigger every policy on purpose. PII detection is a regex heuristic and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import regex
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..catalog import bundled_model_file
from ..protocol.errors import BedrockError
from ..safe_regex import RegexTimeout, UnsafePattern, compile_checked

Action = Literal["BLOCK", "ANONYMIZE"]
CONTENT_TYPES = ("HATE", "INSULTS", "SEXUAL", "VIOLENCE", "MISCONDUCT", "PROMPT_ATTACK")

# Regex heuristics for the PII types tests most often need; other types are accepted but never detected.
PII_PATTERNS: dict[str, str] = {
    "EMAIL": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "PHONE": r"(?<!\d)(?:\+?1[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}(?!\d)",
    "US_SOCIAL_SECURITY_NUMBER": r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)",
    "CREDIT_DEBIT_CARD_NUMBER": r"(?<!\d)(?:\d[ -]?){13,19}(?!\d)",
    "IP_ADDRESS": r"(?<!\d)(?:\d{1,3}\.){3}\d{1,3}(?!\d)",
    "URL": r"https?://[^\s]+",
    "AWS_ACCESS_KEY": r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])",
    "MAC_ADDRESS": r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}(?![0-9A-Fa-f:])",
}
REGEX_BUDGET_S = 0.25  # per configured regex and evaluated text
PROFANITY = ("damn", "hell", "crap")  # a tiny stand-in for Bedrock's managed profanity list


def _luhn(digits: str) -> bool:
    nums = [int(c) for c in digits if c.isdigit()]
    total = 0
    for i, n in enumerate(reversed(nums)):
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return len(nums) >= 13 and total % 10 == 0


class Topic(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    triggers: list[str] = Field(min_length=1)


class RegexRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    pattern: str
    action: Action = "BLOCK"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compile_checked(value)
        except UnsafePattern as exc:
            raise ValueError(str(exc)) from None
        return value


class Guardrail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    blocked_input_messaging: str = "Sorry, the model cannot answer this question."
    blocked_outputs_messaging: str = "Sorry, the model cannot answer this question."
    words: list[str] = Field(default_factory=list)
    profanity: bool = False
    topics: list[Topic] = Field(default_factory=list)
    content: dict[Literal[CONTENT_TYPES], list[str]] = Field(default_factory=dict)  # type: ignore[valid-type]
    pii: dict[str, Action] = Field(default_factory=dict)
    regexes: list[RegexRule] = Field(default_factory=list)
    # Contextual grounding: GROUNDING / RELEVANCE -> threshold (0-0.99); scored in grounding.py (an approximation).
    grounding: dict[Literal["GROUNDING", "RELEVANCE"], float] = Field(default_factory=dict)


class GuardrailFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    guardrails: dict[str, Guardrail] = Field(default_factory=dict)


def load(path: Path | None) -> dict[str, Guardrail]:
    path = path or bundled_model_file("guardrails.yaml")
    if not path.exists():
        return {}
    try:
        return GuardrailFile.model_validate(yaml.safe_load(path.read_text()) or {}).guardrails
    except (yaml.YAMLError, ValidationError) as exc:
        raise SystemExit(f"invalid guardrails file {path}:\n{exc}") from None


@lru_cache(maxsize=4096)
def _phrase_pattern(phrase: str) -> regex.Pattern:
    return regex.compile(rf"(?<!\w){regex.escape(phrase)}(?!\w)", regex.IGNORECASE)


def _phrase(text: str, phrase: str) -> bool:
    # `regex` with concurrent=True releases the GIL while it scans: a long text never stalls the event loop thread.
    return _phrase_pattern(phrase).search(text, concurrent=True) is not None


@dataclass
class Finding:
    """One detection, already in the shape of its assessment entry."""

    policy: str  # topicPolicy | contentPolicy | wordPolicy | sensitiveInformationPolicy
    group: str  # topics | filters | customWords | managedWordLists | piiEntities | regexes
    entry: dict
    blocks: bool
    span: tuple[int, int] | None = None  # for anonymization
    label: str = ""


@dataclass
class Evaluation:
    findings: list[Finding] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return any(f.blocks for f in self.findings)

    @property
    def intervened(self) -> bool:
        return bool(self.findings)

    def anonymized(self, text: str) -> str:
        """Replace anonymized spans with `{TYPE}` as Bedrock does: one pass, linear in the text and the findings.
        Overlapping spans (two policies over the same characters) keep the earlier one."""
        spans = sorted((f for f in self.findings if f.span and not f.blocks), key=lambda f: f.span[0])
        parts, at = [], 0
        for finding in spans:
            start, end = finding.span
            if start < at:
                continue
            parts += [text[at:start], "{" + finding.label + "}"]
            at = end
        parts.append(text[at:])
        return "".join(parts)


def evaluate(guardrail: Guardrail, text: str) -> Evaluation:
    result = Evaluation()
    for topic in guardrail.topics:
        if any(_phrase(text, t) for t in topic.triggers):
            result.findings.append(Finding("topicPolicy", "topics",
                                           {"name": topic.name, "type": "DENY", "action": "BLOCKED", "detected": True}, True))
    for kind, phrases in guardrail.content.items():
        if any(_phrase(text, p) for p in phrases):
            entry = {"type": kind, "confidence": "HIGH", "filterStrength": "HIGH", "action": "BLOCKED", "detected": True}
            result.findings.append(Finding("contentPolicy", "filters", entry, True))
    for word in guardrail.words:
        if _phrase(text, word):
            result.findings.append(Finding("wordPolicy", "customWords", {"match": word, "action": "BLOCKED", "detected": True}, True))
    if guardrail.profanity:
        for word in PROFANITY:
            if _phrase(text, word):
                entry = {"match": word, "type": "PROFANITY", "action": "BLOCKED", "detected": True}
                result.findings.append(Finding("wordPolicy", "managedWordLists", entry, True))
    for kind, action in guardrail.pii.items():
        pattern = PII_PATTERNS.get(kind)
        for match in regex.finditer(pattern, text, concurrent=True) if pattern else ():
            if kind == "CREDIT_DEBIT_CARD_NUMBER" and not _luhn(match.group()):
                continue
            verdict = "BLOCKED" if action == "BLOCK" else "ANONYMIZED"
            entry = {"match": match.group(), "type": kind, "action": verdict, "detected": True}
            result.findings.append(Finding("sensitiveInformationPolicy", "piiEntities", entry, action == "BLOCK", match.span(), kind))
    for rule in guardrail.regexes:
        for match in _regex_matches(rule, text):
            verdict = "BLOCKED" if rule.action == "BLOCK" else "ANONYMIZED"
            entry = {"name": rule.name, "match": match.group(), "regex": rule.pattern, "action": verdict, "detected": True}
            result.findings.append(Finding("sensitiveInformationPolicy", "regexes", entry, rule.action == "BLOCK", match.span(), rule.name))
    return result


def _regex_matches(rule: RegexRule, text: str):
    """A configured regex's matches, with the safe engine's time budget (guardrails can come from API callers)."""
    try:
        return list(compile_checked(rule.pattern).finditer(text, timeout=REGEX_BUDGET_S, concurrent=True))
    except RegexTimeout:
        raise BedrockError("ValidationException", f"The guardrail regex {rule.name!r} took longer than "
                           f"{int(REGEX_BUDGET_S * 1000)} ms on this input; simplify the pattern.") from None


def policy_units(guardrail: Guardrail, characters: int) -> dict:
    """Bedrock bills one text unit per started 1,000 characters for each configured policy."""
    units = max(1, -(-characters // 1000)) if characters else 0
    pii_or_regex = bool(guardrail.pii or guardrail.regexes)
    return {
        "topicPolicyUnits": units if guardrail.topics else 0,
        "contentPolicyUnits": units if guardrail.content else 0,
        "wordPolicyUnits": units if (guardrail.words or guardrail.profanity) else 0,
        "sensitiveInformationPolicyUnits": units if pii_or_regex else 0,
        "sensitiveInformationPolicyFreeUnits": 0,
        "contextualGroundingPolicyUnits": 0,
    }


def assessment(guardrail: Guardrail, evaluation: Evaluation, characters: int, latency_ms: int) -> dict:
    """A GuardrailAssessment: only the policies that found something, plus invocation metrics."""
    out: dict = {}
    for finding in evaluation.findings:
        policy = out.setdefault(finding.policy, {})
        policy.setdefault(finding.group, []).append(finding.entry)
    # Required list members of each policy assessment must be present even when empty.
    if "wordPolicy" in out:
        out["wordPolicy"].setdefault("customWords", [])
        out["wordPolicy"].setdefault("managedWordLists", [])
    if "sensitiveInformationPolicy" in out:
        out["sensitiveInformationPolicy"].setdefault("piiEntities", [])
        out["sensitiveInformationPolicy"].setdefault("regexes", [])
    out["invocationMetrics"] = {
        "guardrailProcessingLatency": latency_ms,
        "usage": policy_units(guardrail, characters),
        "guardrailCoverage": {"textCharacters": {"guarded": characters, "total": characters}},
    }
    return out


def resolve_identifier(identifier: str) -> str:
    """`arn:aws:bedrock:<region>:<acct>:guardrail/<id>` and plain ids name the same guardrail."""
    return identifier.rsplit("/", 1)[-1] if identifier.startswith("arn:") else identifier

