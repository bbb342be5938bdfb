"""`@operation`: the handler of one Bedrock Runtime operation, bound to its line in `protocol/operations.py`.

The handler is called with the operation's input already read and validated (`protocol/inputs.py`), so its head
is `async def converse(request, params)`. `handlers()` imports every module of this package once and returns the
handlers by operation name; an operation line without a handler is an error at start-up.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from functools import cache

from aiohttp import web

from ..protocol.inputs import InputReader
from ..protocol.operations import OPERATIONS
from ..protocol.reply import Reply
from ..protocol.shapes import service_model

Handler = Callable[[web.Request, dict], Awaitable[Reply]]  # (request, URI labels): what `app.dispatch` runs

_HANDLERS: dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    """Declare `handler(request, params)` as the one answering operation `name`."""
    line = OPERATIONS[name]  # every handled operation has its line
    if not line.bedrock:
        raise ValueError(f"{name} is not a Bedrock Runtime operation")
    reader = InputReader(service_model().operation_model(name))

    def register(handler: Handler) -> Handler:
        if name in _HANDLERS:
            raise ValueError(f"{name} has two handlers")

        async def serve(request: web.Request, labels: dict) -> Reply:
            return await handler(request, await reader.read(request, labels))

        _HANDLERS[name] = serve
        return handler

    return register


@cache
def handlers() -> dict[str, Handler]:
    """Each Bedrock Runtime operation's handler (taking the request and its URI labels), by name."""
    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):  # a new operation's module needs no import line
        importlib.import_module(f"{__package__}.{module.name}")
    missing = [name for name, line in OPERATIONS.items() if line.bedrock and name not in _HANDLERS]
    if missing:
        raise RuntimeError(f"no @operation handler for {', '.join(missing)}")
    return dict(_HANDLERS)

