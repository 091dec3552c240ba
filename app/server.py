"""The Sanic application: the composition root (with ``app.cli``, the only modules that import
``workers``).

``create_app(settings)`` assembles the service. Per request, in order:

1. ``begin_request`` (app, on request): ``request.ctx.request_id`` (the client's
   ``x-request-id`` if it is sane, else a new one) and ``request.ctx.record``, the
   ``RequestRecord`` (built here and nowhere else for HTTP requests) that the service fills in
   and the access log reads; with telemetry on, a ``/v1`` request's span starts here
   (``record.trace``, ``app.telemetry``), the child of the client's ``traceparent``.
2. ``authenticate`` (the ``/v1`` routes: chat, embeddings, models, responses, messages, files, batches; on request):
   ``request.ctx.principal`` from the bearer key (config keys, and runtime clients from
   ``app.clients.ClientDirectory``; a plain function, awaiting only for a runtime key this process
   has not read yet), or 401. The admin blueprints check the admin key instead; the dashboard's
   page and assets (``app.dashboard``) need none, and hold no data.
3. The handler (``app.routes``): parse the body into a ``Call``, hand it to ``app.service``,
   render JSON or SSE. Errors are raised, never returned.
4. ``render_error`` (exception handler): any exception becomes an OpenAI error envelope with its
   status; unexpected ones are logged with a traceback and answered as a bare 500.
5. ``end_request`` (app, on response): adds ``x-request-id`` and, except for streams (which do it
   when they end), has the request recorded (metrics and one access log line) right after the
   response is written.

Per process, ``before_server_start`` opens on ``app.ctx``: the state store, the upstream session,
the runtime clients' directory (``app.clients``: loaded, then polled), the service
(``app.service.Service``: catalog, balancer, governor, cache), the tracer (``app.telemetry``;
None when telemetry is off), the usage sink (``finish``
appends one usage event per request through it; the local scheduler hears how many it stored,
to fold a backlog early), the job queue (arq, or the local scheduler running the jobs
in-process, given the same service, batch pump included) and the service's deferral
(queue-backed retries), the files and the batches (``app.files``, ``app.batches``); it
starts the event-loop lag watcher (``app.looplag``) and tunes the garbage collector
(``GC_THRESHOLDS``). ``after_server_stop`` closes them.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import re

import orjson
from loguru import logger
from sanic import HTTPResponse, Request, Sanic
from sanic.exceptions import SanicException

from adapters.messages_answer import anthropic_error_body
from app.accounting import CLIENT_CLOSED, RequestRecord, finish_soon
from app.auth import Authenticator
from app.errors import GatewayError, InvalidRequest, NotFound, PayloadTooLarge
from app.looplag import watch_loop_lag
from app.protocol import TimedProtocol
from app import dashboard, metrics
from app.routes import admin, admin_ops, batches, chat, clients, embeddings, files, health, messages, models, responses

# Request objects die by reference counting; nearly nothing a request allocates needs the cycle
# collector. At Python's default first threshold (700) a burst of 32 requests in flight started
# ~170 collections a second, which promoted live request objects and led to full collections of
# ~50 ms (loop lag spikes, p99). A larger first threshold keeps that work near zero; the frozen
# start-up objects (modules, config, routes) are never scanned again.
GC_THRESHOLDS = (10_000, 10, 10)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")


class _RequestIds:
    """``req_`` + 32 hex digits, unique per process: 16 random, then a counter.

    One ``os.urandom`` per process instead of a ``uuid4()`` per request (a syscall and a UUID
    object: most of ``begin_request``'s time). A forked child draws its own random half.
    """

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._prefix = "req_" + os.urandom(8).hex()
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


_request_ids = _RequestIds()

_RECORDED = ("/v1/", "/admin/")
ANTHROPIC_ROUTES = "/v1/messages"  # their errors come in Anthropic's shape

# Sanic's own loggers only speak up for real problems; our access log is app.accounting.
SANIC_LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {
        "sanic.root": {"level": "WARNING", "handlers": ["console"]},
        "sanic.error": {"level": "ERROR", "handlers": ["console"], "propagate": False},
        "sanic.access": {"level": "CRITICAL", "handlers": ["console"], "propagate": False},
        "sanic.server": {"level": "WARNING", "handlers": ["console"], "propagate": False},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
}


def _sanic_error(error: SanicException) -> GatewayError:
    status = getattr(error, "status_code", 500) or 500
    if status == 413:
        return PayloadTooLarge(f"The request body is larger than this gateway accepts. {error}".strip())
    if status == 404:
        return NotFound("Unknown URL; see GET /v1/models, POST /v1/chat/completions and POST /v1/embeddings.")
    if status == 405:
        return InvalidRequest("Method not allowed for this URL.", status=405, code="method_not_allowed")
    if 400 <= status < 500:
        return InvalidRequest(str(error) or "Bad request.", status=status)
    return GatewayError("The gateway failed to handle this request.", status=status)


def create_app(settings, *, name: str = "coo_llm") -> Sanic:
    app = Sanic(name, log_config=SANIC_LOG_CONFIG)
    app.config.REQUEST_MAX_SIZE = settings.server.max_body_bytes
    app.config.RESPONSE_TIMEOUT = 3600  # streams may legitimately run long; budgets live in dispatch
    app.config.REQUEST_TIMEOUT = settings.server.header_timeout  # TimedProtocol enforces headers and body from their start
    app.config.KEEP_ALIVE_TIMEOUT = settings.server.keep_alive_timeout
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = settings.server.shutdown_grace
    TimedProtocol.configure(settings.server)
    app.config.NOISY_EXCEPTIONS = False
    app.config.ACCESS_LOG = False
    app.config.MOTD = False
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.settings = settings
    app.ctx.authenticator = Authenticator(settings.api_keys)
    tracer = None  # this process's ``app.telemetry.Tracer`` once the server starts, if telemetry is on

    @app.before_server_start
    async def open_resources(app: Sanic) -> None:
        nonlocal tracer
        from app.accounting import UsageSink, attach_usage_sink
        from app.batches import Batches
        from app.clients import ClientDirectory
        from app.deferral import Deferral
        from app.files import FileStore
        from app.lifecycle import install_reload_signal
        from app.logging import set_log_redactor
        from app.service import Service
        from app.telemetry import open_tracer
        from app.upstream import UpstreamClient
        from storage import open_store
        from workers.context import JobContext
        from workers.queue import open_queue

        app.ctx.store = open_store(settings.storage.runtime, on_state=metrics.store_state_changed)
        app.ctx.clients = ClientDirectory(app.ctx.store)
        app.ctx.authenticator.attach(app.ctx.clients)
        await app.ctx.clients.start()
        app.ctx.upstream = UpstreamClient(max_response_bytes=settings.server.max_upstream_response_bytes)
        await app.ctx.upstream.start()
        app.ctx.service = Service(settings, app.ctx.store, app.ctx.upstream)
        set_log_redactor(app.ctx.service.redactor)
        tracer = app.ctx.tracer = open_tracer(settings, redactor=app.ctx.service.redactor)  # per process: the exporter's thread
        app.ctx.usage = UsageSink(app.ctx.store)
        attach_usage_sink(app.ctx.usage)
        app.ctx.queue = open_queue(settings, JobContext(settings, app.ctx.store, app.ctx.service))
        await app.ctx.queue.start()
        app.ctx.usage.on_stored = getattr(app.ctx.queue, "events_stored", None)  # the local queue folds a backlog early
        app.ctx.service.deferral = Deferral(settings, app.ctx.queue, app.ctx.store)
        app.ctx.files = FileStore(settings, app.ctx.store)
        app.ctx.batches = Batches(settings, app.ctx.store, app.ctx.files)
        app.ctx.loop_lag = asyncio.get_running_loop().create_task(watch_loop_lag())
        app.ctx.draining = False
        install_reload_signal(app)  # before the listener opens: a SIGHUP must never find the default action
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)

    @app.after_server_start
    async def handle_signals(app: Sanic) -> None:
        from app.lifecycle import install_drain

        install_drain(app)  # after Sanic's own SIGTERM / SIGINT handlers, which it replaces
        logger.info("web process ready", pid=os.getpid())

    @app.after_server_stop
    async def close_resources(app: Sanic) -> None:
        from app.accounting import attach_usage_sink
        from app.logging import flush_logs

        app.ctx.loop_lag.cancel()
        await app.ctx.clients.close()
        await app.ctx.queue.close()
        await app.ctx.service.close()
        await app.ctx.usage.close()
        attach_usage_sink(None)
        await app.ctx.upstream.close()
        await app.ctx.store.close()
        if app.ctx.tracer is not None:
            await asyncio.to_thread(app.ctx.tracer.close)  # the last spans go out (a gone collector may take its timeout)
        flush_logs()  # access lines of the last loop turn (a worker process may exit without atexit)

    # The middlewares are plain functions: Sanic calls them without a coroutine and an await.
    @app.on_request(priority=100)
    def begin_request(request: Request) -> None:
        given = request.headers.get("x-request-id")
        request_id = given if given and _REQUEST_ID.match(given) else _request_ids.next()
        request.ctx.request_id = request_id
        record = request.ctx.record = RequestRecord(request_id, route=request.path)
        if request.path.startswith(_RECORDED):
            metrics.count(metrics.INFLIGHT, (), 1)
            record.inflight = True
            if tracer is not None and request.path.startswith("/v1/"):
                record.trace = tracer.request(request.headers, record, method=request.method, route=request.uri_template or request.path)
        else:
            record.finished = True  # health checks and scrapes are not logged

    def authenticate(request: Request):
        headers = request.headers
        authorization = headers.get("authorization")
        if authorization is None and "x-api-key" in headers:  # the anthropic SDKs' way
            authorization = "Bearer " + headers["x-api-key"]
        principal = app.ctx.authenticator.authenticate(authorization)
        if principal is None:
            return look_up(request, authorization)  # Sanic awaits what a middleware returns
        request.ctx.principal = principal
        request.ctx.record.client = principal.id
        return None

    async def look_up(request: Request, authorization: str | None) -> None:
        principal = await app.ctx.authenticator.look_up(authorization)
        request.ctx.principal = principal
        request.ctx.record.client = principal.id

    for blueprint in (chat.bp, embeddings.bp, models.bp, responses.bp, messages.bp, files.bp, batches.bp):
        blueprint.on_request(authenticate)
        app.blueprint(blueprint)
    app.blueprint(admin.bp)
    app.blueprint(clients.bp)
    app.blueprint(admin_ops.bp)
    app.blueprint(dashboard.bp)
    app.blueprint(health.bp)

    @app.exception(Exception)
    async def render_error(request: Request, error: Exception) -> HTTPResponse:
        if isinstance(error, GatewayError):
            gateway_error = error
        elif isinstance(error, SanicException):
            gateway_error = _sanic_error(error)
        else:
            logger.opt(exception=error).error("unhandled error", request_id=getattr(request.ctx, "request_id", None))
            gateway_error = GatewayError("The gateway failed to handle this request.")
        record = getattr(request.ctx, "record", None)
        if record is not None and not record.error:
            record.error = gateway_error.code or gateway_error.type
        if request.path.startswith(ANTHROPIC_ROUTES):
            body = orjson.dumps(anthropic_error_body(gateway_error.status, gateway_error.message, openai_type=gateway_error.type))
        else:
            body = gateway_error.body()
        return HTTPResponse(
            body,
            status=gateway_error.status,
            headers=gateway_error.headers(),
            content_type="application/json",
        )

    @app.on_response(priority=100)
    def end_request(request: Request, response: HTTPResponse) -> None:
        record = getattr(request.ctx, "record", None)
        if record is None:
            return
        response.headers.setdefault("x-request-id", record.request_id)
        # Sanic keeps the request in a context variable, and every task or timer created while it
        # ran (aiohttp's connection timers, a store batch) copies that context: the request can
        # outlive its answer by a minute. Its body (up to max_body_mb) must not.
        request.body = b""
        if not record.stream and not record.finished:
            if record.status != CLIENT_CLOSED:  # a client that hung up got no response to count
                record.status = response.status
            # Metrics and the log line once the response is on its way: the client does not wait.
            finish_soon(record)

    return app
