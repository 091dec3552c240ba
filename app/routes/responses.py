"""``/v1/responses``: create (unary or ``stream: true``), retrieve, delete, list input items.

Creating parses the body, continues a stored conversation (``previous_response_id``, the
client's own only), translates the request to the chat hub once (``adapters.responses``: a bad
field is a 400 naming its path) and hands the call to the service: the same balancing, limits,
failover, cache, queue-backed retries and accounting as chat (``app.endpoints.responses``).
"""

from __future__ import annotations

import time

from sanic import Blueprint, Request
from sanic.response import json

from adapters import AdapterError
from adapters.responses import input_items, responses_param_for, responses_request_to_chat
from adapters.shapes import random_hex
from app.calls import Call, hub_call
from app.endpoints import RESPONSES
from app.errors import InvalidRequest
from app.responses_store import ResponseStore, continuation
from app.inbound import check_nesting, parse_json_object
from app.routes.respond import serve_call

bp = Blueprint("responses", url_prefix="/v1")


def _invalid(error: AdapterError) -> InvalidRequest:
    return InvalidRequest(error.message, param=responses_param_for(error.param), code=error.code)


async def responses_call(body: dict, principal, store: ResponseStore) -> Call:
    """The ``Call`` for a Responses request body (a 400 for anything the translation refuses)."""
    check_nesting(body)  # the body is stored whole: deeper than orjson writes was a 500
    previous = body.get("previous_response_id")
    history: list[dict] = []
    prior_items: list[dict] = []
    if previous is not None:
        if not isinstance(previous, str) or not previous:
            raise InvalidRequest("'previous_response_id' must be a response id.", param="previous_response_id", code="invalid_type")
        history, prior_items = continuation(await store.load(previous, principal))
    try:
        chat = responses_request_to_chat(body, history=history)
        items = input_items(body) if body.get("store") is not False else []  # kept only with the response
    except AdapterError as error:
        raise _invalid(error) from None
    extra = {
        "id": "resp_" + random_hex(24),
        "created_at": int(time.time()),
        "previous_response_id": previous,
        "chat": chat,
        "history": history,
        "prior_items": prior_items,
        "input_items": items,
    }
    return hub_call(RESPONSES, body, chat, principal, extra=extra)


@bp.post("/responses")
async def create_response(request: Request):
    store = ResponseStore.of(request.app.ctx.service)
    return await serve_call(request, await responses_call(parse_json_object(request.body), request.ctx.principal, store))


@bp.get("/responses/<response_id>")
async def retrieve_response(request: Request, response_id: str):
    doc = await ResponseStore.of(request.app.ctx.service).load(response_id, request.ctx.principal, param="response_id")
    return json(doc["response"])


@bp.delete("/responses/<response_id>")
async def delete_response(request: Request, response_id: str):
    await ResponseStore.of(request.app.ctx.service).delete(response_id, request.ctx.principal)
    return json({"id": response_id, "object": "response", "deleted": True})


@bp.get("/responses/<response_id>/input_items")
async def list_input_items(request: Request, response_id: str):
    """The response's input items, newest first (``order=asc`` for oldest first), ``limit``
    1-100 (default 20), ``after`` an item id to continue after."""
    doc = await ResponseStore.of(request.app.ctx.service).load(response_id, request.ctx.principal, param="response_id")
    items = list(doc.get("input_items") or [])
    order = request.args.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be asc or desc.", param="order", code="invalid_value")
    if order == "desc":
        items.reverse()
    try:
        limit = int(request.args.get("limit") or 20)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise InvalidRequest("'limit' must be a whole number from 1 to 100.", param="limit", code="invalid_value")
    after = request.args.get("after")
    if after:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise InvalidRequest(f"No input item with id '{after}' in this response.", param="after", code="invalid_value")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return json({
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    })
