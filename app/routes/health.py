"""Liveness, readiness, the Prometheus endpoint and the OpenAPI document (``app.openapi``), with
no auth: load balancers, scrapers and API tooling use them."""

from __future__ import annotations

import asyncio

from sanic import Blueprint, HTTPResponse, Request
from sanic.response import json

from app import metrics
from app.openapi import DOCUMENT_JSON

bp = Blueprint("health")


@bp.get("/health/live")
async def live(request: Request):
    return json({"status": "ok"})


@bp.get("/health/ready")
async def ready(request: Request):
    """200 when at least one provider has keys and the state store answers, or is unreachable but
    the gateway serves on from per-process memory (``"status": "degraded"``); 503 otherwise.

    Degraded stays 200 on purpose: every replica shares the store, so a load balancer that
    dropped degraded replicas would take the whole gateway down with Redis.
    """
    ctx = request.app.ctx
    if getattr(ctx, "draining", False):  # stopping: the load balancer should send elsewhere
        return json({"status": "draining"}, status=503)
    store_ok = await ctx.store.ping()
    degraded = bool(getattr(ctx.store, "degraded", False))
    providers = {pid: {"keys": len(keys)} for pid, keys in ctx.service.balancer.keys.items()}
    usable = any(p["keys"] for p in providers.values())
    ok = (store_ok or degraded) and usable
    storage = {"type": ctx.store.name, "ok": store_ok, "shared": ctx.store.shared}
    if degraded:
        storage.update(degraded=True, fallback="memory (limits per process until the store is back)")
    body = {
        "status": ("degraded" if degraded else "ready") if ok else "not_ready",
        "storage": storage,
        "providers": providers,
    }
    if not usable:
        body["reason"] = "no provider has API keys configured"
    return json(body, status=200 if ok else 503)


@bp.get("/metrics")
async def prometheus(request: Request):
    ctx = request.app.ctx
    if not getattr(ctx.store, "degraded", False):  # queue depth is read when scraped, never from a dead Redis
        try:
            await asyncio.wait_for(ctx.queue.refresh_metrics(), timeout=1.0)
        except Exception:
            pass
    body, content_type = metrics.render()
    return HTTPResponse(body, content_type=content_type)


@bp.get("/openapi.json")
async def openapi(request: Request):
    return HTTPResponse(DOCUMENT_JSON, content_type="application/json")
