"""`GET /openai/v1/models` and `GET /openai/v1/models/{model}`: the models these paths serve, from the catalogue."""

from __future__ import annotations

from aiohttp import web

from ...catalog import Catalog
from ...service import SERVICE
from ..common import json_response
from .common import LISTED_IDS, SERVED_FAMILIES, resolve
from .protocol import ModelCard, ModelList, dump

CREATED = 1754352000  # 2025-08-05, the gpt-oss release date on AWS's model card


def served_ids(catalog: Catalog) -> list[str]:
    """AWS's documented ids the catalogue maps to a served family, then exact catalogue ids of such families."""
    ids = []
    for model_id in LISTED_IDS:
        try:
            if catalog.lookup(model_id).family in SERVED_FAMILIES:
                ids.append(model_id)
        except Exception:  # a catalogue without a rule for it
            continue
    ids += [e.id for e in catalog.spec.models if e.id and e.family in SERVED_FAMILIES and e.id not in ids]
    return ids


def _card(model_id: str) -> ModelCard:
    return ModelCard(id=model_id, created=CREATED, owned_by=model_id.split(".", 1)[0] if "." in model_id else "system")


async def list_models(request: web.Request, body: dict) -> web.StreamResponse:
    ids = served_ids(request.app[SERVICE].catalog)
    return json_response(dump(ModelList(data=[_card(i) for i in ids])))


async def retrieve_model(request: web.Request, body: dict) -> web.StreamResponse:
    model_id = request.match_info["model"]
    resolve(request.app[SERVICE], model_id)  # OpenAI's error for a model not served here
    return json_response(dump(_card(model_id)))
