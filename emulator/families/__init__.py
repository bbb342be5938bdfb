"""One adapter per model family: native body <-> the common generation request and result.

Adding a family: a module here with its `Family` subclass, one line in `_FAMILIES`, and the catalogue entries
(`models/bedrock-models.yaml`, or a `family:` rule in a catalogue) that name it.
"""

from __future__ import annotations

from ..catalog import Catalog, KnownModel
from ..protocol.errors import unsupported_model, validation
from .ai21 import Jamba, Jurassic2
from .amazon import Nova, TitanText
from .anthropic import Anthropic
from .base import Family, TextFamily
from .cohere import CohereCommand, CohereCommandR
from .deepseek import DeepSeek
from .embeddings import CohereEmbed, CohereEmbedV4, EmbeddingFamily, TitanEmbedV1, TitanEmbedV2
from .images import ImageFamily, NovaCanvas, StableDiffusionXL, StableImage, TitanImage
from .meta import Llama
from .mistral import MistralChat, MistralText
from .openai import OpenAIChat

_FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Anthropic(), TitanText(), Nova(), Llama(), MistralText(), MistralChat(), CohereCommand(), CohereCommandR(),
        Jurassic2(), Jamba(), DeepSeek(), OpenAIChat(),
        TitanEmbedV1(), TitanEmbedV2(), CohereEmbed(), CohereEmbedV4(),
        StableDiffusionXL(), StableImage(), TitanImage(), NovaCanvas(),
    )
}
# Bedrock families no adapter serves, with what they generate: their ids resolve, and InvokeModel / Converse
# answer that the family is not supported (Nova Sonic answers only the bidirectional stream, api/sonic/).
UNSERVED = {"nova-reel": "VIDEO", "nova-sonic": "SPEECH"}


def get(name: str) -> Family:
    try:
        return _FAMILIES[name]
    except KeyError:
        raise validation(f"The model family {name!r} named in the model catalog is not supported.") from None


def text_family(name: str) -> TextFamily:
    family = get(name)
    if not isinstance(family, TextFamily):
        raise unsupported_model()
    return family


def output_modality(name: str) -> str:
    """What a family's models generate, as ListFoundationModels reports it."""
    family = _FAMILIES.get(name)
    return family.output_modality if family is not None else UNSERVED.get(name, "TEXT")


def _claims(model: KnownModel) -> list[str]:
    """What a model of Bedrock's list claims that its family cannot do."""
    family = _FAMILIES.get(model.family)
    if family is None:
        return [] if model.family in UNSERVED else [f"model {model.id!r}: unknown family {model.family!r}"]
    problems = []
    if model.streaming and not family.streams:
        problems.append(f"model {model.id!r} streams, but family {family.name!r} does not")
    choices = family.tool_choices if isinstance(family, TextFamily) else ()
    if extra := [choice for choice in model.tools if choice not in choices]:
        problems.append(f"model {model.id!r} takes tool choices {extra}, but family {family.name!r} does not")
    if isinstance(family, TextFamily) and (extra := [kind for kind in model.input if kind not in family.media]):
        problems.append(f"model {model.id!r} reads {extra} in Converse, but family {family.name!r} does not")
    return problems


def check_catalog(catalog: Catalog) -> Catalog:
    """The catalogue, once every family it names exists and no model claims a capability its family lacks: a
    typo fails when the catalogue loads, not at the first request."""
    problems = [
        f"rule {rule.match or rule.id!r} names unknown family {rule.family!r}"
        for rule in catalog.spec.models
        if rule.family is not None and rule.family not in _FAMILIES and rule.family not in UNSERVED
    ]
    for model in (catalog.known or {}).values():
        problems += _claims(model)
    if problems:
        known = ", ".join(sorted([*_FAMILIES, *UNSERVED]))
        raise SystemExit("invalid model catalog:\n  " + "\n  ".join(problems) + f"\n(families: {known})")
    return catalog


__all__ = ["EmbeddingFamily", "Family", "ImageFamily", "TextFamily", "UNSERVED", "check_catalog", "get", "output_modality",
           "text_family"]
