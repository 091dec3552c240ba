"""Cache warming: refresh hot entries before they expire, and pre-warm from a JSONL file.

Warming spends upstream calls, so the cron job does nothing unless ``policy.cache.warm: true``.
Each run (``warm_cache``):

1. Lists live entries with at least ``warm_min_hits`` hits that expire within ``warm_before``.
2. Claims each one (``warm:<key>:<expiry>``), so of several workers only one refreshes it.
3. Replays the stored request (``app.calls``) through the same ``Service`` as live traffic, so it
   obeys the same key limits: a key without room is not waited for (the entry just expires as
   usual).
4. The service stores the fresh answer under the request's cache key with the entry's TTL, and
   the request is finished like any other (client ``warming``), so its usage event puts the
   spend in the roll-ups.

``prewarm(job, calls)`` (``coo-llm warm FILE``) does steps 3 and 4 for given requests, waiting
for room when every key is full.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace

from loguru import logger

from app.accounting import RequestRecord, finish
from app.cache import CacheDirectives
from app.calls import Call, call_from_payload
from app.errors import GatewayError, NoCapacity

WARMING_CLIENT = "warming"


async def _refresh(job, call: Call, ttl: float) -> None:
    """Answer ``call`` through the service and store the answer in the cache for ``ttl`` seconds
    (never answering from it); the spend is recorded like any request's. Raises the service's
    error if it fails."""
    call.cache = CacheDirectives(lookup=False, store=True, ttl=ttl)
    # The gateway's own spend (recorded as client "warming"): not the client's limits or budget.
    call.principal = replace(call.principal, rules=None)
    record = RequestRecord(f"warm_{uuid.uuid4().hex}", route="warm")
    record.client = WARMING_CLIENT
    try:
        await job.service.answer(call, record)
        record.status = 200
    except GatewayError as error:
        record.status = error.status
        raise
    finally:
        finish(record)


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
        if not request or "endpoint" not in request:
            continue  # an entry written before calls carried their endpoint: it just expires
        claim = f"warm:{entry.key}:{entry.expires_at!r}"
        if await job.store.claim(claim, job.worker_id, ttl=policy.warm_before + 60, now=now) != job.worker_id:
            continue
        try:
            await _refresh(job, call_from_payload(request), float(entry.meta.get("ttl") or policy.ttl_seconds))
            warmed += 1
        except NoCapacity:
            refused += 1
        except GatewayError as error:
            failed += 1
            logger.warning("cache warming failed", cache_key=entry.key[:12], status=error.status, code=error.code)
    return {"outcome": "success", "warmed": warmed, "no_capacity": refused, "failed": failed}


async def prewarm(job, calls: list[Call], *, ttl: float | None = None, max_wait: float = 300.0) -> dict:
    """Answer and cache each call (``coo-llm warm FILE``), waiting up to ``max_wait`` for key room."""
    ttl = float(ttl or job.settings.policy.cache.ttl_seconds)
    warmed = failed = 0
    for call in calls:
        give_up = time.monotonic() + max_wait
        while True:
            try:
                await _refresh(job, call, ttl)
                warmed += 1
                break
            except NoCapacity as error:
                if time.monotonic() + (error.retry_after or 1.0) > give_up:
                    failed += 1
                    break
                await asyncio.sleep(error.retry_after or 1.0)
                call.deadline = None  # a fresh retry budget for the next try
            except GatewayError as error:
                logger.warning("pre-warm request failed", model=call.model, status=error.status, detail=error.message[:200])
                failed += 1
                break
    return {"warmed": warmed, "failed": failed}
