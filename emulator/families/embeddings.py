"""Embedding families: Titan Embeddings G1 and V2, Cohere Embed v3 and v4.

Each reads its native body into an `EmbedRequest` and writes the native reply from the local model's vectors,
mapped to the family's sizes and types by `engine.embeddings.project` / `quantize`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.embeddings import project, quantize
from ..protocol.errors import validation
from . import schema as s
from .base import Family


@dataclass
class EmbedRequest:
    texts: list[str]
    dimensions: int
    normalize: bool
    types: tuple[str, ...]
    keep: str = "start"  # which end of an over-long text survives truncation
    truncate: bool = True  # False: an over-long text is an error
    by_type: bool = False  # the reply groups vectors by type (Cohere, when `embedding_types` is given)


@dataclass
class Embedded:
    """The local model's vectors for a request, and how many tokens each text had."""

    vectors: np.ndarray  # native, unnormalised: one row per text
    token_counts: list[int]


class EmbeddingFamily(Family):
    output_modality = "EMBEDDING"
    default_dimensions = 1024

    def dimensions(self, entry) -> int:
        return int(entry.defaults.get("dimensions", self.default_dimensions))

    def request(self, body: dict, entry) -> EmbedRequest:
        raise NotImplementedError

    def reply(self, request: EmbedRequest, embedded: Embedded, request_id: str) -> dict:
        raise NotImplementedError

    def check_lengths(self, request: EmbedRequest, token_counts: list[int], window: int) -> None:
        """Texts longer than the model's window are cut, unless the request asked for no truncation."""
        if request.truncate:
            return
        for i, count in enumerate(token_counts):
            if count > window:
                raise validation(
                    f"The text at texts.{i} has {count} tokens, more than the {window} this model reads. "
                    "Shorten it, or set truncate to START or END, and try again."
                )


# Titan Text Embeddings V2 reads at most 8,192 tokens or 50,000 characters (AWS documentation); Bedrock's body
# schema refuses a longer inputText, so it never reaches the tokenizer.
TITAN_V2_MAX_CHARACTERS = 50_000


class TitanEmbedV1(EmbeddingFamily):
    """`amazon.titan-embed-text-v1`: 1536 values, not normalised; the body takes `inputText` only."""

    name = "titan-embed-v1"
    default_dimensions = 1536

    def build_schema(self) -> s.Spec:
        return s.Obj({"inputText": s.Str()}, required=("inputText",))

    def request(self, body: dict, entry) -> EmbedRequest:
        return EmbedRequest([body["inputText"]], self.dimensions(entry), normalize=False, types=("float",))

    def reply(self, request: EmbedRequest, embedded: Embedded, request_id: str) -> dict:
        vector = project(embedded.vectors, request.dimensions, request.normalize)
        return {"embedding": quantize(vector, "float")[0], "inputTextTokenCount": embedded.token_counts[0]}


class TitanEmbedV2(EmbeddingFamily):
    """`amazon.titan-embed-text-v2:0`: `dimensions` 1024/512/256, `normalize`, `embeddingTypes` float/binary."""

    name = "titan-embed-v2"
    default_dimensions = 1024

    def build_schema(self) -> s.Spec:
        return s.Obj(
            {
                "inputText": s.Str(max_length=TITAN_V2_MAX_CHARACTERS),
                "dimensions": s.Int(enum=(1024, 512, 256)),
                "normalize": s.Bool(),
                "embeddingTypes": s.Arr(s.Str(enum=("float", "binary")), min_items=1),
            },
            required=("inputText",),
        )

    def request(self, body: dict, entry) -> EmbedRequest:
        types = tuple(dict.fromkeys(body.get("embeddingTypes") or ["float"]))
        return EmbedRequest([body["inputText"]], int(body.get("dimensions", self.dimensions(entry))),
                            normalize=body.get("normalize", True), types=types)

    def reply(self, request: EmbedRequest, embedded: Embedded, request_id: str) -> dict:
        vector = project(embedded.vectors, request.dimensions, request.normalize)
        by_type = {kind: quantize(vector, "float" if kind == "float" else "bits")[0] for kind in request.types}
        reply: dict = {}
        if "float" in by_type:  # the top-level vector is the float one, duplicated
            reply["embedding"] = by_type["float"]
        reply["embeddingsByType"] = by_type
        reply["inputTextTokenCount"] = embedded.token_counts[0]
        return reply


_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")
_COHERE_TYPES = ("float", "int8", "uint8", "binary", "ubinary")


class CohereEmbed(EmbeddingFamily):
    """`cohere.embed-english-v3` / `-multilingual-v3`: 1024 normalised values per text, up to 96 texts."""

    name = "cohere-embed"
    default_dimensions = 1024
    # Bedrock's documentation gives NONE as the default (Cohere's own API uses END).
    default_truncate = "NONE"

    def members(self) -> dict[str, s.Spec]:
        return {
            "texts": s.Arr(s.Str(), min_items=1, max_items=96),
            "input_type": s.Str(enum=_INPUT_TYPES),
            "truncate": s.Str(enum=("NONE", "START", "END")),
            "embedding_types": s.Arr(s.Str(enum=_COHERE_TYPES), min_items=1),
        }

    def build_schema(self) -> s.Spec:
        return s.Obj(self.members(), required=("texts", "input_type"))

    def request(self, body: dict, entry) -> EmbedRequest:
        truncate = body.get("truncate", self.default_truncate)
        types = tuple(dict.fromkeys(body.get("embedding_types") or ["float"]))
        return EmbedRequest(list(body["texts"]), int(body.get("output_dimension", self.dimensions(entry))),
                            normalize=True, types=types, keep="end" if truncate == "START" else "start",
                            truncate=truncate != "NONE", by_type="embedding_types" in body)

    def reply(self, request: EmbedRequest, embedded: Embedded, request_id: str) -> dict:
        vectors = project(embedded.vectors, request.dimensions, request.normalize)
        reply: dict = {"id": request_id, "texts": request.texts}
        if not request.by_type:
            reply["embeddings"] = quantize(vectors, "float")
            reply["response_type"] = "embeddings_floats"
        else:
            reply["embeddings"] = {kind: quantize(vectors, kind) for kind in request.types}
            reply["response_type"] = "embeddings_by_type"
        return reply


class CohereEmbedV4(CohereEmbed):
    """`cohere.embed-v4:0`: 1536 values by default, `output_dimension` 256/512/1024/1536."""

    name = "cohere-embed-v4"
    default_dimensions = 1536

    def members(self) -> dict[str, s.Spec]:
        return {**super().members(), "output_dimension": s.Int(enum=(256, 512, 1024, 1536)), "max_tokens": s.Int(1)}
