"""The aiohttp application: one dispatcher for Bedrock operations (handlers from api/registry.py), the emulator's own
endpoints on the `/_emulator` sub-app, resources in `cleanup_ctx`."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from . import families, inspector
from .api import admin, async_invoke, control, health
from .api import openai as openai_api
from .api.registry import Handler, handlers
from .catalog import Catalog
from .engine.pool import ModelPool
from .engine.sources import default_cache_dir
from .guardrails import policies as guardrail_policies
from .lifecycle import DEFAULT_MAX_QUEUE
from .protocol import control_plane, routing
from .protocol.access import AccessConfig
from .protocol.access import install as install_access
from .protocol.bounds import MAX_BODY_BYTES, quoted
from .protocol.errors import BedrockError
from .protocol.http1 import read_body
from .protocol.middleware import add_request_id, errors_as_bedrock
from .protocol.operations import STREAMING_INPUT
from .recording import mode as recording
from .service import SERVICE, Service
from .testing import TestKitConfig, around_operation
from .testing import install as install_testkit

log = logging.getLogger("emulator")

HANDLERS = web.AppKey("handlers", dict[str, Handler])  # Bedrock Runtime operations' (api/registry.py)


@dataclass
class Settings:
    catalog_path: Path | None = None
    cache_dir: Path | None = None
    device: str = "cpu"
    guardrails_path: Path | None = None
    async_output_dir: Path | None = None  # where async invocations write output (default: <cache>/async-invoke)
    state_dir: Path | None = None  # async job records survive a restart here (default: async_output_dir, if given)
    max_queue: int = DEFAULT_MAX_QUEUE  # generations that may wait for a batch row, per model; beyond: 429
    testing: TestKitConfig = field(default_factory=TestKitConfig)  # fixtures, invocation log, rate limits
    access: AccessConfig = field(default_factory=AccessConfig)  # admin guard, --auth-keys
    recording: recording.RecordingConfig = field(default_factory=recording.RecordingConfig)  # --record/--replay


async def dispatch(request: web.Request) -> web.StreamResponse:
    route = routing.match(request.method, request.raw_path)
    if route is None and (control_route := control_plane.match(request.method, request.raw_path)) is not None:
        return await control.handle(request, control_route)  # the `bedrock` service (CreateGuardrail, ...)
    if route is None:
        raise BedrockError("UnknownOperationException",
                           f"No operation matches {request.method} {quoted(request.path, 200)}.")
    handler = recording.handler_for(request.app, route.operation, request.app[HANDLERS].get(route.operation))
    if handler is None:
        raise BedrockError("ValidationException", f"The emulator does not support {route.operation} yet.")
    shutdown = request.app[SERVICE].shutdown
    shutdown.refuse_new()
    with shutdown.work():
        if route.operation not in STREAMING_INPUT:  # a bidirectional stream's body lasts its session
            await read_body(request)  # size from Content-Length first, then a time limit; cached for the handler
        return await around_operation(request, route.operation, route.labels, handler)


async def _models(app: web.Application) -> AsyncIterator[None]:
    """The models load on a worker thread while the server already answers (health says `loading`); at cleanup,
    a load still running is cancelled and the inference engines' pooled connections close."""
    pool: ModelPool = app[SERVICE].pool

    async def load() -> None:
        await asyncio.to_thread(pool.load_all)
        # The models' millions of long-lived objects leave the collector's view: a full collection then scans
        # only what requests create, instead of stalling every thread (the loop included) for a large fraction
        # of a second whenever a big request allocates a lot.
        gc.freeze()

    loader = None if pool.ready else asyncio.create_task(load())
    yield
    if loader is not None and not loader.done():
        loader.cancel()
    await pool.close()


def _emulator_app() -> web.Application:
    """`/_emulator`: health, the admin API, the inspector, the recording mode. Its handlers read the emulator's
    state through `request.config_dict`; the parent's middlewares (errors, the admin guard) apply to it."""
    emulator = web.Application()
    emulator.router.add_get("/health", health.health)
    admin.register(emulator)
    inspector.register(emulator)
    recording.register(emulator)
    # Any other path or method under /_emulator is answered as before the sub-app: as no operation at all.
    emulator.router.add_route("*", "/{tail:.*}", dispatch)
    return emulator


def build_app(settings: Settings | None = None) -> web.Application:
    settings = settings or Settings()
    catalog = families.check_catalog(Catalog.load(settings.catalog_path))
    pool = ModelPool(catalog, settings.cache_dir or default_cache_dir(), settings.device)
    app = web.Application(middlewares=[errors_as_bedrock], client_max_size=MAX_BODY_BYTES)
    app[HANDLERS] = handlers()
    app[SERVICE] = Service(catalog, pool, guardrail_policies.load(settings.guardrails_path), settings.max_queue)
    install_access(app, settings.access)
    app.on_response_prepare.append(add_request_id)
    if settings.recording.mode in ("record", "replay"):
        pool.ready = True  # every call is forwarded or replayed: no model to load (and none to download)
    app.cleanup_ctx.append(_models)
    install_testkit(app, settings.testing)
    recording.install(app, settings.recording)
    async_invoke.install(app, settings.async_output_dir or pool.cache_dir / "async-invoke",
                         settings.state_dir or settings.async_output_dir)
    inspector.install(app)
    app.router.add_route("*", "/_emulator", dispatch)  # the prefix alone is no sub-app path: answered as before
    app.add_subapp("/_emulator", _emulator_app())
    openai_api.register(app)  # /openai/v1: OpenAI-compatible Chat Completions, Responses, models
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
