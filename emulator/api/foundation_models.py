"""The model catalogue as the control plane shows it: FoundationModelSummary and system inference profiles.

The models are Bedrock's model list when the catalogue has one (`Catalog.known`, from `models/bedrock-models.yaml`),
else a short stand-in list of common ids. Names and providers are derived from the id (`anthropic.claude-3-haiku-
20240307-v1:0` -> "Claude 3 Haiku" by Anthropic): an approximation of AWS's branded names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from .. import families
from ..catalog import Catalog
from ..protocol.identity import ACCOUNT_ID

_PROVIDERS = {"anthropic": "Anthropic", "amazon": "Amazon", "meta": "Meta", "mistral": "Mistral AI",
              "cohere": "Cohere", "ai21": "AI21 Labs", "deepseek": "DeepSeek", "openai": "OpenAI",
              "stability": "Stability AI", "writer": "Writer", "qwen": "Qwen", "twelvelabs": "TwelveLabs",
              "luma": "Luma AI", "moonshot": "Moonshot AI", "minimax": "MiniMax", "google": "Google"}
# The regions each geographic profile routes to (AWS's inference-profile support page lists more for some models).
_PROFILE_REGIONS = {"us": ("us-east-1", "us-east-2", "us-west-2"), "us-gov": ("us-gov-west-1", "us-gov-east-1"),
                    "eu": ("eu-central-1", "eu-west-1", "eu-west-3"),
                    "apac": ("ap-northeast-1", "ap-southeast-1", "ap-southeast-2"), "jp": ("ap-northeast-1", "ap-northeast-3"),
                    "au": ("ap-southeast-2", "ap-southeast-4"), "ca": ("ca-central-1", "ca-west-1")}
_GEO_NAMES = {"us": "US", "us-gov": "US-GOV", "eu": "EU", "apac": "APAC", "jp": "JP", "au": "AU", "ca": "CA",
              "global": "GLOBAL"}
_LISTED_AT = datetime(2024, 8, 1, tzinfo=timezone.utc)  # a fixed date for profile timestamps


@dataclass(frozen=True)
class Model:
    id: str
    family: str
    streaming: bool
    inputs: tuple[str, ...]  # beyond text: image, document, ...
    profiles: tuple[str, ...]


# Until the catalogue carries Bedrock's own list: common ids the default catalogue answers.
_STAND_IN = [
    Model("anthropic.claude-3-haiku-20240307-v1:0", "anthropic", True, ("image",), ("us", "eu", "apac")),
    Model("anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic", True, ("image",), ("us", "eu", "apac")),
    Model("anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic", True, (), ("us",)),
    Model("anthropic.claude-3-7-sonnet-20250219-v1:0", "anthropic", True, ("image",), ("us", "eu", "apac")),
    Model("anthropic.claude-sonnet-4-20250514-v1:0", "anthropic", True, ("image",), ("us", "eu", "apac", "global")),
    Model("amazon.nova-micro-v1:0", "nova", True, (), ("us", "eu", "apac")),
    Model("amazon.nova-lite-v1:0", "nova", True, ("image",), ("us", "eu", "apac")),
    Model("amazon.nova-pro-v1:0", "nova", True, ("image",), ("us", "eu", "apac")),
    Model("amazon.titan-text-express-v1", "titan-text", True, (), ()),
    Model("amazon.titan-text-lite-v1", "titan-text", True, (), ()),
    Model("amazon.titan-embed-text-v2:0", "titan-embed-v2", False, (), ()),
    Model("meta.llama3-8b-instruct-v1:0", "llama", True, (), ()),
    Model("mistral.mistral-7b-instruct-v0:2", "mistral", True, (), ()),
    Model("cohere.command-r-plus-v1:0", "cohere-command-r", True, (), ()),
]


def models(catalog: Catalog) -> list[Model]:
    known = getattr(catalog, "known", None)  # Bedrock's model list, where the catalogue has one
    if not known:
        return list(_STAND_IN)
    return [Model(m.id, m.family, m.streaming, tuple(m.input), tuple(m.profiles)) for m in known.values()]


def provider(model_id: str) -> str:
    prefix = model_id.split(".", 1)[0]
    return _PROVIDERS.get(prefix, prefix.capitalize())


def model_name(model_id: str) -> str:
    """`anthropic.claude-3-5-sonnet-20240620-v1:0` -> `Claude 3.5 Sonnet` (derived, not AWS's branded name)."""
    rest = model_id.split(".", 1)[1].split(":", 1)[0]
    rest = re.sub(r"-v\d+$", "", re.sub(r"-\d{8}", "", rest))
    rest = re.sub(r"(\d)-(\d)(?=-|$)", r"\1.\2", rest)
    return " ".join(w.upper() if len(w) <= 2 and w.isalpha() else w.capitalize() for w in rest.split("-") if w)


def output_modality(model: Model) -> str:
    return families.output_modality(model.family)


def summary(model: Model, region: str) -> dict:
    inputs = ["TEXT"] + [m.upper() for m in model.inputs if m == "image"]
    if output_modality(model) == "IMAGE" and "IMAGE" not in inputs:
        inputs.append("IMAGE")
    inference = ["ON_DEMAND"] + (["INFERENCE_PROFILE"] if model.profiles else [])
    out = {
        "modelArn": f"arn:aws:bedrock:{region}::foundation-model/{model.id}",
        "modelId": model.id,
        "modelName": model_name(model.id),
        "providerName": provider(model.id),
        "inputModalities": inputs,
        "outputModalities": [output_modality(model)],
        "customizationsSupported": [],
        "inferenceTypesSupported": inference,
        "modelLifecycle": {"status": "ACTIVE"},
    }
    if output_modality(model) in ("TEXT", "SPEECH"):
        out["responseStreamingSupported"] = model.streaming
    return out


def list_models(catalog: Catalog, region: str, params: dict) -> list[dict]:
    wanted_provider = (params.get("byProvider") or "").lower()
    found = []
    for model in models(catalog):
        item = summary(model, region)
        if wanted_provider and wanted_provider not in (item["providerName"].lower(), model.id.split(".", 1)[0]):
            continue
        if params.get("byOutputModality") and params["byOutputModality"] not in item["outputModalities"]:
            continue
        if params.get("byInferenceType") and params["byInferenceType"] not in item["inferenceTypesSupported"]:
            continue
        if params.get("byCustomizationType"):
            continue  # the emulator has no customizable models
        found.append(item)
    return found


def find_model(catalog: Catalog, identifier: str, region: str) -> dict | None:
    model_id = identifier.rsplit("/", 1)[-1]
    return next((summary(m, region) for m in models(catalog) if m.id == model_id), None)


def profiles(catalog: Catalog, region: str) -> list[dict]:
    out = []
    for model in models(catalog):
        for geo in model.profiles:
            profile_id = f"{geo}.{model.id}"
            if geo == "global":
                arns = [f"arn:aws:bedrock:::foundation-model/{model.id}"]
            else:
                arns = [f"arn:aws:bedrock:{r}::foundation-model/{model.id}" for r in _PROFILE_REGIONS.get(geo, (region,))]
            name = f"{_GEO_NAMES.get(geo, geo.upper())} {model_name(model.id)}"
            out.append({
                "inferenceProfileName": name,
                "description": f"Routes requests to {model_name(model.id)} in {'any commercial region' if geo == 'global' else _GEO_NAMES.get(geo, geo) + ' regions'}.",
                "createdAt": _LISTED_AT,
                "updatedAt": _LISTED_AT,
                "inferenceProfileArn": f"arn:aws:bedrock:{region}:{ACCOUNT_ID}:inference-profile/{profile_id}",
                "models": [{"modelArn": arn} for arn in arns],
                "inferenceProfileId": profile_id,
                "status": "ACTIVE",
                "type": "SYSTEM_DEFINED",
            })
    return out
