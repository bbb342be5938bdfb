"""Native prompt and message formats -> the chat messages the local model's own template renders.

Completion-style bodies (Llama, Mistral, DeepSeek, Claude 2) carry a prompt already formatted with the real
model's chat markup. We recognise that markup and re-render the conversation with the local model's template,
so the local model sees a conversation it understands; a prompt without markup is continued as raw text, as
the real model would. Chat-style bodies (OpenAI-like `messages`) are flattened the same way Converse's are.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..tools.markup import render_call, render_result
from .conversation import render_block

Chat = list[dict]


@dataclass
class Prompt:
    """What the local model reads: chat messages for its own chat template, or a raw prompt it continues."""

    messages: list[dict] = field(default_factory=list)  # {"role": system|user|assistant, "content": str}
    text: str | None = None


def converse_blocks_text(blocks: list[dict]) -> str:
    """Converse-style content blocks as one message text, exactly as Converse renders them."""
    return "\n".join(text for block in blocks if (text := render_block(block)))


def _append(chat: Chat, role: str, content: str) -> None:
    """Add a turn; consecutive turns of one role are merged (the chat template expects alternation)."""
    if chat and chat[-1]["role"] == role and role != "system":
        chat[-1]["content"] += "\n\n" + content
    else:
        chat.append({"role": role, "content": content})


def _finish(chat: Chat) -> Chat:
    """A trailing assistant turn is a prefill the model continues; an empty one just marks the reply."""
    if chat and chat[-1]["role"] == "assistant":
        prefill = chat[-1]["content"].rstrip()
        if prefill and prefill not in ("<think>",):
            chat[-1]["content"] = prefill
        else:
            chat.pop()
    return chat


def human_assistant_turns(prompt: str) -> Chat | None:
    """Claude's `\\n\\nHuman: ... \\n\\nAssistant:` prompt (text before the first turn is a system prompt).

    Returns the turns including a final (possibly empty) assistant turn, or None without any turn marker. Markers
    after other whitespace are accepted when that is the only reading that ends with an assistant turn (Bedrock
    answered `Human: ... Assistant:` prompts without the blank lines).
    """
    parts = re.split(r"(?:^|\n\n)(Human|Assistant):", prompt)
    if parts[-2:-1] != ["Assistant"]:
        lenient = re.split(r"(?:^|(?<=\s))(Human|Assistant):", prompt)
        if lenient[-2:-1] == ["Assistant"]:
            parts = lenient
    if len(parts) < 3:
        return None
    chat: Chat = []
    if parts[0].strip():
        chat.append({"role": "system", "content": parts[0].strip()})
    for marker, text in zip(parts[1::2], parts[2::2]):
        _append(chat, "user" if marker == "Human" else "assistant", text.strip())
    return chat


_LLAMA3 = re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>(.*?)(?:<\|eot_id\|>|(?=<\|start_header_id\|>)|\Z)", re.S)
_INST = re.compile(r"\[INST\](.*?)\[/INST\]", re.S)
_SYS = re.compile(r"<<SYS>>(.*?)<</SYS>>", re.S)
_DEEPSEEK = re.compile(r"<[|｜](User|Assistant)[|｜]>")
_DEEPSEEK_NOISE = re.compile(r"<[|｜](?:begin|end)[▁_ ]of[▁_ ]sentence[|｜]>")


def _llama3(prompt: str) -> Chat | None:
    turns = _LLAMA3.findall(prompt)
    if not turns:
        return None
    chat: Chat = []
    for role, text in turns:
        role = {"ipython": "user", "tool": "user"}.get(role, role)
        _append(chat, role if role in ("system", "user", "assistant") else "user", text.strip())
    return _finish(chat)


def _inst(prompt: str) -> Chat | None:
    """Llama 2 / Mistral `<s>[INST] <<SYS>>...<</SYS>> q [/INST] a </s>` prompts."""
    if not _INST.search(prompt):
        return None
    chat: Chat = []
    pos = 0
    for match in _INST.finditer(prompt):
        between = prompt[pos:match.start()].replace("</s>", "").replace("<s>", "").strip()
        if between and chat:
            _append(chat, "assistant", between)
        user = match.group(1)
        system = _SYS.search(user)
        if system:
            chat.append({"role": "system", "content": system.group(1).strip()})
            user = _SYS.sub("", user)
        _append(chat, "user", user.strip())
        pos = match.end()
    tail = prompt[pos:].replace("</s>", "").replace("<s>", "")
    chat.append({"role": "assistant", "content": tail.strip()})
    return _finish(chat)


def _marked_turns(parts: list[str]) -> Chat | None:
    """A prompt split by `re.split` on a capturing `(User|<assistant marker>)` group: the text before the first
    marker is the system prompt, then each marker opens a turn."""
    chat: Chat = []
    if parts[0].strip():
        chat.append({"role": "system", "content": parts[0].strip()})
    for marker, text in zip(parts[1::2], parts[2::2]):
        _append(chat, "user" if marker == "User" else "assistant", text.strip())
    return _finish(chat)


def _deepseek(prompt: str) -> Chat | None:
    parts = _DEEPSEEK.split(_DEEPSEEK_NOISE.sub("", prompt))
    return _marked_turns(parts) if len(parts) >= 3 else None


def _user_bot(prompt: str) -> Chat | None:
    """Titan's `User: ...\\nBot:` convention."""
    parts = re.split(r"(?:^|\n)(User|Bot):", prompt)
    return _marked_turns(parts) if len(parts) >= 3 and "Bot" in parts[1::2] else None


def chat_markup(prompt: str) -> Chat | None:
    """The conversation in a prompt written in a known chat markup, or None for plain text."""
    for parse in (_llama3, _inst, _deepseek):
        chat = parse(prompt)
        if chat:
            return chat
    turns = human_assistant_turns(prompt)
    return _finish(turns) if turns else None


def completion_prompt(prompt: str) -> Prompt:
    """Completion bodies (Llama, Mistral, DeepSeek): markup is a conversation; plain text is continued as written."""
    chat = chat_markup(prompt)
    return Prompt(messages=chat) if chat else Prompt(text=prompt)


def instruction(prompt: str) -> Chat:
    """Instruction-tuned text bodies (Titan, Cohere Command, Jurassic-2): a plain prompt is one user turn."""
    return _user_bot(prompt) or chat_markup(prompt) or [{"role": "user", "content": prompt}]


def _openai_content(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            parts.append(part.get("text", ""))
        elif part.get("type") in ("image_url", "image"):
            parts.append("[image]")
    return "\n".join(parts)


def _openai_call(function: dict) -> str:
    """An OpenAI-style call (arguments as a JSON string) in the form tool calls take in every prompt."""
    arguments = function.get("arguments", "{}")
    try:
        arguments = json.loads(arguments)
    except (TypeError, ValueError):
        pass  # not JSON: shown as sent
    return render_call(function.get("name", ""), arguments)


def openai_messages(messages: list[dict]) -> Chat:
    """OpenAI-style chat messages (gpt-oss, Jamba, Mistral chat) as chat-template turns."""
    chat: Chat = []
    for message in messages:
        role = message.get("role")
        text = _openai_content(message.get("content"))
        if role in ("system", "developer"):
            _append(chat, "system", text)
        elif role == "assistant":
            calls = [_openai_call(c.get("function") or {}) for c in message.get("tool_calls") or []]
            _append(chat, "assistant", "\n".join([text, *calls]).strip())
        elif role == "tool":
            _append(chat, "user", render_result(text))
        else:
            _append(chat, "user", text)
    return _finish(chat)
