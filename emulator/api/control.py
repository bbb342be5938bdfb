"""The `bedrock` control plane: guardrails, foundation models and system inference profiles.

Clients reach it with `boto3.client("bedrock", endpoint_url=...)` or `AWS_ENDPOINT_URL_BEDROCK`. Every other
operation of the service answers a ValidationException naming the operation as not supported by the emulator.
"""

from __future__ import annotations

import json

from aiohttp import web

from ..guardrails.store import described, summary
from ..protocol import control_plane
from ..protocol.errors import BedrockError, validation
from ..protocol.identity import ACCOUNT_ID, request_region
from ..protocol.routing import Route
from ..service import SERVICE, Service
from . import foundation_models


def _reply(operation: str, payload: dict) -> web.Response:
    return web.Response(
        status=control_plane.status_code(operation),
        body=json.dumps(control_plane.wire_json(payload), ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json"},
    )


def _page(items: list[dict], params: dict, key: str) -> dict:
    """`maxResults` / `nextToken` paging (the token is the offset of the next item)."""
    token = params.get("nextToken")
    try:
        start = int(token) if token else 0
    except ValueError:
        raise validation("The provided pagination token is invalid.") from None
    size = params.get("maxResults") or 1000
    out: dict = {key: items[start:start + size]}
    if start + size < len(items):
        out["nextToken"] = str(start + size)
    return out


def _create_guardrail(service: Service, params: dict, region: str) -> dict:
    stored = service.created_guardrails.create(params, region, ACCOUNT_ID)
    return {"guardrailId": stored.id, "guardrailArn": stored.arn, "version": "DRAFT", "createdAt": stored.draft.created_at}


def _update_guardrail(service: Service, params: dict, region: str) -> dict:
    stored = service.created_guardrails.update(params)
    return {"guardrailId": stored.id, "guardrailArn": stored.arn, "version": "DRAFT", "updatedAt": stored.draft.updated_at}


def _get_guardrail(service: Service, params: dict, region: str) -> dict:
    return described(service.created_guardrails.get(params["guardrailIdentifier"]), params.get("guardrailVersion"))


def _list_guardrails(service: Service, params: dict, region: str) -> dict:
    store = service.created_guardrails
    if params.get("guardrailIdentifier"):  # every version of one guardrail
        stored = store.get(params["guardrailIdentifier"])
        items = [summary(stored, v) for v in ["DRAFT", *sorted(stored.versions, key=int)]]
    else:  # the working draft of each
        items = [summary(stored, "DRAFT") for stored in store.guardrails.values()]
    return _page(items, params, "guardrails")


def _create_guardrail_version(service: Service, params: dict, region: str) -> dict:
    stored, number = service.created_guardrails.create_version(params)
    return {"guardrailId": stored.id, "version": number}


def _delete_guardrail(service: Service, params: dict, region: str) -> dict:
    service.created_guardrails.delete(params["guardrailIdentifier"], params.get("guardrailVersion"))
    return {}


def _list_foundation_models(service: Service, params: dict, region: str) -> dict:
    return {"modelSummaries": foundation_models.list_models(service.catalog, region, params)}


def _get_foundation_model(service: Service, params: dict, region: str) -> dict:
    found = foundation_models.find_model(service.catalog, params["modelIdentifier"], region)
    if found is None:
        raise BedrockError("ValidationException", "The provided model identifier is invalid.")
    return {"modelDetails": found}


def _list_inference_profiles(service: Service, params: dict, region: str) -> dict:
    items = [] if params.get("typeEquals") == "APPLICATION" else foundation_models.profiles(service.catalog, region)
    return _page(items, params, "inferenceProfileSummaries")


def _get_inference_profile(service: Service, params: dict, region: str) -> dict:
    wanted = params["inferenceProfileIdentifier"]
    for profile in foundation_models.profiles(service.catalog, region):
        if wanted in (profile["inferenceProfileId"], profile["inferenceProfileArn"]) or (
                wanted.startswith("arn:") and wanted.rsplit("/", 1)[-1] == profile["inferenceProfileId"]):
            return profile
    raise BedrockError("ResourceNotFoundException", f"The inference profile {wanted} does not exist.")


OPERATIONS = {
    "CreateGuardrail": _create_guardrail,
    "UpdateGuardrail": _update_guardrail,
    "GetGuardrail": _get_guardrail,
    "ListGuardrails": _list_guardrails,
    "CreateGuardrailVersion": _create_guardrail_version,
    "DeleteGuardrail": _delete_guardrail,
    "ListFoundationModels": _list_foundation_models,
    "GetFoundationModel": _get_foundation_model,
    "ListInferenceProfiles": _list_inference_profiles,
    "GetInferenceProfile": _get_inference_profile,
}


async def handle(request: web.Request, route: Route) -> web.Response:
    handler = OPERATIONS.get(route.operation)
    if handler is None:
        raise validation(
            f"{route.operation} is not supported by the emulator. Its Bedrock control plane answers "
            f"{', '.join(sorted(OPERATIONS))}."
        )
    params = await control_plane.reader(route.operation).read(request, route.labels)
    return _reply(route.operation, handler(request.app[SERVICE], params, request_region(request)))
