"""``GET /v1/models`` and ``GET /v1/models/{id}`` in OpenAI list format."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from app.errors import ModelNotFound

bp = Blueprint("models", url_prefix="/v1")


def _model(model_id: str, owner: str) -> dict:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owner}


def _visible(request: Request) -> list[tuple[str, str]]:
    """The (id, owner) pairs the principal may use: its providers, and its ``allowed_models`` if any."""
    principal = request.ctx.principal
    ids = request.app.ctx.service.catalog.model_ids(principal.allows)
    return ids if principal.models is None else [(i, owner) for i, owner in ids if i in principal.models]


@bp.get("/models")
async def list_models(request: Request):
    ids = _visible(request)
    request.ctx.record.status = 200
    return json({"object": "list", "data": [_model(i, owner) for i, owner in ids]})


@bp.get("/models/<model_id:path>")
async def get_model(request: Request, model_id: str):
    for known, owner in _visible(request):
        if known == model_id:
            request.ctx.record.status = 200
            return json(_model(known, owner))
    raise ModelNotFound(f"The model '{model_id}' does not exist or is not served by this gateway.", param="model")
