"""Property: a forced tool call never returns input that breaks its schema, whatever the prompt and schema, and
the streamed input reassembles into the JSON the non-streamed call returns.

Schemas cover nested objects, arrays (with item bounds), enums, integers and numbers with ranges, booleans,
optional members, nullable members, `$ref`s and `anyOf`. Sampling at temperature 1 explores the model's
choices, and maxTokens is tight enough that the budget-aware finish is exercised too; every reply is checked
with `jsonschema`, plus "no extra members" (additionalProperties is closed in the
grammar unless the schema opens it).
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from conftest import HAIKU, user

SCHEMAS = {
    "flat": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0,
             "maximum": 130}, "member": {"type": "boolean"}}, "required": ["name", "age", "member"]},
    "enum_and_number": {"type": "object", "properties": {"unit": {"enum": ["celsius", "fahrenheit", "kelvin"]},
                        "value": {"type": "number", "minimum": -50, "maximum": 60}}, "required": ["unit", "value"]},
    "nested": {"type": "object", "properties": {"order": {"type": "object", "properties": {
        "id": {"type": "integer"}, "customer": {"type": "object", "properties": {"email": {"type": "string"},
                                                                                "vip": {"type": "boolean"}},
                                               "required": ["email", "vip"]}}, "required": ["id", "customer"]}},
               "required": ["order"]},
    "arrays": {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                                         "maxItems": 3},
                                                "scores": {"type": "array", "items": {"type": "integer", "minimum": 1,
                                                                                      "maximum": 5}}},
               "required": ["tags", "scores"]},
    "array_of_objects": {"type": "object", "properties": {"items": {"type": "array", "maxItems": 2, "items": {
        "type": "object", "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$"},
                                         "qty": {"type": "integer", "minimum": 1}}, "required": ["sku", "qty"]}}},
                         "required": ["items"]},
    "optional_and_nullable": {"type": "object", "properties": {"query": {"type": "string", "minLength": 1},
                              "limit": {"type": ["integer", "null"]}, "safe": {"type": "boolean"}},
                              "required": ["query"]},
    "refs_and_anyof": {"type": "object", "$defs": {"point": {"type": "object", "properties": {
        "x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"]}},
        "properties": {"start": {"$ref": "#/$defs/point"}, "end": {"anyOf": [{"$ref": "#/$defs/point"},
                                                                             {"type": "string", "enum": ["origin"]}]}},
        "required": ["start", "end"]},
    "pydantic_style": {"title": "Person", "type": "object", "additionalProperties": False, "properties": {
        "first_name": {"title": "First Name", "type": "string"}, "hobbies": {"title": "Hobbies", "type": "array",
                                                                               "items": {"type": "string"}}},
        "required": ["first_name", "hobbies"]},
}
PROMPTS = [
    "Fill in the details for Ada Lovelace, a 36 year old member; it is 25 degrees in Paris today.",
    "Order 42 for bob@example.com, who is a VIP, please.",
    "Say something random.",
]


def forced(name: str, schema: dict, prompt: str, **inference) -> dict:
    return dict(modelId=HAIKU, messages=[user(prompt)],
                toolConfig={"tools": [{"toolSpec": {"name": name, "description": f"Record a {name.replace('_', ' ')}.",
                                                    "inputSchema": {"json": schema}}}],
                            "toolChoice": {"tool": {"name": name}}},
                inferenceConfig={"maxTokens": 60, **inference})


def no_extra_members(value: object, schema: dict, defs: dict) -> None:
    """Every object member is one its schema names (schemas here never open additionalProperties)."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].split("/")[-1]]
    if "anyOf" in schema:
        matching = [s for s in schema["anyOf"] if jsonschema.Draft202012Validator({**s, "$defs": defs}).is_valid(value)]
        return no_extra_members(value, matching[0], defs)
    if isinstance(value, dict):
        assert set(value) <= set(schema.get("properties", {})), value
        for key, item in value.items():
            no_extra_members(item, schema["properties"][key], defs)
    elif isinstance(value, list):
        for item in value:
            no_extra_members(item, schema.get("items", {}), defs)


@pytest.mark.parametrize("name", SCHEMAS)
def test_forced_input_always_follows_the_schema(client, name):
    schema = SCHEMAS[name]
    for prompt in PROMPTS:
        reply = client.converse(**forced(name, schema, prompt, temperature=1.0))
        assert reply["stopReason"] == "tool_use", (prompt, reply)
        (block,) = reply["output"]["message"]["content"]
        value = block["toolUse"]["input"]
        jsonschema.validate(value, schema)
        no_extra_members(value, schema, schema.get("$defs", {}))


@pytest.mark.parametrize("name", ["nested", "arrays", "refs_and_anyof"])
def test_streamed_input_reassembles_into_the_non_streamed_json(client, name):
    kwargs = forced(name, SCHEMAS[name], PROMPTS[1], temperature=0)
    whole = client.converse(**kwargs)["output"]["message"]["content"][0]["toolUse"]["input"]
    fragments = [e["contentBlockDelta"]["delta"]["toolUse"]["input"]
                 for e in client.converse_stream(**kwargs)["stream"] if "contentBlockDelta" in e]
    assert json.loads("".join(fragments)) == whole
