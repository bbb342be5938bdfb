"""The service-model validation compiled once per shape (protocol/shapes.py): same messages, model order, no walk."""

from __future__ import annotations

from emulator.protocol.shapes import errors_for, operation


def test_errors_follow_the_service_models_member_order_whatever_the_bodys_key_order():
    shape = operation("Converse").input_shape
    a = {"inferenceConfig": {"maxTokens": 0, "temperature": 2}, "messages": [{"role": "user"}], "modelId": "m"}
    b = {"modelId": "m", "messages": [{"role": "user"}], "inferenceConfig": {"temperature": 2, "maxTokens": 0}}
    assert errors_for(shape, a) == errors_for(shape, b) == [
        "Value null at 'messages.1.member.content' failed to satisfy constraint: Member must not be null",
        "Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or "
        "equal to 1",
        "Value '2' at 'inferenceConfig.temperature' failed to satisfy constraint: Member must have value less than or "
        "equal to 1",
    ]


def test_nulls_unions_lists_and_blobs():
    shape = operation("Converse").input_shape
    body = {"modelId": "m", "messages": [None, {"role": "user", "content": [{"text": "a", "image": {
        "format": "png", "source": {"bytes": "not base64!"}}}]}]}
    assert errors_for(shape, body) == [
        "Value null at 'messages.1.member' failed to satisfy constraint: Member must not be null",
        "Value '...' at 'messages.2.member.content.1.member.image.source.bytes' failed to satisfy constraint: Member "
        "must be base64-encoded binary data",
        "Value at 'messages.2.member.content.1.member' failed to satisfy constraint: Member must have exactly one "
        "member set",
    ]
    # A valid body has no error, and the second call reuses the compiled check.
    assert errors_for(shape, {"modelId": "m", "messages": [{"role": "user", "content": [{"text": "hi"}]}]}) == []


def test_wrong_types_and_required_members():
    shape = operation("Converse").input_shape
    assert errors_for(shape, {"messages": "x", "inferenceConfig": {"stopSequences": [1], "topP": "a"}}) == [
        "Value null at 'modelId' failed to satisfy constraint: Member must not be null",
        "Value 'x' at 'messages' failed to satisfy constraint: Member must be a list",
        "Value 'a' at 'inferenceConfig.topP' failed to satisfy constraint: Member must be a number",
        "Value '1' at 'inferenceConfig.stopSequences.1.member' failed to satisfy constraint: Member must be a string",
    ]
