"""How the local model sees tools: the `<tools>` list in the system prompt, and calls and results in the
conversation history (the Hermes / Qwen convention; see tools/turn.py)."""

from __future__ import annotations

import json

from .model import Tool, ToolPlan

CALL_START = "<tool_call>"
CALL_END = "</tool_call>"


def tools_prompt(tools: tuple[Tool, ...]) -> str:
    listed = "\n".join(
        json.dumps({"name": t.name, "description": t.description, "parameters": t.schema}, ensure_ascii=False)
        for t in tools
    )
    return (
        "You may call one of these tools to help with the user's request:\n"
        f"<tools>\n{listed}\n</tools>\n"
        f"To call a tool, answer with {CALL_START}\n"
        '{"name": <tool name>, "arguments": <arguments as a JSON object>}\n'
        f"{CALL_END}"
    )


def render_call(name: str, arguments: object) -> str:
    """A tool call in the conversation history, as the model is told to write one."""
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False, separators=(",", ":"))
    return f"{CALL_START}\n{body}\n{CALL_END}"


def render_result(content: str, error: bool = False) -> str:
    """A tool result in the conversation history (`error`: the tool reported a failure).

    Plain words rather than `<tool_response>` tags: a small model copies tags it sees into its answer."""
    return f"The tool failed: {content}" if error else f"The tool returned: {content}"


def with_tools(messages: list[dict], plan: ToolPlan) -> list[dict]:
    """The conversation with the tools (and any answer schema) described in its system message."""
    offered = plan.tools if plan.choice != "none" else ()
    parts = [tools_prompt(offered)] if offered else []
    if plan.text_schema is not None:
        parts.append("Answer with a JSON object that follows this JSON schema:\n" + json.dumps(plan.text_schema))
    if not parts:
        return messages
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": messages[0]["content"] + "\n\n" + "\n\n".join(parts)}, *messages[1:]]
    return [{"role": "system", "content": "\n\n".join(parts)}, *messages]
