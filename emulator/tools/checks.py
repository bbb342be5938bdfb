"""Tool checks: Converse's `toolConfig` (which Nova's native body shares) and the conversation's tool blocks
checked the way Bedrock checks them and turned into a `ToolPlan` (run by `tools/turn.py`); the schema and
name checks every API's tools pass.

Messages quote Bedrock where its wording is known (Claude's own validation messages pass through Converse as-is);
the README lists the checks and which wording is ours.
"""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError as InvalidSchema

from ..protocol.errors import validation
from .model import Tool, ToolPlan, answered_calls

_NEEDS_CONFIG = "The toolConfig field must be defined when using toolUse and toolResult content blocks."

def _schema_path(i: int) -> str:
    return f"toolConfig.tools.{i}.toolSpec.inputSchema.json"


def checked_tool(i: int, name: str, description: str, schema: object, path: str) -> Tool:
    """A tool whose input schema passed Bedrock's checks (`i`: its place in the list; `path`: its schema's)."""
    if not isinstance(schema, dict):
        raise validation(f"The format of the value at {path} is invalid. Provide a json object for the field and try again.")
    try:
        Draft202012Validator.check_schema(schema)
    except InvalidSchema:
        raise validation(
            f"The model returned the following errors: tools.{i}.custom.input_schema: JSON schema is invalid. "
            "It must match JSON Schema draft 2020-12 (https://json-schema.org/draft/2020-12)."
        ) from None
    if schema.get("type", "object") != "object":
        raise validation(f"The model returned the following errors: tools.{i}.custom.input_schema.type: Input should be 'object'")
    return Tool(name, description, {"type": "object", **schema}, path)


def check_unique(names: list[str]) -> None:
    if len(set(names)) != len(names):
        raise validation("The model returned the following errors: tools: Tool names must be unique.")


def _text_schema(params: dict) -> dict | None:
    """`outputConfig.textFormat`: the JSON schema a text answer must follow (structured output without tools)."""
    text_format = (params.get("outputConfig") or {}).get("textFormat")
    if text_format is None:
        return None
    raw = text_format["structure"]["jsonSchema"]["schema"]
    try:
        schema = json.loads(raw)
    except ValueError:
        schema = None
    return text_schema_at(schema, "outputConfig.textFormat.structure.jsonSchema.schema", "as a string ")


def text_schema_at(schema: object, where: str, form: str = "") -> dict:
    """A JSON schema an answer must follow (Converse's textFormat, Claude's output_config.format), checked."""
    try:
        if not isinstance(schema, dict):
            raise ValueError
        Draft202012Validator.check_schema(schema)
    except (ValueError, InvalidSchema):
        raise validation(
            f"The value at {where} is not a valid JSON schema. Provide a JSON schema object {form}and try again."
        ) from None
    return schema


def check_tool_turns(messages: list[dict]) -> None:
    """Each toolResult answers a toolUse of the message just before; each toolUse is answered in the next one."""
    for i, message in enumerate(messages):
        content = message.get("content") or []
        role = message["role"]
        for j, block in enumerate(content):
            if "toolUse" in block and role != "assistant":
                raise validation(f"messages.{i}.content.{j}: toolUse blocks can only appear in assistant messages.")
            if "toolResult" in block and role != "user":
                raise validation(f"messages.{i}.content.{j}: toolResult blocks can only appear in user messages.")
            if "toolUse" in block and not isinstance(block["toolUse"].get("input"), dict):
                raise validation(
                    f"The model returned the following errors: messages.{i}.content.{j}.tool_use.input: "
                    "Input should be a valid dictionary"
                )
        if role != "user":
            continue
        previous = messages[i - 1].get("content") or [] if i else []
        asked = [b["toolUse"]["toolUseId"] for b in previous if "toolUse" in b]
        answered = set()
        for j, block in enumerate(content):
            if "toolResult" in block:
                use_id = block["toolResult"]["toolUseId"]
                if use_id not in asked:
                    raise validation(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {use_id}. "
                        "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                    )
                answered.add(use_id)
        missing = [use_id for use_id in asked if use_id not in answered]
        if missing:
            raise validation(
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the "
                "next message."
            )


def _available(tools: list[Tool], messages: list[dict]) -> list[Tool]:
    """The tools still offered after the conversation's `toolRemoval` / `toolAddition` blocks (in `system`
    messages), applied in order. Each must name a tool of toolConfig; removing every tool leaves none to call."""
    names = {t.name for t in tools}
    removed: set[str] = set()
    for i, message in enumerate(messages):
        for j, block in enumerate(message.get("content") or []):
            for kind in ("toolRemoval", "toolAddition"):
                if kind not in block:
                    continue
                name = block[kind]["tool"].get("name")
                if name not in names:
                    raise validation(
                        f"The tool {name} named in messages.{i}.content.{j}.{kind}.tool isn't in toolConfig.tools. "
                        "Name one of the tools you provided and try again."
                    )
                (removed.add if kind == "toolRemoval" else removed.discard)(name)
    return [t for t in tools if t.name not in removed]


def tool_plan(params: dict, tool_choices: tuple[str, ...] | None = None) -> ToolPlan | None:
    """The turn's tools and tool choice (None: a plain text turn), after Bedrock's checks (`tool_choices`: the
    choices the model's family takes, empty for no tool use; None: not checked).

    (Whether the emulator can constrain decoding to each schema is checked when the turn runs: tools/turn.py.)"""
    messages = params.get("messages") or []
    config = params.get("toolConfig")
    text_schema = _text_schema(params)
    uses_tools = any("toolUse" in b or "toolResult" in b for m in messages for b in m.get("content") or [])
    if config is None:
        if uses_tools:
            raise validation(_NEEDS_CONFIG)
        if text_schema is None:
            return None
        plan = ToolPlan(tools=(), choice="none", text_schema=text_schema)
    else:
        if tool_choices is not None and not tool_choices:
            raise validation("This model doesn't support tool use.")
        tools: list[Tool] = []
        for i, entry in enumerate(config["tools"]):
            if "systemTool" in entry:
                raise validation(
                    f"This model doesn't support the system tool {entry['systemTool']['name']} at toolConfig.tools.{i}. "
                    "Remove it and try again."
                )
            if "toolSpec" in entry:  # cachePoint entries mark a cache boundary only
                spec = entry["toolSpec"]
                tools.append(checked_tool(i, spec["name"], spec.get("description", ""), spec["inputSchema"]["json"],
                                          _schema_path(i)))
        if not tools:
            raise validation("The toolConfig.tools list must include at least one toolSpec. Add a tool and try again.")
        names = [t.name for t in tools]
        check_unique(names)
        choice = config.get("toolChoice") or {"auto": {}}
        kind = next(iter(choice))
        if tool_choices is not None and kind not in tool_choices:
            member = f"toolConfig.toolChoice.{kind}"
            raise validation(f"This model doesn't support the {member} field. Remove {member} and try again.")
        forced = choice["tool"]["name"] if kind == "tool" else None
        if forced is not None and forced not in names:
            raise validation(
                f"The tool {forced} named in toolConfig.toolChoice.tool.name isn't in toolConfig.tools. "
                "Name one of the tools you provided and try again."
            )
        offered = {t.name for t in _available(tools, messages)}
        tools = [t for t in tools if t.name in offered]
        if forced is not None and forced not in offered:
            raise validation(f"The tool {forced} named in toolConfig.toolChoice.tool.name was removed by a toolRemoval block.")
        if not tools:
            kind = "none"  # every tool was removed: the model can only answer in text
        turns = [m for m in messages if m.get("role") != "system"]
        check_tool_turns(turns)
        last = turns[-1] if turns else {}
        after_results = last.get("role") == "user" and any("toolResult" in b for b in last.get("content") or [])
        plan = ToolPlan(tuple(tools), kind, forced, after_results, text_schema, answered=answered_calls(messages))
    return plan
