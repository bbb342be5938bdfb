"""`GET /_emulator/health`: 503 while models load, 200 once the server can answer."""

from __future__ import annotations

from aiohttp import web

from ..service import SERVICE
from .common import json_response


async def health(request: web.Request) -> web.Response:
    pool = request.app[SERVICE].pool
    if pool.ready:
        return json_response({"status": "ok", "models": sorted([*pool.text, *pool.embedding])})
    status = "failed" if pool.error else "loading"
    response = json_response({"status": status, "error": pool.error})
    response.set_status(503)
    return response
