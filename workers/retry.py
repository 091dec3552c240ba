"""Queue-backed retries, worker side: the ``deferred_chat`` job (the web side is ``app.deferral``).

``deferred_chat(ctx, payload)``:

1. Claim the job for this worker. Anyone else holding it (a cancelling web process, or a worker
   that died mid-job, after which arq re-delivers the job) means: do nothing. So a request is
   never executed twice, and never after its client gave up.
2. Run the call through the same ``Service`` (``execute``: attempts only; the web process does
   the cache and the accounting) with the request's deadline; on another error that waiting can
   fix, sleep until the next key frees while that is before the deadline, then try again.
3. Return the answer (body, who served it, usage, cost) or the final error, as JSON-able data.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from loguru import logger

from app.accounting import RequestRecord
from app.calls import call_from_payload
from app.deferral import CANCELLED, MIN_RUN, error_payload, next_delay, run_claim, served_payload
from app.errors import GatewayError, UpstreamUnavailable


async def deferred_chat(ctx: dict, payload: dict) -> dict:
    job = ctx["coo"]
    job_id, deadline = payload["job_id"], payload["deadline"]
    # A fresh owner per run: if arq hands this job out again (even to this same process after a
    # reconnect), the earlier run's claim makes this one stand down.
    owner = f"{job.worker_id}:{uuid.uuid4().hex[:12]}"
    holder = await job.store.claim(run_claim(job_id), owner, ttl=max(60.0, deadline - time.time() + 600), now=time.time())
    if holder != owner:
        outcome = "cancelled" if holder == CANCELLED else "skipped"
        logger.info("deferred request not run", job_id=job_id, held_by=holder, outcome=outcome)
        return {"outcome": outcome, "ok": False}
    call = call_from_payload(payload["call"], deadline=deadline)
    record = RequestRecord(payload["request_id"], route="deferred")
    attempts = 0
    for round_number in range(1000):
        try:
            result = await job.service.execute(call, record)
        except GatewayError as error:
            attempts += record.attempts
            record.attempts = 0
            wait = next_delay(error.retry_after, round_number)
            if error.retry_later and time.time() + wait + MIN_RUN < deadline:
                await asyncio.sleep(wait)
                continue
            return {**error_payload(error), "outcome": "failed", "attempts": attempts, **served_payload(record)}
        attempts += record.attempts
        usage = result.usage
        return {
            "ok": True,
            "outcome": "success",
            "body": result.body.decode(),
            "attempts": attempts,
            "usage": None if usage is None else [usage.prompt_tokens, usage.completion_tokens],
            **served_payload(record),
        }
    return {"ok": False, "outcome": "failed", "status": 503, "envelope": UpstreamUnavailable("gave up").envelope()}
