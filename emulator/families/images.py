"""Image families: Stability SDXL, Stability SD3 / Stable Image, Titan Image Generator and Nova Canvas.

There is no local image model: every image is a PLACEHOLDER, a valid PNG of the requested size whose colour
gradient is a pure function of (seed, prompt, image index), so a fixed seed gives the same bytes every time.
Request bodies are validated and replies shaped as each family's real ones.
"""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ..protocol.errors import validation
from . import schema as s
from .base import Family


def png(width: int, height: int, rgb: np.ndarray) -> bytes:
    """A PNG (8-bit RGB, no interlace) of an `height x width x 3` uint8 array."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, width * 3)], axis=1)  # filter 0
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b"")


def placeholder(width: int, height: int, seed: int, prompt: str, index: int) -> bytes:
    """A deterministic placeholder PNG: a diagonal blend of two colours derived from seed, prompt and index."""
    digest = hashlib.sha256(f"{seed}\x00{prompt}\x00{index}".encode()).digest()
    start, end = np.frombuffer(digest[:3], np.uint8).astype(np.float32), np.frombuffer(digest[3:6], np.uint8).astype(np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = ((xs / max(width - 1, 1)) + (ys / max(height - 1, 1))) / 2
    rgb = start + (end - start) * t[..., None]
    return png(width, height, rgb.astype(np.uint8))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class ImageRequest:
    prompt: str
    width: int
    height: int
    count: int
    seed: int


class ImageFamily(Family):
    output_modality = "IMAGE"

    def request(self, body: dict) -> ImageRequest:
        raise NotImplementedError

    def reply(self, request: ImageRequest, images: list[bytes]) -> dict:
        raise NotImplementedError

    def render(self, body: dict) -> dict:
        """Validate-then-draw: the native reply for a body that passed `validate`."""
        request = self.request(body)
        images = [placeholder(request.width, request.height, request.seed, request.prompt, i) for i in range(request.count)]
        return self.reply(request, images)


_SDXL_SIZES = {(1024, 1024), (1152, 896), (1216, 832), (1344, 768), (1536, 640), (640, 1536), (768, 1344), (832, 1216),
               (896, 1152)}
_STYLES = ("3d-model", "analog-film", "anime", "cinematic", "comic-book", "digital-art", "enhance", "fantasy-art",
           "isometric", "line-art", "low-poly", "modeling-compound", "neon-punk", "origami", "photographic",
           "pixel-art", "tile-texture")
_SAMPLERS = ("DDIM", "DDPM", "K_DPMPP_2M", "K_DPMPP_2S_ANCESTRAL", "K_DPM_2", "K_DPM_2_ANCESTRAL", "K_EULER",
             "K_EULER_ANCESTRAL", "K_HEUN", "K_LMS")


def _random_seed(limit: int) -> int:
    return secrets.randbelow(limit) + 1


class StableDiffusionXL(ImageFamily):
    """`stability.stable-diffusion-xl-v1`: `text_prompts`, replies with `artifacts`."""

    name = "stability"

    def build_schema(self) -> s.Spec:
        prompt = s.Obj({"text": s.Str(), "weight": s.Num()}, required=("text",))
        return s.Obj(
            {
                "text_prompts": s.Arr(prompt, min_items=1),
                "height": s.Int(), "width": s.Int(),
                "cfg_scale": s.Num(0, 35),
                "clip_guidance_preset": s.Str(enum=("FAST_BLUE", "FAST_GREEN", "NONE", "SIMPLE", "SLOW", "SLOWER", "SLOWEST")),
                "sampler": s.Str(enum=_SAMPLERS),
                "samples": s.Int(1, 1),
                "seed": s.Int(0, 4294967295),
                "steps": s.Int(10, 150),
                "style_preset": s.Str(enum=_STYLES),
                "extras": s.Obj(closed=False),
                "init_image": s.Str(), "init_image_mode": s.Str(enum=("IMAGE_STRENGTH", "STEP_SCHEDULE")),
                "image_strength": s.Num(0, 1), "step_schedule_start": s.Num(0, 1), "step_schedule_end": s.Num(0, 1),
                "mask_source": s.Str(), "mask_image": s.Str(),
            },
            required=("text_prompts",),
        )

    def request(self, body: dict) -> ImageRequest:
        width, height = body.get("width", 1024), body.get("height", 1024)
        if (width, height) not in _SDXL_SIZES:
            sizes = ", ".join(f"{w}x{h}" for w, h in sorted(_SDXL_SIZES))
            raise validation(f"Invalid dimensions {width}x{height}: SDXL v1.0 accepts only {sizes}.")
        seed = body.get("seed", 0) or _random_seed(4294967295)  # 0 means a random seed
        prompt = " ".join(p["text"] for p in body["text_prompts"] if p.get("weight", 1) > 0)
        return ImageRequest(prompt, width, height, body.get("samples", 1), seed)

    def reply(self, request: ImageRequest, images: list[bytes]) -> dict:
        return {"result": "success",
                "artifacts": [{"seed": request.seed, "base64": b64(image), "finishReason": "SUCCESS"} for image in images]}


_ASPECTS = ("16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")


def aspect_size(aspect: str, pixels: int = 1024 * 1024) -> tuple[int, int]:
    """About one megapixel in the given aspect ratio, sides rounded to multiples of 64."""
    w, h = (int(part) for part in aspect.split(":"))
    width = math.sqrt(pixels * w / h)
    return int(round(width / 64) * 64), int(round(width * h / w / 64) * 64)


class StableImage(ImageFamily):
    """Stability SD3 / SD3.5 / Stable Image Core and Ultra: `prompt` + `aspect_ratio`, replies with `images`."""

    name = "stability-sd3"

    def build_schema(self) -> s.Spec:
        return s.Obj(
            {
                "prompt": s.Str(min_length=1),
                "negative_prompt": s.Str(),
                "mode": s.Str(enum=("text-to-image", "image-to-image")),
                "aspect_ratio": s.Str(enum=_ASPECTS),
                "output_format": s.Str(enum=("jpeg", "png", "webp")),
                "seed": s.Int(0, 4294967294),
                "image": s.Str(),
                "strength": s.Num(0, 1),
            },
            required=("prompt",),
        )

    def request(self, body: dict) -> ImageRequest:
        width, height = aspect_size(body.get("aspect_ratio", "1:1"))
        seed = body.get("seed", 0) or _random_seed(4294967294)
        return ImageRequest(body["prompt"], width, height, 1, seed)

    def reply(self, request: ImageRequest, images: list[bytes]) -> dict:
        # Images are PNG whatever `output_format` asks for (no encoder for JPEG/WebP is bundled).
        return {"seeds": [request.seed], "finish_reasons": [None], "images": [b64(image) for image in images]}


_TASKS = ("TEXT_IMAGE", "INPAINTING", "OUTPAINTING", "IMAGE_VARIATION", "COLOR_GUIDED_GENERATION",
          "BACKGROUND_REMOVAL")


class TitanImage(ImageFamily):
    """Titan Image Generator v1/v2 (and, with its own defaults, Nova Canvas): `taskType` + per-task params."""

    name = "titan-image"
    default_seed = 42

    def build_schema(self) -> s.Spec:
        text = s.Obj({"text": s.Str(min_length=1), "negativeText": s.Str(min_length=3), "conditionImage": s.Str(),
                      "controlMode": s.Str(enum=("CANNY_EDGE", "SEGMENTATION")), "controlStrength": s.Num(0, 1),
                      "style": s.Str()}, required=("text",))
        config = s.Obj({
            "numberOfImages": s.Int(1, 5),
            "height": s.Int(), "width": s.Int(),
            "cfgScale": s.Num(1.1, 10),
            "seed": s.Int(0, 2147483646),
            "quality": s.Str(enum=("standard", "premium")),
        })
        return s.Obj(
            {
                "taskType": s.Str(enum=_TASKS),
                "textToImageParams": text,
                "imageGenerationConfig": config,
                "inPaintingParams": s.Obj(closed=False),
                "outPaintingParams": s.Obj(closed=False),
                "imageVariationParams": s.Obj(closed=False),
                "colorGuidedGenerationParams": s.Obj(closed=False),
                "backgroundRemovalParams": s.Obj(closed=False),
            },
            required=("taskType",),
        )

    def request(self, body: dict) -> ImageRequest:
        task = body["taskType"]
        params_key = {"TEXT_IMAGE": "textToImageParams", "INPAINTING": "inPaintingParams",
                      "OUTPAINTING": "outPaintingParams", "IMAGE_VARIATION": "imageVariationParams",
                      "COLOR_GUIDED_GENERATION": "colorGuidedGenerationParams",
                      "BACKGROUND_REMOVAL": "backgroundRemovalParams"}[task]
        params = body.get(params_key)
        if not isinstance(params, dict):
            raise validation(f"Malformed input request: #: required key [{params_key}] not found, please reformat your input and try again.")
        config = body.get("imageGenerationConfig") or {}
        width, height = config.get("width", 1024), config.get("height", 1024)
        if not (320 <= width <= 4096 and 320 <= height <= 4096) or width % 16 or height % 16:
            raise validation("The image width and height must each be between 320 and 4096 pixels and divisible by 16.")
        if width * height > 4194304 or max(width / height, height / width) > 4:
            raise validation("The image must have at most 4,194,304 pixels and an aspect ratio between 1:4 and 4:1.")
        count = 1 if task == "BACKGROUND_REMOVAL" else config.get("numberOfImages", 1)
        prompt = str(params.get("text", "")) + str(params.get("referenceImage", params.get("image", "")))[:64]
        return ImageRequest(prompt, width, height, count, config.get("seed", self.default_seed))

    def reply(self, request: ImageRequest, images: list[bytes]) -> dict:
        return {"images": [b64(image) for image in images], "error": None}


class NovaCanvas(TitanImage):
    name = "nova-canvas"
    default_seed = 12
