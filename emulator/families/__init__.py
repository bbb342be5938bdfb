"""One adapter per model family: native body <-> the common generation request and result."""

from __future__ import annotations

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


def register(family: Family) -> None:
    _FAMILIES[family.name] = family


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


__all__ = ["EmbeddingFamily", "Family", "ImageFamily", "TextFamily", "get", "register", "text_family"]
