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

from .protocol.errors import unsupported_model, validation

_ARN = re.compile(r"arn:aws(?:-[^:]+)?:bedrock:[^:]*:[^:]*:([a-z-]+)/(.+)")
# System inference-profile prefixes (geo or global) in front of a base model id.
_PROFILE_PREFIX = re.compile(r"(?:us|us-gov|eu|apac|jp|au|ca|global)\.(?=[a-z0-9-]+\.)")


ENGINES = ("openai", "vllm", "sglang", "llama.cpp", "llama-cpp-python", "ollama", "tgi", "ray-serve")


class RemoteEngine(BaseModel):
    """An OpenAI-compatible inference engine that answers for a local model name (engine/remote.py)."""

    model_config = ConfigDict(extra="forbid")
    base_url: str  # up to and including /v1, e.g. http://127.0.0.1:8000/v1
    model: str  # the engine's own model name
    api_key_env: str | None = None  # environment variable holding the engine's API key (sent as a bearer token)
    timeout_s: float = Field(default=120.0, gt=0)
    max_concurrency: int = Field(default=64, ge=1)
    # Which engine it is: picks the request dialect where engines differ (structured output, top_k, token counts).
    engine: Literal[ENGINES] = "openai"  # type: ignore[valid-type]
    # A Hugging Face tokenizer folder or name whose chat template and vocabulary match the engine's model; used for
    # CountTokens (and usage the engine does not report) when the engine has no tokenize endpoint.
    tokenizer: str | None = None
    context_length: int | None = Field(default=None, ge=1)  # embedding engines: the input window, if known


class LocalModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["text", "embedding"]
    package: str | None = None
    path: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    openai: RemoteEngine | None = None  # an engine answers instead of local weights

    @model_validator(mode="after")
    def _one_source(self) -> "LocalModel":
        if (self.path is None) == (self.openai is None):
            raise ValueError("each local model needs exactly one of `path` (weights) or `openai` (an engine)")
        if self.package is not None and self.openai is not None:
            raise ValueError("`package` names weights; an `openai` engine entry has none")
        return self


class KnownModel(BaseModel):
    """One model id Bedrock serves, with AWS's documented limits (`models/bedrock-models.yaml`)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    family: str
    max_output_tokens: int | None = Field(ge=1)
    context_window: int = Field(ge=1)
    streaming: bool
    tools: list[Literal["auto", "any", "tool"]]
    input: list[Literal["image", "document", "video", "audio"]]
    profiles: list[Literal["us", "us-gov", "eu", "apac", "jp", "au", "ca", "global"]]
    source: str


class KnownModelsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: dict[str, str]
    models: list[KnownModel]

    @model_validator(mode="after")
    def _sourced(self) -> "KnownModelsFile":
        for model in self.models:
            if model.source not in self.sources:
                raise ValueError(f"model {model.id!r} cites unknown source {model.source!r}")
        ids = [m.id for m in self.models]
        if len(set(ids)) != len(ids):
            raise ValueError("model ids must be unique")
        return self


DEFAULT_MAX_OUTPUT_TOKENS = 4096  # for ids Bedrock does not know (user rules, resource ARNs) that name no limit


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    match: str | None = None
    id: str | None = None
    family: str | None = None  # None: the family Bedrock's catalogue gives the id
    local: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)  # None: Bedrock's limit for the id
    defaults: dict[str, float | int] = Field(default_factory=dict)
    known: KnownModel | None = Field(default=None, exclude=True)  # filled in by `Catalog.lookup`

    @model_validator(mode="after")
    def _one_selector(self) -> "Entry":
        if (self.match is None) == (self.id is None):
            raise ValueError("each model rule needs exactly one of `match` or `id`")
        return self


class CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Bedrock's own model list (a path relative to this file, or a file of the bundled `models/`). With it,
    # `match` globs only ever match ids in that list; an `id` rule still answers any id it names.
    bedrock_models: str | None = None
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


# libyaml's parser where PyYAML was built with it: about ten times faster than the pure-Python one, which spent a
# tenth of a second or more of every start on the bundled model list.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str) -> object:
    try:
        return yaml.load(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        return yaml.safe_load(text)  # a broken file: reported in the pure-Python parser's words, as before


def _read(path: Path, schema: type[BaseModel], what: str) -> BaseModel:
    try:
        return schema.model_validate(_parse(path.read_text()))
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"cannot read {what} {path}: {exc}") from None
    except ValidationError as exc:
        raise SystemExit(f"invalid {what} {path}:\n{exc}") from None


def load_known_models(path: Path | None = None) -> KnownModelsFile:
    """Bedrock's model list (the bundled `models/bedrock-models.yaml` by default)."""
    return _read(path or bundled_model_file("bedrock-models.yaml"), KnownModelsFile, "Bedrock model list")


class Catalog:
    def __init__(self, spec: CatalogFile, known: KnownModelsFile | None = None) -> None:
        self.spec = spec
        self.known: dict[str, KnownModel] | None = {m.id: m for m in known.models} if known else None
        self._resolved: dict[str, Entry] = {}

    @classmethod
    def load(cls, path: Path | None = None) -> "Catalog":
        path = path or default_catalog_path()
        spec = _read(path, CatalogFile, "model catalog")
        known = None
        if spec.bedrock_models is not None:
            beside = path.parent / spec.bedrock_models
            known = load_known_models(beside if beside.exists() else bundled_model_file(spec.bedrock_models))
        return cls(spec, known)

    def lookup(self, model_id: str) -> Entry:
        """The rule for a model id, completed with Bedrock's family and limits for that id, or the error Bedrock
        gives for an id it does not know."""
        cached = self._resolved.get(model_id)
        if cached is not None:
            return cached
        base = base_model_id(model_id)
        known = self.known.get(base) if self.known is not None else None
        found = next((e for e in self.spec.models if e.id is not None and e.id in (model_id, base)), None)
        if found is None and (known is not None or self.known is None or "/" in base):
            # Resource ARNs (`provisioned-model/...`) only match rules written for them (a glob with a `/`).
            found = next((e for e in self.spec.models if e.match is not None and fnmatch.fnmatchcase(base, e.match)
                          and ("/" in e.match or "/" not in base or self.known is None)), None)
        if found is None:
            raise validation("The provided model identifier is invalid.")
        family = found.family or (known.family if known else None)
        if family is None:
            raise validation(f"The model catalog rule for {base} names no family, and Bedrock has no model {base}.")
        limit = found.max_output_tokens or (known.max_output_tokens if known else None) or DEFAULT_MAX_OUTPUT_TOKENS
        entry = found.model_copy(update={"family": family, "max_output_tokens": limit, "known": known})
        if len(self._resolved) < 4096:  # ids are caller input: keep the memo bounded
            self._resolved[model_id] = entry
        return entry

    def local(self, entry: Entry) -> LocalModel | None:
        return self.spec.local_models.get(entry.local) if entry.local else None

    def require_local(self, entry: Entry) -> str:
        if entry.local is None:
            raise unsupported_model()
        return entry.local
