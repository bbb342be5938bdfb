"""`GET /_emulator/health`: 503 while models load, 200 once the server can answer."""

from __future__ import annotations

from aiohttp import web

from ..service import SERVICE
from ..protocol.reply import JsonReply
from .common import json_response


async def health(request: web.Request) -> JsonReply:
    pool = request.app[SERVICE].pool
    if pool.ready:
        return json_response({"status": "ok", "models": sorted([*pool.text, *pool.embedding])})
    status = "failed" if pool.error else "loading"
    return json_response({"status": status, "error": pool.error}, status=503)
