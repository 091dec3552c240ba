"""Queue-backed retries, web side (``policy.retry.queue: true``): a live unary request that cannot
be served now waits in the job queue for a key, instead of failing at once.

``Deferral.wait(call, record, error)`` is called by the service after the request's own attempts
ended in ``error`` with ``error.retry_later`` (no key had room, or every target failed in a way
another try may fix):

1. If the earliest key frees (``Retry-After``; else a backoff with jitter) before the request's
   deadline, enqueue the call (``app.calls.call_payload``) to run then, and wait for its result
   until the deadline. Otherwise answer ``error`` now.
2. No result by the deadline: claim the job as ``cancelled``. If the claim wins, the job never
   ran and never will (the job checks the claim first): the client gets ``error``. If a worker
   holds the claim, the job is running; its attempts end by the deadline, so wait a short grace
   for its result, else answer ``error``.
3. The client leaving while we wait cancels the job the same way.

The job itself (``workers.retry.deferred_chat``) runs the call through the same service in a
worker and returns who served it, the usage and the answer; this process then accounts the
request like any other (its ``finish`` appends the one usage event).

The queue is handed in (``open_queue`` in ``app.server``): this module knows its two calls,
``defer_chat(payload, job_id, run_at, expires_at)`` and ``result(job_id, timeout)``.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid

from loguru import logger

from adapters import ChatResult, Usage
from app import metrics
from app.accounting import RequestRecord
from app.calls import Call, call_payload
from app.errors import GatewayError, UpstreamRejected

BACKOFF_BASE = 0.5
BACKOFF_MAX = 10.0
MIN_RUN = 0.25  # a deferral must leave at least this long before the deadline to be worth it
GRACE = 2.0  # how long past the deadline a web process waits for a job that is already running
CANCELLED = "cancelled"


def next_delay(retry_after: float | None, attempt: int) -> float:
    """Until the earliest key frees (plus jitter, so waiters do not stampede), else a backoff."""
    if retry_after:
        return retry_after + random.uniform(0.05, 0.25)
    return min(BACKOFF_MAX, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0)


def run_claim(job_id: str) -> str:
    return f"run:{job_id}"


def error_payload(error: GatewayError) -> dict:
    return {"ok": False, "status": error.status, "envelope": error.envelope(), "retry_after": error.retry_after}


def error_from_payload(data: dict) -> GatewayError:
    # UpstreamRejected relays any status with its envelope as given, which is what we need here.
    envelope = data["envelope"]
    return UpstreamRejected(envelope["error"]["message"], status=data["status"], envelope=envelope, retry_after=data.get("retry_after"))


def served_payload(record: RequestRecord) -> dict:
    """Who served a request and what it spent, as a job returns it to the waiting web process."""
    return {
        "provider": record.provider,
        "key_id": record.key_id,
        "model": record.model,
        "listed": record.model_label == record.model,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cost": record.cost,
    }


class Deferral:
    """See the module docstring."""

    def __init__(self, settings, queue, store) -> None:
        self.enabled = settings.policy.retry.queue
        self.queue = queue
        self.store = store

    async def _cancel(self, job_id: str) -> str | None:
        """Claim the job as cancelled so no worker runs it; the claim's holder (None: unknown)."""
        try:
            return await self.store.claim(run_claim(job_id), CANCELLED, ttl=600.0, now=time.time())
        except Exception as failure:
            logger.warning("could not cancel a deferred request", job_id=job_id, error=repr(failure))
            return None

    async def wait(self, call: Call, record: RequestRecord, error: GatewayError) -> ChatResult:
        if not self.enabled or self.queue is None or call.deadline is None:
            raise error
        if getattr(self.store, "degraded", False):  # the queue lives in the same Redis: do not wait on it
            metrics.child(metrics.DEFERRED, "not_queued").inc()
            raise error
        remaining = call.deadline - time.monotonic()
        wait = next_delay(error.retry_after, 0)
        if wait + MIN_RUN >= remaining:
            metrics.child(metrics.DEFERRED, "not_queued").inc()
            raise error
        now = time.time()
        deadline = now + remaining
        job_id = f"chat:{record.request_id}:{uuid.uuid4().hex[:8]}"
        payload = {"job_id": job_id, "request_id": record.request_id, "deadline": deadline, "call": call_payload(call)}
        try:
            await asyncio.wait_for(self.queue.defer_chat(payload, job_id=job_id, run_at=now + wait, expires_at=deadline), timeout=2.0)
        except Exception as failure:
            logger.warning("could not queue a deferred request", request_id=record.request_id, error=repr(failure))
            metrics.child(metrics.DEFERRED, "not_queued").inc()
            raise error from None
        record.deferred = job_id
        try:
            result = await self.queue.result(job_id, timeout=max(0.0, deadline - time.time()))
        except asyncio.CancelledError:  # the client left: nobody waits for this job any more
            await asyncio.shield(self._cancel(job_id))
            raise
        if result is None and await self._cancel(job_id) != CANCELLED:
            result = await self.queue.result(job_id, timeout=GRACE)  # a worker is running it; its attempts end by the deadline
        if result is None or not (result.get("ok") or "status" in result):  # none, or a job that did not run
            metrics.child(metrics.DEFERRED, "timed_out").inc()
            raise error
        if result.get("provider"):
            record.served_by(result["provider"], result["key_id"], result["model"], result.get("listed", True))
            record.charge(result["prompt_tokens"], result["completion_tokens"], result["cost"])
        record.attempts += result.get("attempts", 0)
        if not result["ok"]:
            metrics.child(metrics.DEFERRED, "failed").inc()
            raise error_from_payload(result)
        metrics.child(metrics.DEFERRED, "completed").inc()
        usage = result.get("usage")
        return ChatResult(result["body"].encode(), None if usage is None else Usage(usage[0], usage[1]))
