"""The model catalog: Bedrock model ids (exact, patterns, profiles, ARNs) mapped to local models and families.

A model id is only ever matched against the catalog's rules; it never becomes part of a filesystem path.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .protocol.errors import BedrockError, validation

_ARN = re.compile(r"arn:aws(?:-[^:]+)?:bedrock:[^:]*:[^:]*:([a-z-]+)/(.+)")
# System inference-profile prefixes (geo or global) in front of a base model id.
_PROFILE_PREFIX = re.compile(r"(?:us|us-gov|eu|apac|jp|au|ca|global)\.(?=[a-z0-9-]+\.)")


class LocalModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["text", "embedding"]
    package: str | None = None
    path: str
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    match: str | None = None
    id: str | None = None
    family: str
    local: str | None = None
    max_output_tokens: int = Field(default=4096, ge=1)
    defaults: dict[str, float | int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_selector(self) -> "Entry":
        if (self.match is None) == (self.id is None):
            raise ValueError("each model rule needs exactly one of `match` or `id`")
        return self


class CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    local_models: dict[str, LocalModel] = Field(default_factory=dict)
    models: list[Entry]

    @model_validator(mode="after")
    def _locals_exist(self) -> "CatalogFile":
        for entry in self.models:
            if entry.local is not None and entry.local not in self.local_models:
                raise ValueError(f"rule {entry.match or entry.id!r} names unknown local model {entry.local!r}")
        return self


def bundled_model_file(name: str) -> Path:
    """A file of `models/` in the source tree, or the copy a wheel install puts under `<prefix>/share`."""
    in_tree = Path(__file__).resolve().parent.parent / "models" / name
    if in_tree.exists():
        return in_tree
    return Path(sys.prefix) / "share" / "bedrock-emulator" / "models" / name


def default_catalog_path() -> Path:
    return bundled_model_file("catalog.yaml")


def base_model_id(model_id: str) -> str:
    """Strip ARNs and cross-region prefixes: every form of one model resolves to the same catalog rule."""
    arn = _ARN.fullmatch(model_id)
    if arn:
        kind, rest = arn.groups()
        if kind not in ("foundation-model", "inference-profile"):
            return f"{kind}/{rest}"
        model_id = rest
    return _PROFILE_PREFIX.sub("", model_id, count=1) if _PROFILE_PREFIX.match(model_id) else model_id


class Catalog:
    def __init__(self, spec: CatalogFile, source: Path | None = None) -> None:
        self.spec = spec
        self.source = source

    @classmethod
    def load(cls, path: Path | None = None) -> "Catalog":
        path = path or default_catalog_path()
        try:
            raw = yaml.safe_load(path.read_text())
            return cls(CatalogFile.model_validate(raw), path)
        except (OSError, yaml.YAMLError) as exc:
            raise SystemExit(f"cannot read model catalog {path}: {exc}") from None
        except ValidationError as exc:
            raise SystemExit(f"invalid model catalog {path}:\n{exc}") from None

    def lookup(self, model_id: str) -> Entry:
        """The rule for a model id, or the error Bedrock gives for an id it does not know."""
        base = base_model_id(model_id)
        for entry in self.spec.models:
            if entry.id is not None and entry.id in (model_id, base):
                return entry
        for entry in self.spec.models:
            if entry.match is not None and fnmatch.fnmatchcase(base, entry.match):
                return entry
        raise validation("The provided model identifier is invalid.")

    def local(self, entry: Entry) -> LocalModel | None:
        return self.spec.local_models.get(entry.local) if entry.local else None

    def require_local(self, entry: Entry) -> str:
        if entry.local is None:
            raise BedrockError(
                "ValidationException",
                "This action doesn't support the model that you provided. Try again with a supported text or chat model.",
            )
        return entry.local
