"""The job queue as web processes see it: arq on Redis, or a local scheduler without Redis.

``open_queue(settings, context)`` picks:

- ``ArqQueue`` when ``storage.runtime.type`` is ``redis``: jobs are enqueued into arq (the runtime
  Redis, or ``storage.queue.url``) and run by ``coo-llm worker`` processes; crons run there too.
- ``LocalQueue`` otherwise: the same job functions run in this process, deferred requests as
  timed tasks and crons on their periods, and batches on this process's ``BatchPump``. With several web processes each runs its own; the
  jobs are safe to run concurrently (see ``workers``). Usage events also get folded as soon as
  ``FOLD_BACKLOG`` of them were stored since the last fold (``events_stored``, told by the
  usage sink), so the events waiting in this process's memory stay bounded by that, not by a
  ``rollup_every`` period of traffic, and each fold is short.

Both offer ``defer_chat`` / ``result`` for queue-backed retries, and ``snapshot`` (for
``GET /admin/v1/queue``) / ``refresh_metrics`` (queue depth gauges for ``/metrics``).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import orjson
from app import metrics
from workers.batch_pump import BatchPump
from workers.compaction import compact_windows
from workers.context import JobContext, RedisStats, instrumented
from workers.retry import deferred_chat
from workers.rollup import rollup_usage
from workers.warming import warm_cache

QUEUE_NAME = "arq:queue"
# Without Redis: fold usage events as soon as this many were stored since the last fold.
FOLD_BACKLOG = 1000
DEFERRED_CHAT = "deferred_chat"
JOBS = {DEFERRED_CHAT: instrumented(DEFERRED_CHAT, deferred_chat)}


def cron_jobs(settings) -> list[tuple[str, object, float]]:
    """(name, job function, period in seconds) of every periodic job."""
    workers = settings.workers
    return [
        ("rollup_usage", instrumented("rollup_usage", rollup_usage), workers.rollup_every),
        ("compact_windows", instrumented("compact_windows", compact_windows), workers.compact_every),
        ("warm_cache", instrumented("warm_cache", warm_cache), workers.warm_every),
    ]


def dumps(value) -> bytes:
    """arq's job serializer: JSON, never pickle (a shared Redis must not be able to run code here)."""
    return orjson.dumps(value, default=repr)


def loads(raw: bytes):
    return orjson.loads(raw)


def queue_url(settings) -> str:
    from storage.redis_transport import redis_url

    return settings.storage.queue.url or redis_url(settings.storage.runtime)


def outcomes(counts: dict[str, float]) -> dict[str, dict]:
    """``{"fn:outcome": n, "fn:seconds": s}`` -> ``{fn: {outcome: n, ..., "seconds": s}}``."""
    out: dict[str, dict] = {}
    for name, value in counts.items():
        function, _, outcome = name.rpartition(":")
        out.setdefault(function, {})[outcome] = round(value, 3) if outcome == "seconds" else int(value)
    return out


class LocalQueue:
    kind = "local"

    def __init__(self, settings, context: JobContext) -> None:
        self.settings = settings
        self.ctx = {"coo": context}
        self._waiting: dict[str, dict] = {}  # job id -> info of deferred jobs not yet finished
        self._results: dict[str, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self._unfolded = 0
        self._folding: asyncio.Task | None = None
        self._fold = next(function for name, function, _ in cron_jobs(settings) if name == "rollup_usage")
        self.pump = BatchPump(context)  # batches run here too, without Redis

    async def start(self) -> None:
        for name, function, period in cron_jobs(self.settings):
            self._spawn(self._every(name, function, period))
        await self.pump.start()

    def events_stored(self, count: int) -> None:
        """The usage sink stored ``count`` events: fold now if ``FOLD_BACKLOG`` are waiting."""
        self._unfolded += count
        if self._unfolded >= FOLD_BACKLOG and self._folding is None:
            self._unfolded = 0
            self._folding = self._spawn(self._fold_backlog())

    async def _fold_backlog(self) -> None:
        try:
            await self._fold(self.ctx)
        except Exception:
            pass  # counted and logged by ``instrumented``; the next run tries again
        finally:
            self._folding = None

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _every(self, name: str, function, period: float) -> None:
        while True:
            await asyncio.sleep(period - time.time() % period)  # on the period's boundaries, like cron
            try:
                await function(self.ctx)
            except Exception:
                pass  # counted and logged by ``instrumented``; the next run tries again

    async def defer_chat(self, payload: dict, *, job_id: str, run_at: float, expires_at: float) -> None:
        self._results[job_id] = asyncio.get_running_loop().create_future()
        self._waiting[job_id] = {"id": job_id, "function": DEFERRED_CHAT, "enqueued_at": time.time(), "run_at": run_at, "state": "deferred"}
        self._spawn(self._run_at(job_id, payload, run_at, expires_at))

    async def _run_at(self, job_id: str, payload: dict, run_at: float, expires_at: float) -> None:
        future = self._results[job_id]
        try:
            await asyncio.sleep(max(0.0, run_at - time.time()))
            self._waiting[job_id]["state"] = "in_progress"
            result = await JOBS[DEFERRED_CHAT](self.ctx, payload) if time.time() < expires_at else None
            if not future.done():
                future.set_result(result)
        except Exception as error:
            if not future.done():
                future.set_exception(error)
        finally:
            self._waiting.pop(job_id, None)
            asyncio.get_running_loop().call_later(60, self._results.pop, job_id, None)

    async def result(self, job_id: str, *, timeout: float) -> dict | None:
        future = self._results.get(job_id)
        if future is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except (asyncio.TimeoutError, Exception):
            return None

    async def snapshot(self) -> dict:
        now = time.time()
        jobs = sorted(self._waiting.values(), key=lambda j: j["run_at"])
        ready = sum(1 for j in jobs if j["state"] == "deferred" and j["run_at"] <= now)
        running = sum(1 for j in jobs if j["state"] == "in_progress")
        return {
            "backend": "local",
            "depth": len(jobs),
            "ready": ready,
            "deferred": len(jobs) - ready - running,
            "in_progress": running,
            "jobs": [{**j, "enqueued_at": _iso(j["enqueued_at"]), "run_at": _iso(j["run_at"])} for j in jobs[:100]],
            "outcomes": outcomes(await self.ctx["coo"].stats.read()),
            "crons": {name: period for name, _, period in cron_jobs(self.settings)},
        }

    async def refresh_metrics(self) -> None:
        snap = await self.snapshot()
        for state in ("ready", "deferred", "in_progress"):
            metrics.child(metrics.QUEUE_DEPTH, state).set(snap[state])

    async def close(self) -> None:
        await self.pump.close(grace=self.settings.policy.retry.timeout)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class ArqQueue:
    kind = "arq"

    def __init__(self, settings, *, timeout: float = 1.0) -> None:
        import redis.asyncio as aioredis
        from arq.connections import ArqRedis

        self.settings = settings
        # No ping at start: a web process must come up (degraded) even when Redis is down.
        pool = aioredis.BlockingConnectionPool.from_url(queue_url(settings), max_connections=32, timeout=timeout, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.redis = ArqRedis(pool, job_serializer=dumps, job_deserializer=loads, default_queue_name=QUEUE_NAME)

    async def start(self) -> None:
        pass

    async def defer_chat(self, payload: dict, *, job_id: str, run_at: float, expires_at: float) -> None:
        job = await self.redis.enqueue_job(
            DEFERRED_CHAT,
            payload,
            _job_id=job_id,
            _defer_until=datetime.fromtimestamp(run_at, timezone.utc),
            # Kept past the deadline so a late worker still runs it and finds it cancelled (a no-op).
            _expires=max(1.0, expires_at - time.time()) + 30,
        )
        if job is None:
            raise RuntimeError(f"job {job_id} already exists")

    async def result(self, job_id: str, *, timeout: float) -> dict | None:
        from arq.jobs import Job

        try:
            value = await Job(job_id, self.redis, _queue_name=QUEUE_NAME, _deserializer=loads).result(timeout=timeout, poll_delay=0.1)
        except asyncio.CancelledError:
            raise
        except BaseException:  # timed out, expired, or the job failed inside arq
            return None
        return value if isinstance(value, dict) else None

    async def snapshot(self) -> dict:
        now_ms = time.time() * 1000
        scored = await self.redis.zrange(QUEUE_NAME, 0, 99, withscores=True)
        depth = await self.redis.zcard(QUEUE_NAME)
        jobs = []
        running = 0
        if scored:
            pipe = self.redis.pipeline(transaction=False)
            for job_id, _ in scored:
                pipe.exists(b"arq:in-progress:" + job_id)
                pipe.get(b"arq:job:" + job_id)
            flags = await pipe.execute()
            for index, (job_id, score) in enumerate(scored):
                in_progress, raw = bool(flags[2 * index]), flags[2 * index + 1]
                running += in_progress
                info = loads(raw) if raw else {}
                state = "in_progress" if in_progress else ("deferred" if score > now_ms else "ready")
                jobs.append({
                    "id": job_id.decode(),
                    "function": info.get("f"),
                    "try": info.get("t"),
                    "enqueued_at": _iso(info["et"] / 1000) if info.get("et") else None,
                    "run_at": _iso(score / 1000),
                    "state": state,
                })
        deferred = await self.redis.zcount(QUEUE_NAME, f"({now_ms}", "+inf")
        health = await self.redis.get(QUEUE_NAME + ":health-check")
        return {
            "backend": "arq",
            "queue": QUEUE_NAME,
            "depth": depth,
            "ready": max(0, depth - deferred - running),
            "deferred": deferred,
            "in_progress": running,
            "jobs": jobs,
            "outcomes": outcomes(await RedisStats(self.redis).read()),
            "worker": health.decode() if health else None,
            "crons": {name: period for name, _, period in cron_jobs(self.settings)},
        }

    async def refresh_metrics(self) -> None:
        snap = await self.snapshot()
        for state in ("ready", "deferred", "in_progress"):
            metrics.child(metrics.QUEUE_DEPTH, state).set(snap[state])
        for field, value in (await RedisStats(self.redis).read()).items():
            function, _, outcome = field.rpartition(":")
            if outcome == "seconds":
                metrics.child(metrics.QUEUE_JOB_SECONDS, function).set(value)
            else:
                metrics.child(metrics.QUEUE_JOBS, function, outcome).set(value)

    async def close(self) -> None:
        await self.redis.aclose(close_connection_pool=True)


def open_queue(settings, context: JobContext):
    if settings.storage.runtime.type == "redis":
        return ArqQueue(settings)
    return LocalQueue(settings, context)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds")


__all__ = ["ArqQueue", "LocalQueue", "JOBS", "QUEUE_NAME", "cron_jobs", "dumps", "loads", "open_queue"]
