"""Bedrock's rules for images, documents and video in a Converse request: formats (checked against the bytes),
sizes, counts, roles and document names; and the cache fields `cachePoint` blocks add to `usage`.

What passes reaches the text-only local model as a textual stand-in (`chat/conversation.py`).
"""

from __future__ import annotations

import base64
import re
import struct

from ..protocol.errors import BedrockError, validation

MAX_IMAGES = 20
MAX_IMAGE_BYTES = 3_932_160  # 3.75 MB
MAX_IMAGE_SIDE = 8000
MAX_DOCUMENTS = 5
MAX_DOCUMENT_BYTES = 4_718_592  # 4.5 MB
MAX_VIDEO_BYTES = 25 * 1024 * 1024  # inline video; larger videos go through S3
_DOCUMENT_NAME = re.compile(r"[A-Za-z0-9_\-()\[\] ]+")
_MODEL_SAYS = "The model returned the following errors: "


def _image_size(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) read from the image's own header, or None when the bytes are no known image."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return "png", width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return "gif", width, height
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            return "webp", 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return "webp", 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return "webp", width & 0x3FFF, height & 0x3FFF
        return None
    if data.startswith(b"\xff\xd8"):
        at = 2
        while at + 9 <= len(data):
            if data[at] != 0xFF:
                return None
            marker = data[at + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                at += 2
                continue
            length = struct.unpack(">H", data[at + 2 : at + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
                height, width = struct.unpack(">HH", data[at + 5 : at + 9])
                return "jpeg", width, height
            at += 2 + length
        return None
    return None


def _check_image(image: dict, where: str) -> None:
    source = image["source"]
    if "bytes" not in source:
        return  # an S3 object the emulator cannot read; it stays a stand-in
    data = base64.b64decode(source["bytes"])
    fmt = image["format"]
    if len(data) > MAX_IMAGE_BYTES:
        raise validation(f"{_MODEL_SAYS}{where}.image.source.base64: image exceeds 3.75 MB maximum: {len(data)} bytes > {MAX_IMAGE_BYTES} bytes")
    found = _image_size(data)
    if found is None:
        raise validation(f"{_MODEL_SAYS}{where}.image.source.base64: The image was specified using the image/{fmt} media type, "
                         "but the bytes are not a valid image.")
    actual, width, height = found
    if actual != fmt:
        raise validation(f"{_MODEL_SAYS}{where}.image.source.base64.data: The image was specified using the image/{fmt} "
                         f"media type, but the image appears to be a image/{actual} image")
    if max(width, height) > MAX_IMAGE_SIDE:
        raise validation(f"{_MODEL_SAYS}{where}.image.source.base64.data: At least one of the image dimensions exceed max "
                         f"allowed size: {MAX_IMAGE_SIDE} pixels")


def _check_document(document: dict, where: str, names: set[str]) -> None:
    name = document["name"]
    if not _DOCUMENT_NAME.fullmatch(name) or "  " in name:
        raise validation(
            "The document file name can only contain alphanumeric characters, whitespace characters, hyphens, "
            "parentheses, and square brackets. The name can't contain more than one consecutive whitespace character. "
            "Check that the file name conforms to these restrictions and retry your request."
        )
    if name in names:
        raise validation("Messages can't contain duplicate document names.")
    names.add(name)
    source = document["source"]
    if "bytes" in source and len(base64.b64decode(source["bytes"])) > MAX_DOCUMENT_BYTES:
        raise validation(f"The document at {where} exceeds the maximum document size of 4.5 MB. Reduce its size and try again.")


def _check_video(video: dict, where: str) -> None:
    source = video["source"]
    if "bytes" in source and len(base64.b64decode(source["bytes"])) > MAX_VIDEO_BYTES:
        raise validation(f"The video at {where} exceeds the maximum inline video size of 25 MB. Use an S3 location for larger videos.")


def _unsupported(kind: str) -> BedrockError:
    return validation(f"This model doesn't support the {kind} content block that you provided. "
                      f"Try again with a model that supports {kind}.")


def check_media(params: dict, media: frozenset[str]) -> None:
    """Bedrock's media and document rules for `messages` (nested tool results included); `media`: the content
    blocks beyond text that the model's family takes."""
    images = documents = videos = 0
    names: set[str] = set()
    for i, message in enumerate(params.get("messages") or []):
        role = message["role"]
        content = message.get("content") or []
        blocks = [(j, None, block) for j, block in enumerate(content)]
        for j, block in enumerate(content):
            if "toolResult" in block:
                blocks += [(j, k, item) for k, item in enumerate((block["toolResult"] or {}).get("content") or [])]
        for j, k, block in blocks:
            kind = "image" if "image" in block else "document" if "document" in block else "video" if "video" in block else None
            if kind is None:
                continue
            if kind not in media:
                raise _unsupported(kind)
            in_result = k is not None
            where = f"messages.{i}.content.{j}" + (f".toolResult.content.{k}" if in_result else "")
            if kind == "image":
                images += 1
                if role != "user":
                    raise validation(f"{_MODEL_SAYS}{where}: image content is only allowed in user messages.")
                _check_image(block["image"], where)
            elif kind == "document":
                documents += 1
                _check_document(block["document"], where, names)
                if not in_result and not any("text" in b and b["text"].strip() for b in content):
                    raise validation("A text block must be included when using documents. Add a text block and retry your request.")
            elif kind == "video":
                videos += 1
                _check_video(block["video"], where)
    if documents > MAX_DOCUMENTS:
        raise validation("You can't include more than 5 documents in a request.")
    if images > MAX_IMAGES:
        raise validation(f"{_MODEL_SAYS}messages: too many images and documents: {images} + {documents} > {MAX_IMAGES}")
    if videos > 1:
        raise validation("You can't include more than 1 video in a request.")


def _has_cache_point(params: dict) -> bool:
    blocks = list(params.get("system") or [])
    for message in params.get("messages") or []:
        blocks.extend(message.get("content") or [])
    blocks.extend((params.get("toolConfig") or {}).get("tools") or [])
    return any(isinstance(b, dict) and "cachePoint" in b for b in blocks)


def cache_usage(params: dict) -> dict:
    """Usage's cache fields: with a `cachePoint` in the request Bedrock reports them; nothing is cached locally."""
    if not _has_cache_point(params):
        return {}
    return {"cacheReadInputTokens": 0, "cacheWriteInputTokens": 0}
