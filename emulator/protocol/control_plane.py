"""The `bedrock` control-plane service on the same server: routes and request parsing from botocore's model.

Every operation of the `bedrock` service model is routed by its `requestUri` (so an unsupported one is still
recognised and answered by name); none of these paths overlaps a Bedrock Runtime path (`/model/...`,
`/guardrail/...`, `/guardrail-checks/...`, `/async-invoke...`), which `tests/test_control_plane.py` checks.
Inputs are read from the URI labels, query string, headers and JSON body the model names, and validated
against the model as the runtime's are.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from urllib.parse import parse_qsl, unquote

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

from .errors import validation
from .routing import Route
from .shapes import check_json_body, coral_error, errors_for


@lru_cache(maxsize=1)
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("bedrock")


@lru_cache(maxsize=1)
def _table() -> list[tuple[str, tuple[str, ...], str]]:
    model = service_model()
    table = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        path = http["requestUri"].split("?", 1)[0]
        table.append((http["method"], tuple(s for s in path.strip("/").split("/") if s), name))
    # Literal segments before labels, so `/guardrails/x` never shadows a longer literal path.
    table.sort(key=lambda row: [part.startswith("{") for part in row[1]])
    return table


def match(method: str, raw_path: str) -> Route | None:
    path = raw_path.split("?", 1)[0]
    segments = [s for s in path.strip("/").split("/") if s]
    for want_method, pattern, op in _table():
        if want_method != method or len(pattern) != len(segments):
            continue
        labels: dict[str, str] = {}
        for part, seg in zip(pattern, segments):
            if part.startswith("{"):
                labels[part.strip("{}+")] = unquote(seg)
            elif part != seg:
                break
        else:
            return Route(op, labels)
    return None


def operation(name: str) -> OperationModel:
    return service_model().operation_model(name)


def _scalar(shape: Shape, raw: str, where: str) -> object:
    if shape.type_name in ("integer", "long"):
        try:
            return int(raw)
        except ValueError:
            raise validation(f"1 validation error detected: Value '{raw}' at '{where}' failed to satisfy "
                             "constraint: Member must be an integer") from None
    if shape.type_name == "boolean":
        return raw.lower() == "true"
    return raw


def read_input(name: str, labels: dict[str, str], query: str, headers, body: bytes) -> dict:
    """The operation's input members from where the service model puts them, validated."""
    shape = operation(name).input_shape
    pairs = parse_qsl(query, keep_blank_values=True)
    params: dict = {}
    has_body_members = False
    for member_name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", member_name)
        if location == "uri" and wire in labels:
            params[member_name] = labels[wire]
        elif location == "querystring":
            values = [v for k, v in pairs if k == wire]
            if values and member.type_name == "list":
                params[member_name] = [_scalar(member.member, v, member_name) for v in values]
            elif values:
                params[member_name] = _scalar(member, values[0], member_name)
        elif location == "header" and wire in headers:
            params[member_name] = _scalar(member, headers[wire], member_name)
        elif location is None:
            has_body_members = True
    if has_body_members:
        payload = check_json_body(body)
        params.update({k: v for k, v in payload.items() if k in shape.members and
                       shape.members[k].serialization.get("location") is None})
    errors = errors_for(shape, params)
    if errors:
        raise coral_error(errors)
    return params


def wire_json(value: object) -> object:
    """Reply values as rest-json sends them: timestamps in ISO 8601 (UTC)."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: wire_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wire_json(v) for v in value]
    return value


def status_code(name: str) -> int:
    return operation(name).http.get("responseCode", 200)
