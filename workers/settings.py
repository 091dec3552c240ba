"""arq settings for ``coo-llm worker``, and the loop that keeps a worker alive across Redis outages.

``worker_settings(settings, context)`` returns the keyword arguments of ``arq.worker.Worker``:

- ``deferred_chat`` (queue-backed retries): at most ``retry.timeout + 5`` seconds, results kept
  a minute for the waiting web process. arq delivers a job again if its worker died (after the
  in-progress lock expires); the job's claim makes that delivery a no-op, so it never runs twice.
- crons: ``rollup_usage``, ``compact_windows``, ``warm_cache`` every ``workers.*_every`` (arq
  runs each tick on one worker only, however many there are), each allowed its period to run.
- JSON job serialization (never pickle), the queue Redis from ``storage.queue.url`` or the
  runtime Redis, ``workers.max_jobs`` concurrent jobs, a 0.1 s poll.

Beside arq, ``run_worker`` runs this process's ``workers.batch_pump.BatchPump``: the lines of
every batch, shared with the other workers.

``WorkerSettings`` (this module's attribute, built from ``$COO_CONFIG`` on first access) is the
same for ``arq workers.settings.WorkerSettings``; ``coo-llm worker`` uses ``run_worker``, which
also restarts arq when Redis drops away and comes back, and serves ``/metrics`` if asked.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from loguru import logger

from workers.batch_pump import BatchPump
from workers.context import JobContext, open_context
from workers.queue import DEFERRED_CHAT, JOBS, QUEUE_NAME, cron_jobs, dumps, loads, queue_url

RESTART_DELAY = 1.0


def _schedule(period: float) -> dict:
    """arq cron fields firing every ``period`` seconds (a divisor of a minute, or of an hour)."""
    seconds = int(period)
    if seconds < 60:
        return {"second": set(range(0, 60, seconds))}
    return {"minute": set(range(0, 60, seconds // 60)), "second": {0}}


def worker_settings(settings, context: JobContext | None = None) -> dict:
    from arq import cron, func
    from arq.connections import RedisSettings

    return {
        "functions": [func(JOBS[DEFERRED_CHAT], name=DEFERRED_CHAT, timeout=settings.policy.retry.timeout + 5, keep_result=60, max_tries=3)],
        # A cron run may last up to its period (a fold cut short resumes from its cursor next time).
        # This also bounds arq's in-progress lock (longest timeout + 10 s), which is how long a job
        # whose worker died waits before arq delivers it again.
        "cron_jobs": [cron(job, name=name, timeout=period, **_schedule(period)) for name, job, period in cron_jobs(settings)],
        "redis_settings": RedisSettings.from_dsn(queue_url(settings)),
        "queue_name": QUEUE_NAME,
        "job_serializer": dumps,
        "job_deserializer": loads,
        "max_jobs": settings.workers.max_jobs,
        "poll_delay": 0.1,
        "health_check_interval": 10,
        "ctx": {"coo": context, "settings": settings},
        "on_startup": _startup if context is None else None,
        "on_shutdown": _shutdown if context is None else None,
    }


async def _startup(ctx: dict) -> None:
    ctx["coo"] = await open_context(ctx["settings"])


async def _shutdown(ctx: dict) -> None:
    if ctx.get("coo") is not None:
        await ctx["coo"].close()


async def run_worker(settings, *, metrics_port: int | None = None, metrics_host: str = "127.0.0.1") -> None:
    """Run arq until SIGTERM/SIGINT; if Redis goes away, log once and start arq again when it is back.
    With ``metrics_port``, Prometheus metrics are served on ``metrics_host:metrics_port``."""
    from arq.worker import Worker

    _forward_arq_logs(settings.logging.level)
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=metrics_host)
    context = await open_context(settings)
    pump = BatchPump(context)  # batches run beside arq, on every worker (see workers.batch_pump)
    await pump.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    in_outage = False
    try:
        while not stop.is_set():
            worker = Worker(**worker_settings(settings, context), handle_signals=False)
            started = time.monotonic()
            main = asyncio.ensure_future(worker.async_run())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({main, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if main.done() and main.exception() is None:
                break  # arq finished by itself (burst mode)
            if main.done():
                # Log once per outage: a worker that ran for a while before failing starts a new one.
                if not in_outage or time.monotonic() - started > 10:
                    logger.warning("arq stopped (Redis unreachable?); restarting it every second until it runs", error=repr(main.exception()))
                in_outage = True
            else:
                main.cancel()
            try:
                await asyncio.wait_for(worker.close(), 10)
            except Exception:
                pass
            if not stop.is_set():
                await asyncio.sleep(RESTART_DELAY)
    finally:
        await pump.close(grace=settings.policy.retry.timeout)
        await context.close()


class _ToLoguru(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname if record.levelname in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO"
        logger.bind(source=record.name).log(level, record.getMessage())  # bind: arq's text is not a format string


def _forward_arq_logs(level: str) -> None:
    """arq logs through ``logging``: send its lines to our loguru sinks (job lines only at DEBUG)."""
    arq_logger = logging.getLogger("arq")
    arq_logger.handlers = [_ToLoguru()]
    arq_logger.setLevel(logging.INFO if level in ("DEBUG", "TRACE") else logging.WARNING)
    arq_logger.propagate = False


def __getattr__(name: str):
    """``WorkerSettings`` for the plain ``arq`` command, built from ``$COO_CONFIG``."""
    if name != "WorkerSettings":
        raise AttributeError(name)
    import os

    from app.config import load_settings

    settings = load_settings(os.environ.get("COO_CONFIG", "configs/config.yaml"))
    return type("WorkerSettings", (), worker_settings(settings))
