"""Bedrock's modeled exceptions and how they go on the wire.

Every error a client sees is one of these: an HTTP response with `x-amzn-ErrorType`, a JSON body with a
lower-case `message`, or (after a stream has started) an exception frame named by the lowerCamel member.
"""

from __future__ import annotations

from aiohttp import web

from .bounds import quoted
from .reply import JsonReply

MAX_MESSAGE = 16384  # characters of an error message (real ones are far shorter)

# name -> (HTTP status, default message). Statuses are the service model's `error.httpStatusCode`.
MODELED: dict[str, tuple[int, str]] = {
    "AccessDeniedException": (403, "You don't have access to the model with the specified model ID."),
    "ConflictException": (400, "The request conflicts with the current state of the resource."),
    "InternalServerException": (500, "The server encountered an internal error while processing the request."),
    "ModelErrorException": (424, "The model encountered an error while processing the request."),
    "ModelNotReadyException": (429, "The model is not ready to serve inference requests yet. Try again later."),
    "ModelStreamErrorException": (424, "The model encountered an error while streaming the response."),
    "ModelTimeoutException": (408, "Model has timed out in processing."),
    "ResourceNotFoundException": (404, "Could not resolve the foundation model from the provided model identifier."),
    "ServiceQuotaExceededException": (400, "Your request exceeds the service quota for your account."),
    "ServiceUnavailableException": (503, "The service is temporarily unable to handle the request. Try again later."),
    "ThrottlingException": (429, "Too many requests, please wait before trying again."),
    "ValidationException": (400, "The request is invalid."),
}

# Errors produced outside the service model (the AWS front end); clients parse them as generic errors.
UNMODELED: dict[str, int] = {
    "UnknownOperationException": 404,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
    "IncompleteSignatureException": 403,
    "MissingAuthenticationTokenException": 403,
}


class BedrockError(Exception):
    """An error Bedrock itself would send. `extra` holds modeled members beyond `message`."""

    def __init__(self, code: str, message: str | None = None, **extra: object) -> None:
        if code not in MODELED and code not in UNMODELED:
            raise ValueError(f"unknown error code {code}")
        self.code = code
        # Bounded: a message that quotes a user's value never grows with the request (see bounds.quoted).
        self.message = quoted(message, MAX_MESSAGE) if message is not None else MODELED.get(code, (0, code))[1]
        self.extra = extra
        super().__init__(f"{code}: {self.message}")

    @property
    def status(self) -> int:
        return MODELED[self.code][0] if self.code in MODELED else UNMODELED[self.code]

    @property
    def stream_member(self) -> str:
        """The member name inside ConverseStreamOutput / ResponseStream unions."""
        return self.code[0].lower() + self.code[1:]

    def body(self) -> dict:
        return {"message": self.message, **self.extra}

    def reply(self) -> JsonReply:
        return JsonReply(self.body(), self.status, {"x-amzn-ErrorType": self.code}, ensure_ascii=True)

    def response(self) -> web.Response:
        reply = self.reply()
        return web.Response(
            status=reply.status, body=reply.encoded(), headers={"Content-Type": "application/json", **reply.headers}
        )


def validation(message: str) -> BedrockError:
    return BedrockError("ValidationException", message)


def unsupported_model(kind: str = "text or chat") -> BedrockError:
    """Bedrock's answer when an operation gets a model of the wrong kind (an embedding model on Converse, ...)."""
    return validation(f"This action doesn't support the model that you provided. Try again with a supported {kind} model.")


def malformed_native(detail: str) -> BedrockError:
    """The wording Bedrock uses when a model's native InvokeModel body fails its JSON schema."""
    return validation(f"Malformed input request: {detail}, please reformat your input and try again.")
