"""The operations registry, routes from the service model and the one input reader: no server, no model."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from emulator.api.registry import handlers
from emulator.protocol import control_plane, routing
from emulator.protocol.errors import BedrockError
from emulator.protocol.inputs import InputReader
from emulator.protocol.operations import GENERATING, OPERATIONS, STREAMING, STREAMING_INPUT
from emulator.protocol.shapes import service_model


def test_every_bedrock_line_has_one_handler_and_every_runtime_operation_a_route():
    bedrock = {name for name, line in OPERATIONS.items() if line.bedrock}
    assert set(handlers()) == bedrock
    for name in service_model().operation_names:
        http = service_model().operation_model(name).http
        path = http["requestUri"].replace("{", "").replace("}", "")
        assert routing.match(http["method"], path).operation == name


def test_scopes_follow_the_lines_and_the_service_model():
    assert GENERATING == ("Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream",
                          "InvokeModelWithBidirectionalStream", "OpenAIChatCompletions", "OpenAIResponses")
    assert STREAMING == ("ConverseStream", "InvokeModelWithResponseStream", "InvokeModelWithBidirectionalStream",
                         "OpenAIChatCompletions", "OpenAIResponses")
    assert STREAMING_INPUT == ("InvokeModelWithBidirectionalStream",)


def test_labels_are_decoded_per_segment_and_empty_ones_kept():
    route = routing.match("POST", "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model%2Fx.y/invoke?a=b")
    assert route.labels == {"modelId": "arn:aws:bedrock:us-east-1::foundation-model/x.y"}
    assert routing.match("POST", "/model//converse").labels == {"modelId": ""}
    assert routing.match("GET", "/model/x/converse") is None
    assert control_plane.match("GET", "/guardrails/g1").operation == "GetGuardrail"


def _reader(name: str) -> InputReader:
    return InputReader(service_model().operation_model(name))


def test_reader_takes_each_member_from_its_location():
    params = _reader("Converse").members({"modelId": "m"}, "", {}, b'{"messages": [], "modelId": "other", "x": 1}')
    assert params == {"messages": [], "modelId": "m"}  # the URI wins; unknown members are not the input's
    headers = CIMultiDict({"content-type": "application/json", "X-Amzn-Bedrock-Trace": "ENABLED"})
    params = _reader("InvokeModel").members({"modelId": "m"}, "", headers, b"not read: the payload")
    assert params == {"modelId": "m", "contentType": "application/json", "trace": "ENABLED"}
    query = "maxResults=5&sortOrder=Ascending&sortOrder=Descending"
    assert _reader("ListAsyncInvokes").members({}, query, {}, b"") == {"maxResults": 5, "sortOrder": "Ascending"}


def test_reader_errors_are_coral_lists():
    with pytest.raises(BedrockError) as err:
        _reader("ListAsyncInvokes").members({}, "maxResults=ten&sortOrder=Up", {}, b"")
    assert err.value.message == (
        "2 validation errors detected: Value 'ten' at 'maxResults' failed to satisfy constraint: Member must be an "
        "integer; Value 'Up' at 'sortOrder' failed to satisfy constraint: Member must satisfy enum value set: "
        "[Ascending, Descending]")
    with pytest.raises(BedrockError) as err:  # the streamed payload is the handler's: only the envelope is checked
        _reader("InvokeModelWithBidirectionalStream").members({"modelId": ""}, "", {}, b"")
    assert err.value.message.startswith("2 validation errors detected: Value '' at 'modelId' failed to satisfy "
                                        "constraint: Member must have length greater than or equal to 1")
