"""Converse's request checks beyond the service model's shapes: options a local model ignores, the project,
and `additionalModelResponseFieldPaths` (the conversation itself is read by chat/conversation.py)."""

from __future__ import annotations

from ..chat.conversation import EFFORTS
from ..protocol.errors import validation


def check_options(params: dict) -> None:
    """Request members of botocore 1.44 that change nothing a local model does, checked as Bedrock checks them."""
    effort = (params.get("outputConfig") or {}).get("effort")
    if effort is not None and effort not in EFFORTS:
        raise validation(
            f"The value {effort} at outputConfig.effort isn't supported. Supported values are low, medium, high, "
            "xhigh, and max."
        )
    check_project(params.get("projectIdentifier"), params.get("modelId", ""))


def check_project(project: str | None, model_id: str) -> None:
    """`projectIdentifier`: any project is accepted (projects are an account feature the emulator has no state
    for), except that application inference profiles only run in the default project, as on Bedrock."""
    if project not in (None, "default") and ":application-inference-profile/" in model_id:
        raise validation(
            "Application inference profiles don't support non-default projects. Omit projectIdentifier or "
            "specify default, and try again."
        )


def response_fields(native: dict, pointers: list[str] | None) -> dict | None:
    """`additionalModelResponseFieldPaths`: JSON Pointers selected from the family's native response."""
    if not pointers:
        return None
    selected: dict = {}
    for pointer in pointers:
        keys = [k.replace("~1", "/").replace("~0", "~") for k in pointer[1:].split("/")]
        node, found = native, True
        for key in keys:
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isascii() and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                found = False
                break
        if found:
            target = selected
            for key in keys[:-1]:
                target = target.setdefault(key, {})
            target[keys[-1]] = node
    return selected


def check_pointers(pointers: list[str] | None) -> None:
    """Malformed JSON Pointers are rejected before any generation, as Bedrock does."""
    for i, pointer in enumerate(pointers or []):
        if not pointer.startswith("/"):
            raise validation(
                f"The value at additionalModelResponseFieldPaths.{i} is not a valid JSON Pointer. "
                "Use a path such as /stop_sequence and try again."
            )
