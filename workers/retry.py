"""Queue-backed retries (``policy.retry.queue: true``): a request that cannot be served now waits
in the job queue for a key, instead of failing at once.

Web side, ``Deferrer.chat(call, record)`` (non-streaming requests only):

1. Dispatch inline as usual, with the request's deadline (``retry.timeout`` from now).
2. If it ends in a deferrable error (no capacity, or every target failed with a retryable
   error) and the earliest key frees (``Retry-After``; else a backoff with jitter) before the
   deadline, enqueue ``deferred_chat`` to run then, and wait for its result until the deadline.
3. No result by the deadline: claim the job as ``cancelled``. If the claim wins, the job never
   ran and never will (it checks the claim first): the client gets the error it would have got.
   If a worker holds the claim, the job is running; its attempts end by the deadline, so wait
   a short grace for its result, else answer that error.

Worker side, ``deferred_chat(ctx, payload)``:

1. Claim the job for this worker. Anyone else holding it (a cancelling web process, or a worker
   that died mid-job, after which arq re-delivers the job) means: do nothing. So a request is
   never executed twice, and never after its client gave up.
2. Dispatch through the same ``Dispatcher`` with the same deadline; on another deferrable error,
   sleep until the next key frees while that is before the deadline, then try again.
3. Return the answer (body, who served it, usage, cost) or the final error, as JSON-able data.

The web process accounts the request (its ``finish`` appends the usage event), so a deferred
request is counted once, like any other.
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
from app.auth import Principal
from app.dispatch import Call
from app.errors import GatewayError, NoCapacity, UpstreamFailed, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable

BACKOFF_BASE = 0.5
BACKOFF_MAX = 10.0
MIN_RUN = 0.25  # a deferral must leave at least this long before the deadline to be worth it
GRACE = 2.0  # how long past the deadline a web process waits for a job that is already running
CANCELLED = "cancelled"


def deferrable(error: GatewayError) -> bool:
    """Waiting can help: no key had room, or every target failed in a way another try may fix."""
    if isinstance(error, NoCapacity):
        return True
    if isinstance(error, UpstreamTimeout):
        return False  # the budget is spent
    if isinstance(error, UpstreamUnavailable):
        return error.code != "no_provider_keys"
    return isinstance(error, UpstreamFailed) and error.code == "upstream_error"


def next_delay(retry_after: float | None, attempt: int) -> float:
    """Until the earliest key frees (plus jitter, so waiters do not stampede), else a backoff."""
    if retry_after:
        return retry_after + random.uniform(0.05, 0.25)
    return min(BACKOFF_MAX, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.0)


def run_claim(job_id: str) -> str:
    return f"run:{job_id}"


def call_payload(call: Call) -> dict:
    principal = call.principal
    allowed = None if principal.allowed is None else sorted(principal.allowed)
    return {"body": call.body, "model": call.model, "max_tokens": call.max_tokens, "principal": {"id": principal.id, "allowed": allowed}}


def call_from_payload(data: dict, *, deadline: float) -> Call:
    """Rebuild a ``Call`` whose monotonic deadline matches the wall-clock ``deadline``."""
    who = data["principal"]
    principal = Principal(who["id"], allowed=None if who["allowed"] is None else frozenset(who["allowed"]))
    call = Call(body=data["body"], model=data["model"], principal=principal, max_tokens=data.get("max_tokens"))
    call.deadline = time.monotonic() + (deadline - time.time())
    return call


def error_payload(error: GatewayError) -> dict:
    return {"ok": False, "status": error.status, "envelope": error.envelope(), "retry_after": error.retry_after}


def error_from_payload(data: dict) -> GatewayError:
    # UpstreamRejected relays any status with its envelope as given, which is what we need here.
    envelope = data["envelope"]
    return UpstreamRejected(envelope["error"]["message"], status=data["status"], envelope=envelope, retry_after=data.get("retry_after"))


def _served(record: RequestRecord) -> dict:
    return {
        "provider": record.provider,
        "key_id": record.key_id,
        "model": record.model,
        "listed": record.model_label == record.model,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cost": record.cost,
    }


# ---------------------------------------------------------------------------------- worker side


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
            result = await job.dispatcher.chat(call, record)
        except GatewayError as error:
            attempts += record.attempts
            record.attempts = 0
            wait = next_delay(error.retry_after, round_number)
            if deferrable(error) and time.time() + wait + MIN_RUN < deadline:
                await asyncio.sleep(wait)
                continue
            return {**error_payload(error), "outcome": "failed", "attempts": attempts, **_served(record)}
        attempts += record.attempts
        usage = result.usage
        return {
            "ok": True,
            "outcome": "success",
            "body": result.body.decode(),
            "attempts": attempts,
            "usage": None if usage is None else [usage.prompt_tokens, usage.completion_tokens],
            **_served(record),
        }
    return {"ok": False, "outcome": "failed", "status": 503, "envelope": UpstreamUnavailable("gave up").envelope()}


# ---------------------------------------------------------------------------------- web side


class Deferrer:
    """Dispatch with queue-backed retries (see the module docstring)."""

    def __init__(self, settings, dispatcher, queue, store) -> None:
        self.enabled = settings.policy.retry.queue
        self.timeout = settings.policy.retry.timeout
        self.dispatcher = dispatcher
        self.queue = queue
        self.store = store

    async def chat(self, call: Call, record: RequestRecord) -> ChatResult:
        if call.deadline is None:
            call.deadline = time.monotonic() + self.timeout
        try:
            return await self.dispatcher.chat(call, record)
        except GatewayError as error:
            if not (self.enabled and self.queue is not None and deferrable(error)):
                raise
            return await self._defer(call, record, error)

    async def _cancel(self, job_id: str) -> str | None:
        """Claim the job as cancelled so no worker runs it; the claim's holder (None: unknown)."""
        try:
            return await self.store.claim(run_claim(job_id), CANCELLED, ttl=600.0, now=time.time())
        except Exception as failure:
            logger.warning("could not cancel a deferred request", job_id=job_id, error=repr(failure))
            return None

    async def _defer(self, call: Call, record: RequestRecord, error: GatewayError) -> ChatResult:
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
