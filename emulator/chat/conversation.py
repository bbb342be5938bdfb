"""Converse messages -> the chat messages a local model's template renders, with Bedrock's conversation rules.

A text-only model cannot see images, documents or video; each becomes a short textual stand-in so the model
still knows it was there (documented in the README).
"""

from __future__ import annotations

import base64
import json

from ..protocol.errors import validation
from ..tools.markup import render_call, render_result

_TEXT_DOCUMENTS = {"txt", "md", "csv", "html"}


def _stand_in(kind: str, block: dict) -> str:
    fmt = block.get("format", "unknown")
    source = block.get("source", {})
    if "bytes" in source:
        size = len(base64.b64decode(source["bytes"]))
        where = f"{size} bytes"
    elif "s3Location" in source:
        where = source["s3Location"].get("uri", "s3")
    else:
        where = "inline"
    return f"[{kind}: {fmt}, {where}]"


def _document(block: dict) -> str:
    name, fmt = block.get("name", "document"), block.get("format", "txt")
    source = block.get("source", {})
    if fmt in _TEXT_DOCUMENTS and "bytes" in source:
        text = base64.b64decode(source["bytes"]).decode("utf-8", errors="replace")
        return f"[document {name} ({fmt})]\n{text}\n[end of document {name}]"
    if "text" in source:
        return f"[document {name}]\n{source['text']}\n[end of document {name}]"
    return _stand_in(f"document {name}", block)


def _tool_result_content(items: list[dict]) -> str:
    parts = []
    for item in items:
        if "text" in item:
            parts.append(item["text"])
        elif "json" in item:
            parts.append(json.dumps(item["json"], ensure_ascii=False))
        elif "document" in item:
            parts.append(_document(item["document"]))
        elif "image" in item:
            parts.append(_stand_in("image", item["image"]))
        elif "video" in item:
            parts.append(_stand_in("video", item["video"]))
        elif "searchResult" in item:
            parts.append(_search_result(item["searchResult"]))
    return "\n".join(parts)


def render_block(block: dict) -> str | None:
    """The text a model sees for one content block (None: the block contributes nothing to the prompt)."""
    if "text" in block:
        return block["text"]
    if "image" in block:
        return _stand_in("image", block["image"])
    if "video" in block:
        return _stand_in("video", block["video"])
    if "audio" in block:
        return _stand_in("audio", block["audio"])
    if "document" in block:
        return _document(block["document"])
    if "toolUse" in block:
        use = block["toolUse"]
        return render_call(use["name"], use.get("input", {}))
    if "toolResult" in block:
        result = block["toolResult"]
        return render_result(_tool_result_content(result.get("content", [])), result.get("status") == "error")
    if "guardContent" in block:
        return block["guardContent"].get("text", {}).get("text")
    if "citationsContent" in block:
        return "".join(c.get("text", "") for c in block["citationsContent"].get("content", []))
    if "searchResult" in block:
        return _search_result(block["searchResult"])
    return None  # cachePoint, reasoningContent, toolAddition, toolRemoval: not part of the visible prompt


def _search_result(result: dict) -> str:
    text = "\n".join(c.get("text", "") for c in result.get("content") or [])
    title = result.get("title", "search result")
    return f"[search result {title} ({result.get('source', '')})]\n{text}\n[end of search result {title}]"


def system_text(system: list[dict] | None) -> str | None:
    texts = [text for block in system or [] if (text := render_block(block))]
    return "\n".join(texts) if texts else None


def conversation(params: dict) -> list[dict]:
    """Check Bedrock's conversation rules and flatten the messages into chat-template messages."""
    messages = params.get("messages") or []
    if not messages or messages[0]["role"] != "user":
        raise validation("A conversation must start with a user message. Try again with a conversation that starts with a user message.")
    chat: list[dict] = []
    system = system_text(params.get("system"))
    if system:
        chat.append({"role": "system", "content": system})
    previous = None
    for i, message in enumerate(messages):
        role = message["role"]
        if role == "system":  # mid-conversation instructions and tool additions/removals; not a turn
            text = "\n".join(t for block in message.get("content") or [] if (t := render_block(block)))
            if text:
                chat.append({"role": "system", "content": text})
            continue
        if role not in ("user", "assistant") or role == previous:
            raise validation(
                "A conversation must alternate between user and assistant roles. "
                "Make sure the conversation alternates between user and assistant roles and try again."
            )
        previous = role
        content = message.get("content") or []
        if not content:
            raise validation(
                f"The content field in the Message object at messages.{i} is empty. "
                "Add a ContentBlock object to the content field and try again."
            )
        parts = []
        for j, block in enumerate(content):
            if "text" in block and not block["text"].strip():
                raise validation(
                    f"The text field in the ContentBlock object at messages.{i}.content.{j} is blank. "
                    "Add text to the text field, and try again."
                )
            text = render_block(block)
            if text:
                parts.append(text)
        chat.append({"role": role, "content": "\n".join(parts)})
    return chat


EFFORTS = ("low", "medium", "high", "xhigh", "max")  # Converse outputConfig.effort and Claude output_config.effort
