"""The admin API's client keys (``/admin/v1/clients``), behind the admin key like the rest of it.

- ``POST /admin/v1/clients``: create; 201 with the client and its ``key``, shown this once.
- ``GET /admin/v1/clients``, ``GET /admin/v1/clients/{id}``: the clients with their ``spend``.
- ``PATCH /admin/v1/clients/{id}``: change name, allowed lists, limits, budgets, expiry, cache
  namespace or metadata (``app.clients.ClientChange`` says how fields merge).
- ``DELETE /admin/v1/clients/{id}``: revoke (the document stays, marked ``revoked``).

Every change moves the clients' version, so every process sharing the store applies it within
``app.clients.POLL_INTERVAL`` plus one read (``app.clients.ClientDirectory``). Bodies are
validated strictly: unknown fields, wrong types, negative budgets, bad dates get 400 with
``param`` naming the field. Two admins changing one client at once: the last write wins.
"""

from __future__ import annotations

import time

from loguru import logger
from sanic import Blueprint, Request
from sanic.response import json

from app.clients import (
    CLIENT_KEYS,
    CLIENTS,
    ClientChange,
    ClientInput,
    changed_document,
    client_document,
    client_view,
    new_client_id,
    new_key,
    parse_input,
    principal_of,
    spend_of,
)
from app.errors import NotFound, StorageUnavailable
from app.routes.admin import require_admin

bp = Blueprint("admin_clients", url_prefix="/admin/v1/clients")
bp.on_request(require_admin)


def _providers(request: Request) -> set[str]:
    return {provider.id for provider in request.app.ctx.settings.llm_providers}


async def _views(request: Request, docs: list[dict]) -> list[dict]:
    spend = await spend_of(request.app.ctx.store, [principal_of(doc) for doc in docs], now=time.time())
    return [client_view(doc, spend.get(doc["id"])) for doc in docs]


async def _stored(request: Request, client_id: str) -> dict:
    try:
        doc = await request.app.ctx.store.doc_get(CLIENTS, client_id, now=time.time())
    except Exception as error:
        raise StorageUnavailable(error, retry_after=None) from None
    if doc is None:
        raise NotFound(f"No client with id '{client_id}'.", code="client_not_found")
    return doc


async def _save(request: Request, doc: dict) -> None:
    """Store a client document and have every process apply it."""
    store = request.app.ctx.store
    try:
        await store.doc_put(CLIENTS, doc["id"], doc, now=time.time())
    except Exception as error:
        raise StorageUnavailable(error, retry_after=None) from None
    await request.app.ctx.clients.changed()


@bp.post("")
async def create_client(request: Request):
    now = time.time()
    spec = parse_input(request.body, ClientInput, providers=_providers(request), now=now)
    key = new_key()
    doc = client_document(spec, client_id=new_client_id(), key=key, now=now)
    try:  # the key index first: a client document is never without a way to its key
        await request.app.ctx.store.doc_put(CLIENT_KEYS, doc["digest"], {"id": doc["id"]}, now=now)
    except Exception as error:
        raise StorageUnavailable(error, retry_after=None) from None
    await _save(request, doc)
    logger.info("client created", client=doc["id"], name=doc["name"])
    return json({**client_view(doc), "key": key}, status=201)


@bp.get("")
async def list_clients(request: Request):
    try:
        docs = await request.app.ctx.store.doc_list(CLIENTS, now=time.time())
        data = await _views(request, docs)
    except Exception as error:
        raise StorageUnavailable(error, retry_after=None) from None
    return json({"object": "list", "data": data})


@bp.get("/<client_id>")
async def get_client(request: Request, client_id: str):
    doc = await _stored(request, client_id)
    try:
        [view] = await _views(request, [doc])
    except Exception as error:
        raise StorageUnavailable(error, retry_after=None) from None
    return json(view)


@bp.patch("/<client_id>")
async def change_client(request: Request, client_id: str):
    now = time.time()
    change = parse_input(request.body, ClientChange, providers=_providers(request), now=now)
    doc = changed_document(await _stored(request, client_id), change, now=now)
    await _save(request, doc)
    logger.info("client changed", client=client_id, fields=sorted(change.model_fields_set))
    [view] = await _views(request, [doc])
    return json(view)


@bp.delete("/<client_id>")
async def revoke_client(request: Request, client_id: str):
    doc = await _stored(request, client_id)
    if not doc["revoked"]:
        now = time.time()
        doc = {**doc, "revoked": True, "revoked_at": now, "updated_at": now}
        await _save(request, doc)
        logger.info("client revoked", client=client_id)
    [view] = await _views(request, [doc])
    return json(view)
