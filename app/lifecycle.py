"""A web process after it started: hot reload and a graceful drain.

**Reload** (``SIGHUP``, or ``POST /admin/v1/config/reload``), ``reload_process(app)``:

1. The config file the process was started with is read and validated again, with the same
   rules as ``coo-llm check``. An invalid file changes nothing: the errors are logged and
   returned, and the old config keeps serving.
2. Sections only a restart can apply (``RESTART_ONLY``: listen address and server limits,
   storage, workers, logging, files, batches) keep their running values; the reload says which
   ones changed.
3. The new runtime (``Service``: catalog, balancer, cache, governance; the client
   authenticator) is built off the event loop, on the process's own store, upstream session
   and job queue, so key state carries over: it is keyed by each key's digest, not its place.
4. One swap, with no await in between, puts it on ``app.ctx`` (and under the job queue). A
   request that had already started finishes on the objects it began with.

With ``serve --workers N`` every worker reloads: the main process forwards ``SIGHUP`` to each
(``forward_reloads``), and the admin route, after validating, signals the main process.

**Drain** (``SIGTERM``, or the ``SIGINT`` a ``serve --workers N`` main process sends its workers),
``install_drain(app)``: ``/health/ready`` answers 503 at once, so a load balancer stops sending;
after ``server.drain_delay`` the listener closes and Sanic lets requests and streams in flight
finish for up to ``server.shutdown_grace`` (its graceful shutdown) before it cuts them. Jobs in
the arq queue stay there; the in-process queue's deferred requests belong to requests in flight.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field

from loguru import logger

from app.config import ConfigError, load_settings

RESTART_ONLY = ("server", "storage", "workers", "logging", "files", "batches")
WORKERS_ENV = "COO_LLM_WEB_WORKERS"  # set by ``serve`` for its worker processes


@dataclass
class ReloadResult:
    ok: bool
    errors: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)  # changed sections that keep their running values

    def as_json(self) -> dict:
        return {"reloaded": self.ok, "errors": self.errors, "restart_needed": self.restart_needed}


def several_workers() -> bool:
    return int(os.environ.get(WORKERS_ENV) or 1) > 1


def validate_config_file(path: str) -> tuple[object | None, list[str]]:
    """``(settings, [])`` for a valid file, ``(None, problems)`` otherwise."""
    try:
        return load_settings(path), []
    except ConfigError as error:
        return None, error.problems


def build_runtime(app, settings) -> dict:
    """The objects a reload swaps in (pure construction: safe to run in a thread)."""
    from app.auth import Authenticator
    from app.deferral import Deferral
    from app.service import Service

    service = Service(settings, app.ctx.store, app.ctx.upstream)
    service.deferral = Deferral(settings, app.ctx.queue, app.ctx.store)
    authenticator = Authenticator(settings.api_keys)
    clients = getattr(app.ctx, "clients", None)
    if clients is not None:
        authenticator.attach(clients)
    return {"settings": settings, "service": service, "authenticator": authenticator}


def swap_runtime(app, runtime: dict) -> None:
    """Put ``runtime`` in place, all at once (no await)."""
    from app.logging import set_log_redactor

    for name, value in runtime.items():
        setattr(app.ctx, name, value)
    job_context = getattr(app.ctx.queue, "ctx", {}).get("coo")
    if job_context is not None:  # the in-process queue runs jobs through the service too
        job_context.settings, job_context.service = runtime["settings"], runtime["service"]
    set_log_redactor(runtime["service"].redactor)


async def reload_process(app) -> ReloadResult:
    path = app.ctx.config_path
    settings, problems = await asyncio.to_thread(validate_config_file, path)
    if settings is None:
        logger.warning("config reload refused: the file is invalid; the running config keeps serving", path=path, errors=problems)
        return ReloadResult(False, problems)
    running = app.ctx.settings
    restart = [name for name in RESTART_ONLY if getattr(running, name) != getattr(settings, name)]
    if restart:
        settings = settings.model_copy(update={name: getattr(running, name) for name in restart})
    runtime = await asyncio.to_thread(build_runtime, app, settings)
    swap_runtime(app, runtime)
    logger.info("config reloaded", path=path, restart_needed=restart)
    return ReloadResult(True, [], restart)


async def reload_logged(app) -> None:
    """``reload_process`` for a signal: nobody awaits it, so a failure is logged here."""
    try:
        await reload_process(app)
    except Exception as error:
        logger.opt(exception=error).error("config reload failed; the running config keeps serving")


def install_reload_signal(app) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload_logged(app)))


def install_drain(app) -> None:
    """Replace Sanic's stop-at-once on SIGTERM / SIGINT with a drain (see the module docstring)."""
    loop = asyncio.get_running_loop()

    def drain() -> None:
        if app.ctx.draining:
            return
        app.ctx.draining = True
        server = app.ctx.settings.server
        logger.info("draining: /health/ready answers 503", close_listener_in_s=server.drain_delay, grace_s=server.shutdown_grace)
        loop.call_later(server.drain_delay, app.stop)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, drain)


def forward_reloads(app) -> None:
    """In a ``serve --workers N`` main process: pass ``SIGHUP`` on to every worker."""

    def forward(signum, frame) -> None:
        for process in app.manager.transient_processes:
            try:
                os.kill(process.pid, signal.SIGHUP)
            except (ProcessLookupError, TypeError):
                pass  # a worker that is restarting has no pid yet

    signal.signal(signal.SIGHUP, forward)


def ask_every_worker_to_reload() -> None:
    """From a worker of ``serve --workers N``: the main process forwards it to all of them."""
    os.kill(os.getppid(), signal.SIGHUP)
