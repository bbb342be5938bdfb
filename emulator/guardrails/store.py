"""Guardrails created through the control plane (`bedrock` CreateGuardrail ...), kept in memory.

Each has a working draft (`DRAFT`, what UpdateGuardrail edits) and numbered versions (CreateGuardrailVersion
snapshots the draft). The runtime uses them at once, next to the guardrails of `models/guardrails.yaml`.

AWS's policy configuration becomes the emulator's deterministic policies (see policies.py): a denied topic
fires on its name or one of its example phrases, content filters on a small built-in list of trigger phrases per
category (a **keyword heuristic**, not Bedrock's classifiers; strength NONE turns a filter off), words and the
PROFANITY list as whole words, PII and regexes as configured, contextual grounding with its thresholds.
"""

from __future__ import annotations

import copy
import re
import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pydantic import ValidationError

from ..protocol.errors import BedrockError, validation
from .policies import Guardrail, RegexRule, Topic

# Stand-in trigger phrases per content-filter category (a heuristic; real Bedrock uses classifiers).
CATEGORY_TRIGGERS: dict[str, tuple[str, ...]] = {
    "HATE": ("hate speech", "inferior race", "subhuman"),
    "INSULTS": ("idiot", "moron", "stupid", "loser"),
    "SEXUAL": ("sexually explicit", "porn", "nude"),
    "VIOLENCE": ("kill", "murder", "bomb", "shoot"),
    "MISCONDUCT": ("steal", "launder money", "hack into", "make meth"),
    "PROMPT_ATTACK": ("ignore previous instructions", "ignore all previous instructions",
                      "disregard your instructions", "jailbreak"),
}
_ID_ALPHABET = string.ascii_lowercase + string.digits


def now() -> datetime:
    return datetime.now(timezone.utc)


def policies_from_config(config: dict) -> Guardrail:
    """CreateGuardrail/UpdateGuardrail members -> the emulator's deterministic policies."""
    topics = [
        Topic(name=t["name"], triggers=[t["name"], *t.get("examples", [])])
        for t in config.get("topicPolicyConfig", {}).get("topicsConfig", [])
        if t.get("inputEnabled", True) or t.get("outputEnabled", True)
    ]
    content = {
        f["type"]: list(CATEGORY_TRIGGERS[f["type"]])
        for f in config.get("contentPolicyConfig", {}).get("filtersConfig", [])
        if f["type"] in CATEGORY_TRIGGERS and {f.get("inputStrength"), f.get("outputStrength")} - {"NONE", None}
    }
    words_config = config.get("wordPolicyConfig", {})
    sensitive = config.get("sensitiveInformationPolicyConfig", {})
    pii = {e["type"]: e["action"] for e in sensitive.get("piiEntitiesConfig", []) if e["action"] in ("BLOCK", "ANONYMIZE")}
    grounding = {
        f["type"]: f["threshold"]
        for f in config.get("contextualGroundingPolicyConfig", {}).get("filtersConfig", [])
        if f.get("enabled", True) and f.get("action", "BLOCK") != "NONE"
    }
    try:
        regexes = [RegexRule(name=r["name"], pattern=r["pattern"], action=r["action"])
                   for r in sensitive.get("regexesConfig", []) if r["action"] in ("BLOCK", "ANONYMIZE")]
        return Guardrail(
            blocked_input_messaging=config["blockedInputMessaging"],
            blocked_outputs_messaging=config["blockedOutputsMessaging"],
            words=[w["text"] for w in words_config.get("wordsConfig", [])],
            profanity=any(m["type"] == "PROFANITY" for m in words_config.get("managedWordListsConfig", [])),
            topics=topics, content=content, pii=pii, regexes=regexes, grounding=grounding,
        )
    except (ValidationError, re.error) as exc:
        raise validation(f"The guardrail configuration is invalid: {exc}") from None


@dataclass
class Version:
    config: dict
    policies: Guardrail
    description: str | None
    created_at: datetime
    updated_at: datetime


@dataclass
class Stored:
    id: str
    arn: str
    draft: Version
    versions: dict[str, Version] = field(default_factory=dict)
    tags: list[dict] = field(default_factory=list)
    client_tokens: dict[str, str] = field(default_factory=dict)  # CreateGuardrailVersion idempotency

    def version(self, version: str | None) -> Version:
        if version in (None, "", "DRAFT"):
            return self.draft
        found = self.versions.get(version)
        if found is None:
            raise not_found(self.id, version)
        return found


def not_found(identifier: str, version: str | None = None) -> BedrockError:
    what = f"version {version} of guardrail {identifier}" if version else f"guardrail {identifier}"
    return BedrockError("ResourceNotFoundException", f"The {what} does not exist.")


def _identifier(identifier: str) -> str:
    return identifier.rsplit("/", 1)[-1] if identifier.startswith("arn:") else identifier


# Bedrock's default quotas ("Guardrails per account", "Versions per guardrail"): they also bound the memory that
# CreateGuardrail and CreateGuardrailVersion can take.
MAX_GUARDRAILS = 100
MAX_VERSIONS = 20


def _quota(what: str, limit: int) -> BedrockError:
    return BedrockError("ServiceQuotaExceededException",
                        f"The number of {what} has reached its quota ({limit}). Delete one and try again.")


class GuardrailStore:
    def __init__(self) -> None:
        self.guardrails: dict[str, Stored] = {}
        self._tokens: dict[str, str] = {}  # CreateGuardrail clientRequestToken -> id

    def get(self, identifier: str) -> Stored:
        found = self.guardrails.get(_identifier(identifier))
        if found is None:
            raise not_found(identifier)
        return found

    def find(self, identifier: str) -> Stored | None:
        return self.guardrails.get(_identifier(identifier))

    def create(self, params: dict, region: str, account: str) -> Stored:
        token = params.get("clientRequestToken")
        if token and token in self._tokens and self._tokens[token] in self.guardrails:
            return self.guardrails[self._tokens[token]]
        if any(g.draft.config["name"] == params["name"] for g in self.guardrails.values()):
            raise BedrockError("ConflictException", f"A guardrail named {params['name']} already exists.")
        if len(self.guardrails) >= MAX_GUARDRAILS:
            raise _quota("guardrails in this account", MAX_GUARDRAILS)
        config = _config(params)
        policies = policies_from_config(config)
        guardrail_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
        created = now()
        stored = Stored(
            guardrail_id, f"arn:aws:bedrock:{region}:{account}:guardrail/{guardrail_id}",
            Version(config, policies, params.get("description"), created, created), tags=params.get("tags", []),
        )
        self.guardrails[guardrail_id] = stored
        if token:
            self._tokens[token] = guardrail_id
        return stored

    def update(self, params: dict) -> Stored:
        stored = self.get(params["guardrailIdentifier"])
        config = _config(params)
        if config["name"] != stored.draft.config["name"] and any(
                g.draft.config["name"] == config["name"] for g in self.guardrails.values()):
            raise BedrockError("ConflictException", f"A guardrail named {config['name']} already exists.")
        stored.draft = Version(config, policies_from_config(config), params.get("description"),
                               stored.draft.created_at, now())
        return stored

    def create_version(self, params: dict) -> tuple[Stored, str]:
        stored = self.get(params["guardrailIdentifier"])
        token = params.get("clientRequestToken")
        if token and token in stored.client_tokens:
            return stored, stored.client_tokens[token]
        if len(stored.versions) >= MAX_VERSIONS:
            raise _quota(f"versions of guardrail {stored.id}", MAX_VERSIONS)
        number = str(max((int(v) for v in stored.versions), default=0) + 1)
        draft = stored.draft
        created = now()
        stored.versions[number] = Version(copy.deepcopy(draft.config), draft.policies.model_copy(deep=True),
                                          params.get("description", draft.description), created, created)
        if token:
            stored.client_tokens[token] = number
        return stored, number

    def delete(self, identifier: str, version: str | None) -> None:
        stored = self.get(identifier)
        if version:
            if version not in stored.versions:
                raise not_found(identifier, version)
            del stored.versions[version]
        else:
            del self.guardrails[stored.id]


_CONFIG_KEYS = ("name", "topicPolicyConfig", "contentPolicyConfig", "wordPolicyConfig",
                "sensitiveInformationPolicyConfig", "contextualGroundingPolicyConfig", "automatedReasoningPolicyConfig",
                "crossRegionConfig", "blockedInputMessaging", "blockedOutputsMessaging", "kmsKeyId")


def _config(params: dict) -> dict:
    return copy.deepcopy({key: params[key] for key in _CONFIG_KEYS if key in params})


# CreateGuardrail's `...Config` members and GetGuardrail's names for the same things.
_RENAMED = {"topicPolicyConfig": ("topicPolicy", {"topicsConfig": "topics", "tierConfig": "tier"}),
            "contentPolicyConfig": ("contentPolicy", {"filtersConfig": "filters", "tierConfig": "tier"}),
            "wordPolicyConfig": ("wordPolicy", {"wordsConfig": "words", "managedWordListsConfig": "managedWordLists"}),
            "sensitiveInformationPolicyConfig": ("sensitiveInformationPolicy",
                                                 {"piiEntitiesConfig": "piiEntities", "regexesConfig": "regexes"}),
            "contextualGroundingPolicyConfig": ("contextualGroundingPolicy",
                                                {"filtersConfig": "filters", "tierConfig": "tier"}),
            "automatedReasoningPolicyConfig": ("automatedReasoningPolicy", {})}


def described(stored: Stored, version: str | None) -> dict:
    """GetGuardrail's reply for one version."""
    chosen = stored.version(version)
    config = chosen.config
    reply: dict = {
        "name": config["name"],
        "guardrailId": stored.id,
        "guardrailArn": stored.arn,
        "version": version or "DRAFT",
        "status": "READY",
        "createdAt": chosen.created_at,
        "updatedAt": chosen.updated_at,
        "blockedInputMessaging": config["blockedInputMessaging"],
        "blockedOutputsMessaging": config["blockedOutputsMessaging"],
    }
    if chosen.description is not None:
        reply["description"] = chosen.description
    for key, (out_name, members) in _RENAMED.items():
        if key in config:
            reply[out_name] = {members.get(k, k): v for k, v in config[key].items()}
    return reply


def summary(stored: Stored, version: str) -> dict:
    chosen = stored.version(version)
    out = {"id": stored.id, "arn": stored.arn, "status": "READY", "name": chosen.config["name"], "version": version,
           "createdAt": chosen.created_at, "updatedAt": chosen.updated_at}
    if chosen.description is not None:
        out["description"] = chosen.description
    return out
