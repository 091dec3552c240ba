"""Cache warming: refresh hot entries before they expire, and pre-warm from a JSONL file.

Warming spends upstream calls, so the cron job does nothing unless ``policy.cache.warm: true``.
Each run (``warm_cache``):

1. Lists live entries with at least ``warm_min_hits`` hits that expire within ``warm_before``.
2. Claims each one (``warm:<key>:<expiry>``), so of several workers only one refreshes it.
3. Replays the stored request through the same ``Dispatcher`` as live traffic, so it obeys the
   same key limits: a key without room is not waited for (the entry just expires as usual).
4. Stores the fresh answer under the same key with the entry's TTL, and records a usage event
   (client ``warming``) so the spend shows in the roll-ups.

``prewarm(job, calls, namespace)`` (``coo-llm warm FILE``) does steps 3 and 4 for given requests,
waiting for room when every key is full.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from loguru import logger

from app.accounting import RequestRecord, usage_event
from app.auth import Principal
from app.cache import CachePlan, cache_key
from app.dispatch import Call
from app.errors import GatewayError, NoCapacity

WARMING_CLIENT = "warming"


async def _refresh(job, key: str, request: dict, ttl: float) -> None:
    """Run ``request`` and store its answer under ``key``; raises the dispatch error if it fails."""
    allowed = request.get("allowed")
    principal = Principal(request.get("client") or WARMING_CLIENT, allowed=None if allowed is None else frozenset(allowed))
    call = Call(body=request["body"], model=request["model"], principal=principal, max_tokens=request.get("max_tokens"))
    record = RequestRecord(f"warm_{uuid.uuid4().hex}", route="warm")
    record.client = WARMING_CLIENT
    try:
        result = await job.dispatcher.chat(call, record)
        record.status = 200
    except GatewayError as error:
        record.status = error.status
        raise
    finally:
        if record.attempts:  # an upstream was called: the spend is recorded
            await job.store.append_events([usage_event(record, time.perf_counter() - record.started)])
    await job.cache.save(CachePlan(key, False, True, ttl, request), result.body, record)


async def warm_cache(ctx: dict) -> dict:
    job = ctx["coo"]
    policy = job.settings.policy.cache
    if not (policy.enabled and policy.warm):
        return {"outcome": "skipped", "warmed": 0}
    now = time.time()
    hot = await job.store.cache_hot(min_hits=policy.warm_min_hits, expiring_before=now + policy.warm_before, now=now)
    warmed = refused = failed = 0
    for entry in hot:
        request = entry.meta.get("request")
        if not request:
            continue
        claim = f"warm:{entry.key}:{entry.expires_at!r}"
        if await job.store.claim(claim, job.worker_id, ttl=policy.warm_before + 60, now=now) != job.worker_id:
            continue
        try:
            await _refresh(job, entry.key, request, float(entry.meta.get("ttl") or policy.ttl_seconds))
            warmed += 1
        except NoCapacity:
            refused += 1
        except GatewayError as error:
            failed += 1
            logger.warning("cache warming failed", cache_key=entry.key[:12], status=error.status, code=error.code)
    return {"outcome": "success", "warmed": warmed, "no_capacity": refused, "failed": failed}


async def prewarm(job, calls: list[Call], *, namespace: str, ttl: float | None = None, max_wait: float = 300.0) -> dict:
    """Answer and cache each call (``coo-llm warm FILE``), waiting up to ``max_wait`` for key room."""
    ttl = float(ttl or job.settings.policy.cache.ttl_seconds)
    warmed = failed = 0
    for call in calls:
        targets = job.dispatcher.targets(call.model, call.principal)
        allowed = None if call.principal.allowed is None else sorted(call.principal.allowed)
        request = {"body": call.body, "model": call.model, "namespace": namespace, "client": WARMING_CLIENT, "allowed": allowed, "max_tokens": call.max_tokens}
        key = cache_key(targets, call.body, namespace)
        give_up = time.monotonic() + max_wait
        while True:
            try:
                await _refresh(job, key, request, ttl)
                warmed += 1
                break
            except NoCapacity as error:
                if time.monotonic() + (error.retry_after or 1.0) > give_up:
                    failed += 1
                    break
                await asyncio.sleep(error.retry_after or 1.0)
            except GatewayError as error:
                logger.warning("pre-warm request failed", model=call.model, status=error.status, detail=error.message[:200])
                failed += 1
                break
    return {"warmed": warmed, "failed": failed}
