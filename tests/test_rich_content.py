"""Images, documents, video, cache points and reasoning in Converse messages: Bedrock's rules (formats checked
against the bytes, sizes, counts, roles, document names) and what the text-only model sees instead."""

from __future__ import annotations

import struct

import pytest
from botocore.exceptions import ClientError
from conftest import HAIKU, user

NOVA = "amazon.nova-micro-v1:0"
MODEL_SAYS = "The model returned the following errors: "


def png(width: int = 1, height: int = 1) -> bytes:
    """The signature and IHDR chunk of a PNG: all an image check reads."""
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", width, height) + b"\x08\x06\x00\x00\x00"


def jpeg(width: int = 32, height: int = 16) -> bytes:
    return b"\xff\xd8\xff\xe0\x00\x04ab" + b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width) + b"\x03" + b"\x00" * 9


def gif(width: int = 2, height: int = 2) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00"


def webp(width: int = 3, height: int = 5) -> bytes:
    return (b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00"
            + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little"))


def image(data: bytes, fmt: str) -> dict:
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def document(name: str, text: bytes = b"Quarterly revenue grew by 12 percent.", fmt: str = "txt") -> dict:
    return {"document": {"format": fmt, "name": name, "source": {"bytes": text}}}


def ask(client, *blocks: dict, model: str = HAIKU, **kwargs) -> dict:
    return client.converse(modelId=model, messages=[{"role": "user", "content": list(blocks)}],
                           inferenceConfig={"maxTokens": 3}, **kwargs)


def rejected(call) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return caught.value.response["Error"]["Message"]


# --- images ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, fmt", [(png(), "png"), (jpeg(), "jpeg"), (gif(), "gif"), (webp(), "webp")])
def test_each_image_format_is_accepted_and_costs_input_tokens(client, data, fmt):
    plain = ask(client, {"text": "Describe it."})
    with_image = ask(client, {"text": "Describe it."}, image(data, fmt))
    assert with_image["usage"]["inputTokens"] > plain["usage"]["inputTokens"]  # the stand-in is in the prompt


def test_the_format_must_match_the_bytes(client):
    assert rejected(lambda: ask(client, {"text": "What is this?"}, image(jpeg(), "png"))) == (
        f"{MODEL_SAYS}messages.0.content.1.image.source.base64.data: The image was specified using the image/png "
        "media type, but the image appears to be a image/jpeg image")


def test_bytes_that_are_no_image_are_rejected(client):
    assert rejected(lambda: ask(client, {"text": "What is this?"}, image(b"plain text, not a picture", "gif"))) == (
        f"{MODEL_SAYS}messages.0.content.1.image.source.base64: The image was specified using the image/gif media "
        "type, but the bytes are not a valid image.")


def test_images_larger_than_8000_pixels_are_rejected(client):
    assert rejected(lambda: ask(client, {"text": "What is this?"}, image(png(8001, 10), "png"))) == (
        f"{MODEL_SAYS}messages.0.content.1.image.source.base64.data: At least one of the image dimensions exceed max "
        "allowed size: 8000 pixels")


def test_more_than_20_images_are_rejected(client):
    blocks = [{"text": "Compare them."}] + [image(png(), "png")] * 21
    assert rejected(lambda: ask(client, *blocks)) == f"{MODEL_SAYS}messages: too many images and documents: 21 + 0 > 20"


def test_images_belong_in_user_messages(client):
    messages = [user("Draw a dot."), {"role": "assistant", "content": [image(png(), "png")]}, user("Thanks!")]
    assert rejected(lambda: client.converse(modelId=HAIKU, messages=messages)) == (
        f"{MODEL_SAYS}messages.1.content.0: image content is only allowed in user messages.")


# --- documents ------------------------------------------------------------------------------------------------

def test_the_model_reads_a_text_document(client):
    reply = client.converse(modelId=HAIKU, messages=[{"role": "user", "content": [
        document("note", b"The code word is PINEAPPLE."), {"text": "What is the code word in the note?"}]}],
        inferenceConfig={"maxTokens": 20, "temperature": 0})
    assert "PINEAPPLE" in reply["output"]["message"]["content"][0]["text"]


def test_a_document_needs_a_text_block_beside_it(client):
    assert rejected(lambda: ask(client, document("report"))) == (
        "A text block must be included when using documents. Add a text block and retry your request.")


@pytest.mark.parametrize("name", ["report.pdf", "two  spaces", "slash/name", "r\u00e9sum\u00e9"])
def test_document_names_use_a_restricted_alphabet(client, name):
    assert rejected(lambda: ask(client, {"text": "Summarise."}, document(name))) == (
        "The document file name can only contain alphanumeric characters, whitespace characters, hyphens, "
        "parentheses, and square brackets. The name can't contain more than one consecutive whitespace character. "
        "Check that the file name conforms to these restrictions and retry your request.")


def test_allowed_document_names(client):
    reply = ask(client, {"text": "Summarise."}, document("Q3 report (final) [v2]-draft_1"))
    assert reply["stopReason"] == "max_tokens"


def test_document_names_are_unique(client):
    assert rejected(lambda: ask(client, {"text": "Compare."}, document("report"), document("report", b"other"))) == (
        "Messages can't contain duplicate document names.")


def test_at_most_five_documents(client):
    docs = [document(f"doc {i}") for i in range(6)]
    assert rejected(lambda: ask(client, {"text": "Summarise them."}, *docs)) == (
        "You can't include more than 5 documents in a request.")


# --- video ----------------------------------------------------------------------------------------------------

def test_video_is_for_models_that_understand_it(client):
    video = {"video": {"format": "mp4", "source": {"s3Location": {"uri": "s3://my-bucket/clip.mp4"}}}}
    assert rejected(lambda: ask(client, {"text": "What happens?"}, video)) == (
        "This model doesn't support the video content block that you provided. Try again with a model that supports video.")
    assert ask(client, {"text": "What happens?"}, video, model=NOVA)["usage"]["inputTokens"] > 0


# --- cache points and reasoning in history ------------------------------------------------------------------

def test_cache_points_are_accepted_and_reported_in_usage(client):
    kwargs = dict(modelId=HAIKU, system=[{"text": "You are terse."}, {"cachePoint": {"type": "default"}}],
                  messages=[{"role": "user", "content": [{"text": "Hi"}, {"cachePoint": {"type": "default", "ttl": "5m"}}]}],
                  inferenceConfig={"maxTokens": 2})
    usage = client.converse(**kwargs)["usage"]
    assert usage["cacheReadInputTokens"] == 0 and usage["cacheWriteInputTokens"] == 0
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    metadata = [e["metadata"] for e in client.converse_stream(**kwargs)["stream"] if "metadata" in e][0]
    assert metadata["usage"]["cacheReadInputTokens"] == 0 and metadata["usage"]["cacheWriteInputTokens"] == 0


def test_usage_has_no_cache_fields_without_a_cache_point(client):
    assert set(ask(client, {"text": "Hi"})["usage"]) == {"inputTokens", "outputTokens", "totalTokens"}


def test_reasoning_in_history_is_accepted_and_not_part_of_the_prompt(client):
    """Like Claude, earlier turns' reasoning is dropped from the context: it costs no input tokens."""
    def conversation(*answer: dict) -> list[dict]:
        return [user("What is 2 + 2?"), {"role": "assistant", "content": [*answer, {"text": "4"}]}, user("And 3 + 3?")]

    reasoning = {"reasoningContent": {"reasoningText": {"text": "Add the numbers.", "signature": "sig=="}}}
    with_reasoning = client.converse(modelId=HAIKU, messages=conversation(reasoning), inferenceConfig={"maxTokens": 1})
    without = client.converse(modelId=HAIKU, messages=conversation(), inferenceConfig={"maxTokens": 1})
    assert with_reasoning["usage"]["inputTokens"] == without["usage"]["inputTokens"]
