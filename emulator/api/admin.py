"""The admin API under `/_emulator/` for tests: scripted rules, faults, rate limits, the invocation log.

    GET    /_emulator/rules                 {"rules": [...]}: run-time rules first, then file rules
    POST   /_emulator/rules                 a rule, or {"rules": [...]} -> {"rules": [added, with ids]}
    DELETE /_emulator/rules                 forget run-time rules (file rules stay)
    DELETE /_emulator/rules/{id}            remove one rule
    GET    /_emulator/faults                {"faults": [...]}
    POST   /_emulator/faults                a fault -> the fault with its id
    DELETE /_emulator/faults[/{id}]         clear all faults, or one
    GET    /_emulator/rate-limits           {"limits": [...]}
    PUT    /_emulator/rate-limits           {"limits": [...]}: replaces the limits and empties their windows
    DELETE /_emulator/rate-limits           no limits
    GET    /_emulator/invocations           {"invocations": [...], "firstSeq", "lastSeq"} oldest first; ?limit=N, ?after=SEQ,
                                            ?format=bedrock
    DELETE /_emulator/invocations           empty the log
    GET    /_emulator/settings              {"require_fixture_match": bool}
    PATCH  /_emulator/settings              change them
    POST   /_emulator/reset                 back to the start-up state (what the pytest plugin does between tests)

Bad input gets a 400 with `{"message": ...}` naming each problem; unknown ids a 404.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..protocol import bounds
from ..protocol.errors import BedrockError, validation
from ..protocol.reply import JsonReply
from ..testing import TESTKIT, TestKit
from ..testing.caps import MAX_ADMIN_BODY
from ..testing.faults import FaultError, parse_fault
from ..testing.ratelimits import RateLimitError, parse_limits
from ..testing.rules import RuleError, parse_rules
from .common import json_response


def _kit(request: web.Request) -> TestKit:
    return request.config_dict[TESTKIT]


async def _body(request: web.Request) -> object:
    """The JSON body, refused past MAX_ADMIN_BODY bytes (from Content-Length, before reading) or when unsafe."""
    if (request.content_length or 0) > MAX_ADMIN_BODY:
        raise validation(f"An admin request body is limited to {MAX_ADMIN_BODY} bytes.")
    raw = await request.read()  # a chunked body (no Content-Length) is bounded by the app's client_max_size
    if len(raw) > MAX_ADMIN_BODY:
        raise validation(f"An admin request body is limited to {MAX_ADMIN_BODY} bytes.")
    if not raw.strip():
        return None
    try:
        return await asyncio.to_thread(bounds.loads, raw)
    except bounds.UnsafeJson as exc:
        raise validation(f"The request body is not valid JSON: {exc}") from None


async def _parsed(parse, data: object):
    """Schema validation of a (bounded) admin body, off the event loop: thousands of rules take a while."""
    return await asyncio.to_thread(parse, data)


def _not_found(kind: str, item_id: str) -> BedrockError:
    return BedrockError("ResourceNotFoundException", f"No {kind} with id {item_id!r}.")


async def list_rules(request: web.Request) -> JsonReply:
    return json_response({"rules": _kit(request).rules.views()})


async def add_rules(request: web.Request) -> JsonReply:
    try:
        rules = await _parsed(parse_rules, await _body(request))
    except RuleError as exc:
        raise validation(f"Invalid rule:\n{exc}") from None
    added = _kit(request).rules.add(rules)
    return json_response({"rules": [r.view() for r in added]})


async def clear_rules(request: web.Request) -> JsonReply:
    _kit(request).rules.clear()
    return json_response({"rules": _kit(request).rules.views()})


async def remove_rule(request: web.Request) -> JsonReply:
    rule_id = request.match_info["id"]
    if not _kit(request).rules.remove(rule_id):
        raise _not_found("rule", rule_id)
    return json_response({"removed": rule_id})


async def list_faults(request: web.Request) -> JsonReply:
    return json_response({"faults": _kit(request).faults.views()})


async def add_fault(request: web.Request) -> JsonReply:
    try:
        fault = await _parsed(parse_fault, await _body(request))
    except FaultError as exc:
        raise validation(f"Invalid fault:\n{exc}") from None
    return json_response(_kit(request).faults.add(fault).view())


async def clear_faults(request: web.Request) -> JsonReply:
    _kit(request).faults.clear()
    return json_response({"faults": []})


async def remove_fault(request: web.Request) -> JsonReply:
    fault_id = request.match_info["id"]
    if not _kit(request).faults.remove(fault_id):
        raise _not_found("fault", fault_id)
    return json_response({"removed": fault_id})


async def get_limits(request: web.Request) -> JsonReply:
    return json_response({"limits": _kit(request).limits.views()})


async def put_limits(request: web.Request) -> JsonReply:
    try:
        limits = await _parsed(parse_limits, await _body(request))
    except RateLimitError as exc:
        raise validation(f"Invalid rate limits:\n{exc}") from None
    _kit(request).limits.configure(limits)
    return await get_limits(request)


async def clear_limits(request: web.Request) -> JsonReply:
    _kit(request).limits.configure([])
    return await get_limits(request)


async def list_invocations(request: web.Request) -> JsonReply:
    limit, after = request.query.get("limit", ""), request.query.get("after", "")
    for name, value in (("limit", limit), ("after", after)):
        if value and not (value.isascii() and value.isdigit() and len(value) <= 18):
            raise validation(f"`{name}` must be a non-negative integer.")
    bedrock = request.query.get("format") == "bedrock"
    log = _kit(request).log
    # A poller (the inspector page) asks for `?after=lastSeq` next time, and drops what it shows below firstSeq
    # (cleared or evicted entries). Up to the log's cap of bodies decoded and encoded: on a worker thread.
    chosen, first, last = log.select(int(limit or 0), int(after or 0)), log.first_seq, log.last_seq
    body = await asyncio.to_thread(lambda: bounds.dumps_bytes_yielding({
        "invocations": log.render(chosen, bedrock), "firstSeq": first, "lastSeq": last}))
    return web.Response(body=body, headers={"Content-Type": "application/json"})


async def clear_invocations(request: web.Request) -> JsonReply:
    _kit(request).log.clear()
    return json_response({"invocations": []})


def _settings(kit: TestKit) -> dict:
    return {"require_fixture_match": kit.require_fixture_match}


async def get_settings(request: web.Request) -> JsonReply:
    return json_response(_settings(_kit(request)))


async def patch_settings(request: web.Request) -> JsonReply:
    body = await _body(request)
    kit = _kit(request)
    if not isinstance(body, dict) or set(body) - set(_settings(kit)):
        raise validation(f"Settings are a JSON object with the keys: {', '.join(_settings(kit))}.")
    if "require_fixture_match" in body:
        if not isinstance(body["require_fixture_match"], bool):
            raise validation("`require_fixture_match` must be true or false.")
        kit.require_fixture_match = body["require_fixture_match"]
    return json_response(_settings(kit))


async def reset(request: web.Request) -> JsonReply:
    _kit(request).reset()
    return json_response({"reset": True})


def register(emulator: web.Application) -> None:
    """Add the admin routes to the `/_emulator` sub-app."""
    r = emulator.router
    r.add_get("/rules", list_rules)
    r.add_post("/rules", add_rules)
    r.add_delete("/rules", clear_rules)
    r.add_delete("/rules/{id}", remove_rule)
    r.add_get("/faults", list_faults)
    r.add_post("/faults", add_fault)
    r.add_delete("/faults", clear_faults)
    r.add_delete("/faults/{id}", remove_fault)
    r.add_get("/rate-limits", get_limits)
    r.add_put("/rate-limits", put_limits)
    r.add_delete("/rate-limits", clear_limits)
    r.add_get("/invocations", list_invocations)
    r.add_delete("/invocations", clear_invocations)
    r.add_get("/settings", get_settings)
    r.add_patch("/settings", patch_settings)
    r.add_post("/reset", reset)
