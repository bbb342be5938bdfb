"""Image families answer with placeholder PNGs: valid files of the requested size and count, fixed by the seed."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest
from native_calls import invoke, malformed, rejected

TITAN_IMAGE = "amazon.titan-image-generator-v2:0"
CANVAS = "amazon.nova-canvas-v1:0"
SDXL = "stability.stable-diffusion-xl-v1"
SD3 = "stability.sd3-5-large-v1:0"


def png_size(encoded: str) -> tuple[int, int]:
    """Parse a base64 PNG strictly (signature, chunk CRCs, IHDR, image data length); return (width, height)."""
    data = base64.b64decode(encoded)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2)  # 8-bit RGB
    assert len(zlib.decompress(chunks[b"IDAT"])) == height * (width * 3 + 1)
    assert b"IEND" in chunks
    return width, height


def titan_body(seed: int = 7, count: int = 2, width: int = 320, height: int = 384, text: str = "a red fox") -> dict:
    return {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": text},
            "imageGenerationConfig": {"numberOfImages": count, "width": width, "height": height, "seed": seed,
                                      "cfgScale": 8.0, "quality": "standard"}}


@pytest.mark.parametrize("model", [TITAN_IMAGE, CANVAS])
def test_titan_and_canvas_return_the_requested_count_and_size(client, model):
    reply, headers = invoke(client, model, titan_body())
    assert set(reply) == {"images", "error"} and reply["error"] is None
    assert [png_size(image) for image in reply["images"]] == [(320, 384), (320, 384)]
    assert reply["images"][0] != reply["images"][1]  # each image of a request differs
    assert int(headers["x-amzn-bedrock-invocation-latency"]) >= 0


def test_a_seed_fixes_the_images(client):
    first, _ = invoke(client, TITAN_IMAGE, titan_body(seed=7))
    again, _ = invoke(client, TITAN_IMAGE, titan_body(seed=7))
    other, _ = invoke(client, TITAN_IMAGE, titan_body(seed=8))
    assert first["images"] == again["images"]
    assert other["images"][0] != first["images"][0]


def test_titan_image_validation(client):
    assert rejected(lambda: invoke(client, TITAN_IMAGE, titan_body(count=6))) == malformed(
        "#/imageGenerationConfig/numberOfImages: 6 is not less or equal to 5"
    )
    assert "divisible by 16" in rejected(lambda: invoke(client, TITAN_IMAGE, titan_body(width=330)))
    assert rejected(lambda: invoke(client, TITAN_IMAGE, {"taskType": "TEXT_IMAGE"})) == malformed(
        "#: required key [textToImageParams] not found"
    )
    assert rejected(lambda: invoke(client, TITAN_IMAGE, {"taskType": "DRAW"})) == malformed(
        "#/taskType: DRAW is not a valid enum value"
    )


def test_sdxl_artifacts(client):
    body = {"text_prompts": [{"text": "a lighthouse", "weight": 1}], "seed": 42, "cfg_scale": 7, "steps": 30,
            "width": 1152, "height": 896, "style_preset": "photographic"}
    reply, _ = invoke(client, SDXL, body)
    assert reply["result"] == "success"
    (artifact,) = reply["artifacts"]
    assert artifact["seed"] == 42 and artifact["finishReason"] == "SUCCESS"
    assert png_size(artifact["base64"]) == (1152, 896)
    random_seed, _ = invoke(client, SDXL, {**body, "seed": 0})
    assert random_seed["artifacts"][0]["seed"] != 0  # 0 asks for a random seed, reported back


def test_sdxl_validation(client):
    body = {"text_prompts": [{"text": "a lighthouse"}], "width": 1000, "height": 1000}
    assert "SDXL v1.0 accepts only" in rejected(lambda: invoke(client, SDXL, body))
    assert rejected(lambda: invoke(client, SDXL, {"text_prompts": [{"text": "x"}], "cfg_scale": 40})) == malformed(
        "#/cfg_scale: 40 is not less or equal to 35"
    )


def test_stable_image_aspect_ratio(client):
    reply, _ = invoke(client, SD3, {"prompt": "a lighthouse", "aspect_ratio": "16:9", "seed": 3, "output_format": "png"})
    assert reply["seeds"] == [3] and reply["finish_reasons"] == [None]
    (image,) = reply["images"]
    width, height = png_size(image)
    assert width > height and abs(width / height - 16 / 9) < 0.05
    assert rejected(lambda: invoke(client, SD3, {"prompt": "x", "aspect_ratio": "7:3"})) == malformed(
        "#/aspect_ratio: 7:3 is not a valid enum value"
    )
