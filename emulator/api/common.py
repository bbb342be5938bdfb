"""Small helpers every API module uses to read requests and write JSON replies."""

from __future__ import annotations

import json
import time

from aiohttp import web

from ..protocol.errors import BedrockError
from ..protocol.shapes import check_json_body, validate_input


def json_response(payload: dict, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly `application/json`: aiohttp's json_response adds a charset that boto3 would echo in contentType.
    return web.Response(
        body=json.dumps(payload, ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


async def validated_json(request: web.Request, operation: str, labels: dict[str, str]) -> dict:
    """The JSON body merged with the URI labels, checked against the operation's input shape."""
    body = check_json_body(await request.read())
    params = {**body, **labels}
    validate_input(operation, params)
    return params


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


def model_failure(error: BaseException) -> BedrockError:
    """A generation failure as Bedrock reports it before a response has started."""
    if isinstance(error, BedrockError):
        return error
    return BedrockError("ModelErrorException", f"The model returned the following errors: {error}")


def stream_failure(error: BaseException) -> BedrockError:
    """A generation failure after a stream has started: model errors become `modelStreamErrorException` frames."""
    failure = model_failure(error)
    if failure.code != "ModelErrorException":
        return failure
    return BedrockError("ModelStreamErrorException", failure.message, originalStatusCode=424, originalMessage=failure.message)
