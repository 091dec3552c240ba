"""Liveness, readiness and the Prometheus endpoint (no auth: load balancers and scrapers use them)."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request
from sanic.response import json

from app import metrics

bp = Blueprint("health")


@bp.get("/health/live")
async def live(request: Request):
    return json({"status": "ok"})


@bp.get("/health/ready")
async def ready(request: Request):
    """200 when the state store answers and at least one provider has keys; 503 otherwise."""
    ctx = request.app.ctx
    store_ok = await ctx.store.ping()
    providers = {pid: {"keys": len(keys)} for pid, keys in ctx.dispatcher.balancer.keys.items()}
    usable = any(p["keys"] for p in providers.values())
    ok = store_ok and usable
    body = {
        "status": "ready" if ok else "not_ready",
        "storage": {"type": ctx.store.name, "ok": store_ok},
        "providers": providers,
    }
    if not usable:
        body["reason"] = "no provider has API keys configured"
    return json(body, status=200 if ok else 503)


@bp.get("/metrics")
async def prometheus(request: Request):
    body, content_type = metrics.render()
    return HTTPResponse(body, content_type=content_type)
