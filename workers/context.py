"""What every job function gets: ``ctx["coo"]``, a ``JobContext`` (settings, store, the service).

arq calls job functions as ``fn(ctx, *args)`` with its own ``ctx`` dict; the local scheduler
does the same, so one function serves both.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from loguru import logger

from app import metrics
from app.accounting import UsageSink, attach_usage_sink
from app.logging import set_log_redactor
from storage import keys


@dataclass
class JobContext:
    settings: object
    store: object
    service: object  # ``app.service.Service``: every job that calls an upstream goes through it
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    stats: "MemoryStats" = field(default_factory=lambda: MemoryStats())
    owned: tuple = ()  # what close() closes, when this context opened it (a worker process)

    @property
    def key_ids(self) -> list[str]:
        return [key.id for pool in self.service.balancer.keys.values() for key in pool]

    async def close(self) -> None:
        for resource in self.owned:
            await resource.close()
        if self.owned:
            attach_usage_sink(None)


async def open_context(settings) -> JobContext:
    """A worker process's own store, upstream session, service and usage sink."""
    from app.service import Service
    from app.upstream import UpstreamClient
    from storage import open_store

    store = open_store(settings.storage.runtime, on_state=metrics.store_state_changed)
    upstream = UpstreamClient(max_response_bytes=settings.server.max_upstream_response_bytes)
    await upstream.start()
    usage = UsageSink(store)  # jobs that answer no client (warming, batches) record their usage here
    attach_usage_sink(usage)
    service = Service(settings, store, upstream)
    set_log_redactor(service.redactor)
    return JobContext(settings, store, service, owned=(usage, upstream, store))


class MemoryStats:
    """Job outcomes of this process (the local scheduler)."""

    def __init__(self) -> None:
        self.counts: dict[str, float] = defaultdict(float)

    async def record(self, function: str, outcome: str, seconds: float) -> None:
        self.counts[f"{function}:{outcome}"] += 1
        self.counts[f"{function}:seconds"] += seconds

    async def read(self) -> dict[str, float]:
        return dict(self.counts)


class RedisStats:
    """Job outcomes of every worker, in one Redis hash (``storage.keys.QUEUE_STATS``)."""

    def __init__(self, redis) -> None:
        self.redis = redis

    async def record(self, function: str, outcome: str, seconds: float) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(keys.QUEUE_STATS, f"{function}:{outcome}", 1)
        pipe.hincrbyfloat(keys.QUEUE_STATS, f"{function}:seconds", seconds)
        await pipe.execute()

    async def read(self) -> dict[str, float]:
        raw = await self.redis.hgetall(keys.QUEUE_STATS)
        return {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}


def stats_of(ctx: dict):
    return RedisStats(ctx["redis"]) if ctx.get("redis") is not None else ctx["coo"].stats


def instrumented(name: str, function):
    """Wrap a job function: time it, count its outcome (``result["outcome"]`` or success/failed)."""

    async def job(ctx: dict, *args):
        started = time.perf_counter()
        outcome = "failed"
        try:
            result = await function(ctx, *args)
            outcome = result.get("outcome", "success") if isinstance(result, dict) else "success"
            return result
        except BaseException as error:
            outcome = "cancelled" if isinstance(error, asyncio.CancelledError) else "failed"
            if outcome == "failed":
                logger.opt(exception=error).error("job failed", job=name)
            raise
        finally:
            seconds = time.perf_counter() - started
            metrics.child(metrics.JOBS, name, outcome).inc()
            metrics.child(metrics.JOB_LATENCY, name).observe(seconds)
            try:
                await stats_of(ctx).record(name, outcome, seconds)
            except Exception:  # stats are best effort; the job's own result matters
                pass

    job.__name__ = job.__qualname__ = name
    return job
