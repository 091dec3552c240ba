"""The admin API (``/admin/v1``): off unless ``server.admin_api_key`` is set; bearer-protected.

``GET /config``, ``POST /config/validate``; and for running many processes as one gateway:
``GET /usage`` (cost roll-ups; by client with each client's name), ``DELETE /cache`` (purge the
response cache), ``GET /queue`` (the job queue) and ``GET /keys`` (each provider key's windows
against its limits, and its per-minute history). Client keys are in ``app.routes.clients``; the
dashboard's own calls are in ``app.routes.admin_ops``.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import datetime, timezone

from sanic import Blueprint, Request
from sanic.response import json

from app.auth import check_admin, client_key_id
from app.config import ConfigError, masked_dump, parse_settings
from app.errors import AuthenticationFailed, GatewayError, InvalidRequest, NotFound, StorageUnavailable
from storage import StoreUnavailable
from storage.base import WINDOW_SECONDS
from storage.usage import GROUPS, usage_report

bp = Blueprint("admin", url_prefix="/admin/v1")


@bp.on_request
async def require_admin(request: Request):
    admin_key = request.app.ctx.settings.server.admin_api_key
    if not admin_key:
        raise NotFound("The admin API is disabled; set server.admin_api_key to enable it.", code="admin_disabled")
    if not check_admin(request.headers.get("authorization"), admin_key):
        raise AuthenticationFailed("The admin API needs 'Authorization: Bearer <admin_api_key>'.")


@bp.get("/config")
async def effective_config(request: Request):
    return json(masked_dump(request.app.ctx.settings))


@bp.post("/config/reload")
async def reload_config(request: Request):
    """Read the config file again and apply it (``app.lifecycle``): 200 with what changed, 400
    with the file's errors (nothing changes), 202 when every worker of ``serve --workers N`` is
    asked to reload."""
    from app.lifecycle import ask_every_worker_to_reload, reload_process, several_workers, validate_config_file

    path = getattr(request.app.ctx, "config_path", None)
    if path is None:
        raise GatewayError("This process was not started from a config file; there is nothing to reload.", status=409, code="not_reloadable")
    if several_workers():
        settings, problems = await asyncio.to_thread(validate_config_file, path)
        if settings is None:
            return json({"reloaded": False, "errors": problems, "restart_needed": []}, status=400)
        ask_every_worker_to_reload()
        return json({"reloaded": "every worker is reloading", "errors": [], "restart_needed": []}, status=202)
    result = await reload_process(request.app)
    return json(result.as_json(), status=200 if result.ok else 400)


@bp.post("/config/validate")
async def validate_config(request: Request):
    """Validate a posted YAML or JSON config; answer ``{"valid", "errors"}`` with ``check``'s paths.

    Any document gets that answer: one too large (``MAX_CONFIG_BYTES``) or too deeply nested is
    invalid like any other. It is parsed on a thread: a large one takes a noticeable fraction of a
    second that the event loop keeps serving requests through.
    """
    try:
        await asyncio.to_thread(parse_settings, request.body)
    except ConfigError as error:
        return json({"valid": False, "errors": error.problems})
    return json({"valid": True, "errors": []})


# ---------------------------------------------------------------------------------- operations (issue 4)


def storage_unavailable(error: Exception) -> GatewayError:
    return StorageUnavailable(error, retry_after=None)


def _timestamp(request: Request, name: str, default: float) -> float:
    """A query time as unix seconds, or an ISO 8601 date / date-time (UTC unless it has an offset)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):  # nan, inf: not a moment
            raise InvalidRequest(f"'{name}' must be a finite number of unix seconds or an ISO 8601 date/time.", param=name, code="invalid_value")
        return seconds
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"'{name}' must be unix seconds or an ISO 8601 date/time, e.g. 2026-01-31T00:00:00Z.", param=name, code="invalid_value") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


@bp.get("/usage")
async def usage(request: Request):
    """Roll-up totals: ``?from=&to=`` (default: the last 24 h) ``&group_by=client|provider|model|key``."""
    group_by = request.args.get("group_by") or "provider"
    if group_by not in GROUPS:
        raise InvalidRequest(f"'group_by' must be one of {', '.join(GROUPS)}.", param="group_by", code="invalid_value")
    end = _timestamp(request, "to", time.time())
    start = _timestamp(request, "from", end - 86400)
    if start >= end:
        raise InvalidRequest("'from' must be before 'to'.", param="from", code="invalid_value")
    if end - start > 400 * 86400:
        raise InvalidRequest("The range may span at most 400 days.", param="from", code="invalid_value")
    try:
        report = await usage_report(request.app.ctx.store, start=start, end=end, group_by=group_by)
    except StoreUnavailable as error:
        raise storage_unavailable(error) from None
    if group_by == "client":
        names = client_names(request)
        for row in report["data"]:
            row["name"] = names.get(row["client"])
    return json(report)


def client_names(request: Request) -> dict[str, str]:
    """Client id -> name: runtime clients by their name, config keys by their description."""
    names = {client_key_id(c.key): c.description for c in request.app.ctx.settings.api_keys}
    names.update(request.app.ctx.clients.names())
    return names


@bp.delete("/cache")
async def purge_cache(request: Request):
    try:
        deleted = await request.app.ctx.store.cache_purge()
    except StoreUnavailable as error:
        raise storage_unavailable(error) from None
    return json({"object": "cache.purge", "deleted": deleted})


@bp.get("/queue")
async def queue(request: Request):
    """The job queue: depth by state, the next jobs, outcomes per job function, worker health;
    ``batches``: the unfinished batches with their progress, and how many batch pumps are alive."""
    try:
        snapshot = await request.app.ctx.queue.snapshot()
        snapshot["batches"] = await request.app.ctx.batches.snapshot()
        return json(snapshot)
    except Exception as error:  # Redis down: say so in the envelope, not with a traceback
        raise storage_unavailable(error) from None


def _limits_of(limits) -> dict:
    """A provider's per-key limits (``app.config.Limits``) as ``/keys`` shows them; None: unlimited."""
    return {"requests": limits.req_per_min, "tokens": limits.tokens_per_min, "window_s": WINDOW_SECONDS}


@bp.get("/keys")
async def keys(request: Request):
    """Each provider key's windows now, against its limits, and its per-minute history (``?minutes=``, default 60)."""
    try:
        minutes = int(request.args.get("minutes") or 60)
    except ValueError:
        minutes = 0
    if not 0 < minutes <= 24 * 60:
        raise InvalidRequest("'minutes' must be a whole number from 1 to 1440.", param="minutes", code="invalid_value")
    ctx = request.app.ctx
    by_id = {key.id: key for pool in ctx.service.balancer.keys.values() for key in pool}
    limits = {p.id: p.limits for p in ctx.settings.llm_providers}
    key_ids = list(by_id)
    now = time.time()
    try:
        states = await ctx.store.key_states(key_ids, window=WINDOW_SECONDS, now=now)
        history = await ctx.store.key_history(key_ids, since=now - 60 * minutes)
    except StoreUnavailable as error:
        raise storage_unavailable(error) from None
    data = [
        {
            "id": by_id[key_id].label,
            "state_id": key_id,
            "provider": by_id[key_id].provider_id,
            "window": {"requests": state.requests, "tokens": state.tokens, "inflight": state.inflight},
            "limits": _limits_of(limits[by_id[key_id].provider_id]),
            "cooldown_until": state.cooldown_until if state.cooldown_until > now else None,
            "cooldown_left_s": round(state.cooldown_until - now, 3) if state.cooldown_until > now else 0,
            "failures": state.failures,
            "error_rate": round(state.error_rate, 4),
            "latency_s": round(state.latency, 4),
            "history": [{"minute": minute, "requests": r, "tokens": t} for minute, r, t in history.get(key_id, [])],
        }
        for key_id, state in states.items()
    ]
    return json({"object": "list", "data": data})
