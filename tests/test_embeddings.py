"""Embeddings from the local model at Bedrock's sizes and types: Titan G1 and V2, Cohere Embed v3 and v4.

The native 384-value vectors are mapped by a fixed projection: an isometry for the larger sizes (cosine kept
exactly), a scaled random orthogonal projection for 256 (cosine kept approximately). Similar texts score closer
than unrelated ones at every size.
"""

from __future__ import annotations

import numpy as np
import pytest
from native_calls import count_invoke_tokens, invoke, malformed, rejected

TITAN_V1 = "amazon.titan-embed-text-v1"
TITAN_V2 = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"
COHERE_V4 = "cohere.embed-v4:0"

CAT = "A cat sits on the mat."
KITTEN = "A small kitten is sitting on a rug."
REVENUE = "Quarterly revenue grew by five percent."


def cosine(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def titan(client, model: str, text: str, **options) -> tuple[dict, dict]:
    return invoke(client, model, {"inputText": text, **options})


def cohere(client, texts: list[str], model: str = COHERE, **options) -> tuple[dict, dict]:
    return invoke(client, model, {"texts": texts, "input_type": "search_document", **options})


def test_titan_g1_returns_1536_unnormalised_values_and_its_token_count(client):
    reply, headers = titan(client, TITAN_V1, CAT)
    assert set(reply) == {"embedding", "inputTextTokenCount"}
    assert len(reply["embedding"]) == 1536
    assert abs(np.linalg.norm(reply["embedding"]) - 1) > 0.01  # G1 vectors are not normalised
    assert reply["inputTextTokenCount"] == int(headers["x-amzn-bedrock-input-token-count"]) > 0
    assert headers["x-amzn-bedrock-output-token-count"] == "0"
    assert count_invoke_tokens(client, TITAN_V1, {"inputText": CAT}) == reply["inputTextTokenCount"]


def test_titan_g1_rejects_v2_options(client):
    message = rejected(lambda: titan(client, TITAN_V1, CAT, dimensions=256))
    assert message == malformed("#: extraneous key [dimensions] is not permitted")


@pytest.mark.parametrize("dimensions", [1024, 512, 256])
def test_titan_v2_sizes_are_unit_vectors_that_keep_similarity_order(client, dimensions):
    vectors = [titan(client, TITAN_V2, text, dimensions=dimensions)[0]["embedding"] for text in (CAT, KITTEN, REVENUE)]
    assert all(len(v) == dimensions for v in vectors)
    assert all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in vectors)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2


def test_titan_v2_default_reply_duplicates_the_float_vector_by_type(client):
    reply, _ = titan(client, TITAN_V2, CAT)
    assert set(reply) == {"embedding", "embeddingsByType", "inputTextTokenCount"}
    assert len(reply["embedding"]) == 1024
    assert reply["embeddingsByType"] == {"float": reply["embedding"]}


def test_titan_v2_binary_is_the_sign_of_each_value(client):
    reply, _ = titan(client, TITAN_V2, CAT, dimensions=512, embeddingTypes=["float", "binary"])
    floats, bits = reply["embeddingsByType"]["float"], reply["embeddingsByType"]["binary"]
    assert len(bits) == 512 and set(bits) <= {0, 1}
    assert bits == [1 if value > 0 else 0 for value in floats]
    only_binary, _ = titan(client, TITAN_V2, CAT, dimensions=512, embeddingTypes=["binary"])
    assert "embedding" not in only_binary and only_binary["embeddingsByType"] == {"binary": bits}


def test_titan_v2_unnormalised_keeps_direction(client):
    raw = titan(client, TITAN_V2, CAT, normalize=False)[0]["embedding"]
    unit = titan(client, TITAN_V2, CAT)[0]["embedding"]
    assert abs(np.linalg.norm(raw) - 1) > 0.01
    assert cosine(raw, unit) > 0.9999


def test_titan_v2_validation(client):
    assert rejected(lambda: titan(client, TITAN_V2, CAT, dimensions=384)) == malformed("#/dimensions: 384 is not a valid enum value")
    assert rejected(lambda: titan(client, TITAN_V2, CAT, embeddingTypes=["int8"])) == malformed(
        "#/embeddingTypes/0: int8 is not a valid enum value"
    )


def test_the_projection_is_fixed_and_preserves_cosine(client):
    # The same text twice gives the same vector; growing maps (1024, 1536) keep cosine exactly, 256 closely.
    first = cohere(client, [CAT, KITTEN, REVENUE])[0]["embeddings"]
    again = cohere(client, [CAT, KITTEN, REVENUE])[0]["embeddings"]
    assert first == again
    wide = [titan(client, TITAN_V1, text)[0]["embedding"] for text in (CAT, KITTEN, REVENUE)]
    narrow = [titan(client, TITAN_V2, text, dimensions=256)[0]["embedding"] for text in (CAT, KITTEN, REVENUE)]
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        exact = cosine(first[i], first[j])
        assert cosine(wide[i], wide[j]) == pytest.approx(exact, abs=1e-5)
        assert cosine(narrow[i], narrow[j]) == pytest.approx(exact, abs=0.12)


def test_cohere_plain_request_returns_float_lists(client):
    reply, headers = cohere(client, [CAT, KITTEN, REVENUE])
    assert reply["response_type"] == "embeddings_floats"
    assert reply["texts"] == [CAT, KITTEN, REVENUE]
    assert reply["id"] == headers["x-amzn-requestid"]
    vectors = reply["embeddings"]
    assert [len(v) for v in vectors] == [1024] * 3
    assert all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in vectors)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[1], vectors[2]) + 0.2


def test_cohere_embedding_types(client):
    reply, _ = cohere(client, [CAT, REVENUE], embedding_types=["float", "int8", "uint8", "binary", "ubinary"])
    assert reply["response_type"] == "embeddings_by_type"
    by_type = reply["embeddings"]
    floats = np.array(by_type["float"])
    int8, uint8 = np.array(by_type["int8"]), np.array(by_type["uint8"])
    assert int8.shape == uint8.shape == (2, 1024)
    assert int8.min() >= -128 and int8.max() <= 127 and np.abs(int8).max(axis=1).tolist() == [127, 127]
    assert (uint8 == int8 + 128).all()
    assert cosine(int8[0], floats[0]) > 0.999  # quantisation keeps the direction
    binary, ubinary = np.array(by_type["binary"]), np.array(by_type["ubinary"])
    assert binary.shape == ubinary.shape == (2, 128)  # 1024 sign bits, 8 to a byte
    assert (ubinary == binary + 128).all()
    assert (np.unpackbits(ubinary.astype(np.uint8), axis=1) == (floats > 0)).all()
    only_float, _ = cohere(client, [CAT], embedding_types=["float"])
    assert only_float["response_type"] == "embeddings_by_type" and set(only_float["embeddings"]) == {"float"}


def test_cohere_validation(client):
    assert rejected(lambda: invoke(client, COHERE, {"texts": [CAT]})) == malformed("#: required key [input_type] not found")
    assert rejected(lambda: cohere(client, [CAT], embedding_types=["int4"])) == malformed(
        "#/embedding_types/0: int4 is not a valid enum value"
    )
    assert rejected(lambda: cohere(client, [CAT] * 97)) == malformed("#/texts: expected maximum item count: 96, found: 97")
    assert rejected(lambda: cohere(client, [CAT], output_dimension=256)) == malformed(
        "#: extraneous key [output_dimension] is not permitted"
    )


def test_cohere_truncate(client):
    long_text = "word " * 700
    message = rejected(lambda: cohere(client, [long_text], truncate="NONE"))
    assert "set truncate to START or END" in message
    start = cohere(client, [long_text + "tail"], truncate="START")[0]["embeddings"][0]
    end = cohere(client, [long_text + "tail"], truncate="END")[0]["embeddings"][0]
    assert len(start) == len(end) == 1024 and start != end


def test_cohere_v4_sizes(client):
    reply, _ = cohere(client, [CAT], model=COHERE_V4)
    assert len(reply["embeddings"][0]) == 1536
    reply, _ = cohere(client, [CAT], model=COHERE_V4, output_dimension=512)
    assert len(reply["embeddings"][0]) == 512


def test_count_tokens_for_cohere_sums_the_texts(client):
    single = [count_invoke_tokens(client, COHERE, {"texts": [t], "input_type": "search_query"}) for t in (CAT, KITTEN)]
    both = count_invoke_tokens(client, COHERE, {"texts": [CAT, KITTEN], "input_type": "search_query"})
    assert both == sum(single) and all(n > 0 for n in single)


def test_the_embedding_tokenizer_loads_as_its_named_class_would():
    """Start-up loads the BERT tokenizer as the generic tokenizers-backed class (no import of transformers' model
    packages): the same pipeline, special tokens, window and ids as transformers' BertTokenizer gives."""
    import transformers

    from emulator.catalog import Catalog
    from emulator.engine import sources
    from emulator.engine.text_model import load_tokenizer

    spec = Catalog.load().spec.local_models["all-minilm-l6-v2"]
    folder = sources.resolve(spec.package, spec.path, sources.default_cache_dir())
    ours, named = load_tokenizer(folder), transformers.BertTokenizer.from_pretrained(folder)
    assert type(ours) is not type(named)  # the shortcut was taken
    assert ours.backend_tokenizer.to_str() == named.backend_tokenizer.to_str()
    assert ours.all_special_tokens == named.all_special_tokens
    assert (ours.model_max_length, ours.num_special_tokens_to_add()) == (named.model_max_length, named.num_special_tokens_to_add())
    texts = [CAT, "Ünïcödé naïve CAFÉ", "中文 日本語 😀", "  tabs\tand\nnewlines ", "[CLS] [MASK] inside", "word " * 700]
    for side in ("right", "left"):
        ours.truncation_side = named.truncation_side = side
        a = ours(texts, padding=True, truncation=True, max_length=512)
        b = named(texts, padding=True, truncation=True, max_length=512)
        assert (a["input_ids"], a["attention_mask"]) == (b["input_ids"], b["attention_mask"])
        assert all(set(row) == {0} for row in b["token_type_ids"])  # what the lean encoder uses when none are given
