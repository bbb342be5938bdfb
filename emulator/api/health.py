"""`GET /_emulator/health`: 503 while models load, 200 once the server can answer.

Models an inference engine answers are probed live (a few seconds at most): an engine that does not answer is
listed under `down` with the reason, and its models leave `models`."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..protocol.reply import JsonReply
from ..service import SERVICE
from .common import json_response


async def health(request: web.Request) -> JsonReply:
    service = request.config_dict[SERVICE]
    pool = service.pool
    if service.shutdown.stopping:
        return json_response({"status": "stopping"}, status=503)
    if pool.ready:
        running = {name: engine.active_sequences for name, engine in pool.text.items()}
        engines = pool.engines()
        problems = await asyncio.gather(*(engine.client.probe() for engine in engines.values()))
        down = {name: problem for name, problem in zip(engines, problems) if problem is not None}
        models = sorted(name for name in [*pool.text, *pool.embedding, *pool.remote_text] if name not in down)
        body: dict = {"status": "ok", "models": models, "queues": service.admission.view(running)}
        if engines:
            body["down"] = {name: down[name] for name in sorted(down)}
        return json_response(body)
    status = "failed" if pool.error else "loading"
    return json_response({"status": status, "error": pool.error}, status=503)
