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

import botocore.session
from botocore.model import OperationModel, ServiceModel

from .inputs import InputReader
from .routing import Route, Routes


@lru_cache(maxsize=1)
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("bedrock")


@lru_cache(maxsize=1)
def _routes() -> Routes:
    return Routes(service_model())


def match(method: str, raw_path: str) -> Route | None:
    return _routes().match(method, raw_path)


def operation(name: str) -> OperationModel:
    return service_model().operation_model(name)


@lru_cache(maxsize=None)
def reader(name: str) -> InputReader:
    """The operation's input members from where the service model puts them, validated."""
    return InputReader(operation(name))


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
