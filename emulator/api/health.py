"""`GET /_emulator/health`: 503 while models load, 200 once the server can answer."""

from __future__ import annotations

from aiohttp import web

from ..service import SERVICE
from ..protocol.reply import JsonReply
from .common import json_response


async def health(request: web.Request) -> JsonReply:
    service = request.app[SERVICE]
    pool = service.pool
    if service.shutdown.stopping:
        return json_response({"status": "stopping"}, status=503)
    if pool.ready:
        running = {name: engine.active_sequences for name, engine in pool.text.items()}
        return json_response({"status": "ok", "models": sorted([*pool.text, *pool.embedding]),
                              "queues": service.admission.view(running)})
    status = "failed" if pool.error else "loading"
    return json_response({"status": status, "error": pool.error}, status=503)
