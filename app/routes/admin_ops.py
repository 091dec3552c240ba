"""The admin API the dashboard reads and acts through (``/admin/v1``, same admin key as the rest):

- ``GET /overview``: the whole gateway's last minute and its day so far (``app.overview``), and
  ``features``: which optional admin APIs this gateway has (the dashboard shows their panels).
- ``GET /requests?limit=``: the newest recent request records (default 50), newest first: ids,
  client, model, provider, key, status, latency, tokens and cost, never prompt or answer text.
  The store keeps them in the order their batches arrived (each process pushes every 0.25 s),
  so they are sorted by finishing time here.
- ``POST /keys/{label}/reset``: lift a provider key's cooldown and clear its failure count,
  in the shared store (every process sees it); ``label`` is the masked id (``openai#2``,
  URL-encoded ``openai%232``) or the key's ``state_id``.
"""

from __future__ import annotations

import time
from urllib.parse import unquote

from sanic import Blueprint, Request
from sanic.response import json

from app import metrics
from app.errors import InvalidRequest, NotFound
from app.overview import cluster_overview
from app.routes.admin import require_admin, storage_unavailable
from storage import StoreUnavailable
from storage.base import RECENT_MAX, WINDOW_SECONDS

bp = Blueprint("admin_ops", url_prefix="/admin/v1")
bp.on_request(require_admin)

DEFAULT_REQUESTS = 50
# Optional admin APIs the dashboard uses when present: feature -> (method, route path).
FEATURES = {"clients": ("GET", "admin/v1/clients"), "revoke_client": ("DELETE", "admin/v1/clients/<")}


def admin_features(app) -> dict[str, bool]:
    """Which of ``FEATURES`` the app routes (read from its router, so a route added later counts)."""
    routes = [(route.methods, route.path) for route in app.router.routes]
    return {
        name: any(method in methods and (path == wanted or (wanted.endswith("<") and path.startswith(wanted))) for methods, path in routes)
        for name, (method, wanted) in FEATURES.items()
    }


@bp.get("/overview")
async def overview(request: Request):
    try:
        summary = await cluster_overview(request.app.ctx.store, now=time.time())
    except StoreUnavailable as error:
        raise storage_unavailable(error) from None
    return json({**summary, "features": admin_features(request.app)})


@bp.get("/requests")
async def recent_requests(request: Request):
    raw = request.args.get("limit") or str(DEFAULT_REQUESTS)
    if not raw.isdigit() or not 0 < int(raw) <= RECENT_MAX:
        raise InvalidRequest(f"'limit' must be a whole number from 1 to {RECENT_MAX}.", param="limit", code="invalid_value")
    try:
        data = await request.app.ctx.store.recent_list(int(raw))
    except StoreUnavailable as error:
        raise storage_unavailable(error) from None
    data.sort(key=lambda item: item.get("at", 0), reverse=True)
    return json({"object": "list", "data": data})


@bp.post("/keys/<label>/reset")
async def reset_key(request: Request, label: str):
    ctx = request.app.ctx
    label = unquote(label)  # the router hands over the path segment as sent: '#' arrives as %23
    found = next((key for pool in ctx.service.balancer.keys.values() for key in pool if label in (key.label, key.id)), None)
    if found is None:
        raise NotFound(f"No provider key '{label}'; GET /admin/v1/keys lists them.", code="key_not_found")
    try:
        await ctx.store.reset_key(found.id)
        state = (await ctx.store.key_states([found.id], window=WINDOW_SECONDS, now=time.time()))[found.id]
    except StoreUnavailable as error:
        raise storage_unavailable(error) from None
    metrics.child(metrics.COOLDOWN_UNTIL, found.provider_id, found.label).set(0)
    return json({"object": "key.reset", "id": found.label, "cooldown_until": None, "failures": state.failures})
