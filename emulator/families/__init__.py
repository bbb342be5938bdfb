"""One adapter per model family: native body <-> the common generation request and result."""

from __future__ import annotations

from ..protocol.errors import validation
from .anthropic import Anthropic
from .base import Family, TextFamily

_FAMILIES: dict[str, Family] = {f.name: f for f in (Anthropic(),)}


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
        raise validation(
            "This action doesn't support the model that you provided. Try again with a supported text or chat model."
        )
    return family


__all__ = ["Family", "TextFamily", "get", "register", "text_family"]
