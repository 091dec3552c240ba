"""``/v1/batches``: create, list, retrieve and cancel batches (``app.batches.Batches``).

The batches themselves run in the workers (``workers.batch_pump``); these handlers only read and
write their records.
"""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from app.batches import LIST_LIMIT_MAX, parse_create
from app.inbound import parse_json_object
from app.routes.files import query_limit, store_errors

bp = Blueprint("batches", url_prefix="/v1")


@bp.post("/batches")
async def create_batch(request: Request):
    batch_request = parse_create(parse_json_object(request.body))
    with store_errors():
        return json(await request.app.ctx.batches.create(request.ctx.principal, batch_request))


@bp.get("/batches")
async def list_batches(request: Request):
    limit = query_limit(request, default=20, maximum=LIST_LIMIT_MAX)
    with store_errors():
        return json(await request.app.ctx.batches.list(request.ctx.principal.id, after=request.args.get("after"), limit=limit))


@bp.get("/batches/<batch_id>")
async def retrieve_batch(request: Request, batch_id: str):
    with store_errors():
        return json(await request.app.ctx.batches.retrieve(request.ctx.principal.id, batch_id))


@bp.post("/batches/<batch_id>/cancel")
async def cancel_batch(request: Request, batch_id: str):
    with store_errors():
        return json(await request.app.ctx.batches.cancel(request.ctx.principal.id, batch_id))
