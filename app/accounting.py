"""What one request did, and where that is recorded: metrics, the access log line, usage events.

A ``RequestRecord`` is made once per request, by the first middleware (``app.server``) or by
whoever runs a call without an HTTP client (cache warming); the service (``app.service``) fills
in the provider, key, tokens and cost through its methods, and ``finish`` is called exactly once
when the client has its answer (for a stream: when the stream ends); it also ends the request's
span when telemetry is on (``record.trace``, ``app.telemetry``). For a call the service ran
(``billable``) ``finish`` also hands one ``UsageEvent`` to the process's ``UsageSink``, which
appends events to the runtime store in batches (every ``interval`` seconds); the roll-up job
folds them. Every finished ``/v1/`` request (billable or not: a 401 counts in an error rate) is
also handed to the sink as a recent request record (``recent_record``), pushed with the same
batches to the store's capped recent list, which the admin overview and the dashboard read.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
from loguru import logger

from adapters.sse import frame
from app import metrics
from app.logging import info_line
from app.loopturn import OncePerTurn
from storage.base import RECENT_MAX
from storage.usage import UsageEvent

if TYPE_CHECKING:
    from app.telemetry import RequestTrace


# Status recorded for a request whose client hung up before its answer (nginx's convention).
CLIENT_CLOSED = 499
# Metric label for a model the config does not list: a client may send any name, labels must stay bounded.
UNLISTED_MODEL = "(unlisted)"


@dataclass(slots=True)
class RateWindow:
    """A client's own windows as this request left them (``app.governance``), for OpenAI's
    ``x-ratelimit-*`` headers: the limits (None: unlimited) and what the window holds, this
    request included (its token estimate until it settles, then its real tokens)."""

    limit_requests: int | None
    limit_tokens: int | None
    requests: int
    tokens: int


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    route: str = ""
    client: str = ""
    model: str = ""  # the upstream model that served it
    model_label: str = ""  # ``model`` for metrics: never a name the client invented
    provider: str = ""
    key_id: str = ""
    status: int = 0
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = 0.0  # None: no known price
    stream: bool = False
    cache_hit: bool = False
    saved: float = 0.0  # USD a cache hit saved (the cost of the answer it replayed)
    deferred: str = ""  # the queue job that served it (queue-backed retry), if any
    cache_result: str = ""  # hit | miss | bypass when the cache is on, else ""
    error: str | None = None
    ratelimit: RateWindow | None = None  # the client's own windows, when it has limits
    budget_remaining: float | None = None  # USD left in the client's tighter budget, when it has one
    billable: bool = False  # a model call the service ran: finishing it appends a usage event
    inflight: bool = False  # counted in ``coo_llm_inflight_requests`` until finished
    finished: bool = False
    trace: "RequestTrace | None" = None  # the request's span when telemetry is on (``app.telemetry``)

    def served_by(self, provider: str, key_id: str, model: str, listed: bool = True) -> None:
        self.provider, self.key_id, self.model = provider, key_id, model
        self.model_label = model if listed else UNLISTED_MODEL

    def charge(self, prompt_tokens: int, completion_tokens: int, cost: float | None) -> None:
        """What the request spent; ``cost`` None: the model has no known price."""
        self.prompt_tokens, self.completion_tokens, self.cost = prompt_tokens, completion_tokens, cost

    def answered_from_cache(self, meta: dict) -> None:
        """A cache hit: served by no key, costs nothing, saves what the stored answer cost."""
        self.cache_hit = True
        self.served_by(meta.get("provider", ""), "", meta.get("model", ""), meta.get("listed", True))
        self.charge(0, 0, 0.0)
        self.saved = float(meta.get("cost") or 0.0)
        self.attempts = 0

    def client_gone(self) -> None:
        """The client hung up before its answer was delivered (unless an error came first)."""
        if self.error is None:
            self.status, self.error = CLIENT_CLOSED, "client_closed"


def finish(record: RequestRecord) -> None:
    """Record the finished request once: request metrics, token and cost counters, one log line."""
    if record.finished:
        return
    record.finished = True
    if record.inflight:
        metrics.count(metrics.INFLIGHT, (), -1)
    latency = time.perf_counter() - record.started
    provider, model = record.provider, record.model_label
    metrics.count(metrics.REQUESTS, (provider, model, str(record.status)))
    metrics.observe(metrics.REQUEST_LATENCY, (provider,), latency)
    if record.prompt_tokens or record.completion_tokens:
        metrics.count(metrics.TOKENS, (provider, model, "in"), record.prompt_tokens)
        metrics.count(metrics.TOKENS, (provider, model, "out"), record.completion_tokens)
        if record.cost:
            metrics.count(metrics.COST, (provider, model), record.cost)
    fields = {
        "request_id": record.request_id,
        "route": record.route,
        "client": record.client,
        "provider": provider,
        "key_id": record.key_id,
        "model": record.model,
        "status": record.status,
        "latency_ms": round(latency * 1000, 2),
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cost_usd": None if record.cost is None else round(record.cost, 8),
        "attempts": record.attempts,
        "stream": record.stream,
    }
    if record.deferred:
        fields["deferred"] = record.deferred
    if record.cache_hit:
        fields["cache_hit"] = True
        fields["saved_usd"] = round(record.saved, 8)
    if record.error:
        fields["error"] = record.error
    info_line("request", fields)
    if _sink is not None:
        if record.billable:
            _sink.add(usage_event(record, latency))
        if record.route.startswith(RECENT_ROUTES):
            _sink.add_recent(record, latency)
    if record.trace is not None:
        record.trace.end(record)


_finishing: list[RequestRecord] = []


def finish_soon(record: RequestRecord) -> None:
    """``finish(record)`` on the loop's next turn, with every record handed over in this turn:
    one callback per turn however many requests end in it (the client is not kept waiting for
    metrics and the log line, and the loop is not handed a callback per request). Without a
    running loop, at once."""
    _finishing.append(record)
    if not _finish_turn.schedule():
        _finish_pending()


def _finish_pending() -> None:
    pending = _finishing[:]
    _finishing.clear()
    for record in pending:
        try:
            finish(record)
        except Exception:  # one record that cannot be written must not cost the others theirs
            logger.opt(exception=False).error("could not record a finished request", request_id=record.request_id)


_finish_turn = OncePerTurn(_finish_pending)


def frames_with_cost(frames: list[bytes], cost: float | None) -> list[bytes]:
    """``frames`` with the request's cost as ``usage.cost_usd`` (USD; null when the price is
    unknown) on the chat usage chunk (``"choices": []`` with ``usage``); other frames unchanged."""
    priced = []
    for piece in frames:
        if piece.startswith(b"data: {") and b'"choices":[]' in piece and b'"usage":{' in piece:
            data = orjson.loads(piece[6:])
            if data.get("choices") == [] and isinstance(data.get("usage"), dict):
                data["usage"]["cost_usd"] = None if cost is None else round(cost, 10)
                piece = frame(data)
        priced.append(piece)
    return priced


def usage_event(record: RequestRecord, latency: float) -> UsageEvent:
    return UsageEvent(
        at=time.time(),
        client=record.client,
        provider=record.provider,
        key=record.key_id,
        model=record.model,
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        cost=record.cost or 0.0,
        status=record.status,
        latency_ms=round(latency * 1000, 3),
        cache_hit=record.cache_hit,
        saved=record.saved,
        request_id=record.request_id,
    )


# Routes whose requests are recent request records: the API clients call (not the admin API the
# dashboard itself polls, nor jobs: a queued retry is recorded by the request that waited for it).
RECENT_ROUTES = "/v1/"


def recent_record(record: RequestRecord, latency: float, at: float) -> dict:
    """What the dashboard shows of one finished request: who, what, how it went. Never a
    prompt or an answer; ``client`` and ``key`` are masked ids."""
    return {
        "id": record.request_id,
        "at": round(at, 3),
        "route": record.route,
        "client": record.client,
        "model": record.model,
        "provider": record.provider,
        "key": record.key_id,
        "status": record.status,
        "latency_ms": round(latency * 1000, 2),
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cost_usd": None if record.cost is None else round(record.cost, 8),
        "cache": record.cache_result,
        "stream": record.stream,
        "attempts": record.attempts,
        "error": record.error,
    }


class UsageSink:
    """Buffers usage events and appends them to the store in batches, off the request path.

    A process killed with SIGKILL loses at most the last ``interval`` seconds of events; a
    graceful stop flushes them (``close``).
    """

    def __init__(self, store, *, interval: float = 0.25, batch: int = 500, on_stored=None) -> None:
        self._store = store
        self._interval = interval
        self._batch = batch
        self._buffer: list[UsageEvent] = []
        self._recent: list[tuple[RequestRecord, float, float]] = []  # (record, latency, finished at)
        self._task: asyncio.Task | None = None
        self.on_stored = on_stored  # called with the number of events each time a batch is stored

    def add(self, event: UsageEvent) -> None:
        self._buffer.append(event)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_forever())

    def add_recent(self, record: RequestRecord, latency: float) -> None:
        """Queue a finished request's recent record; it is built when the batch goes out, off the
        request's own turn (a finished record no longer changes)."""
        recent = self._recent
        recent.append((record, latency, time.time()))
        if len(recent) > 2 * RECENT_MAX:  # a slow store: keep only what could still be shown
            del recent[:-RECENT_MAX]
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        if self._recent:
            # Only the newest RECENT_MAX can survive in the store's list: the rest need not travel.
            pending, self._recent = self._recent[-RECENT_MAX:], []
            try:
                await self._store.recent_push([recent_record(*entry) for entry in pending])
            except Exception as error:  # a sample for the dashboard: worth a line, never worth a retry
                logger.warning("recent request records not stored", records=len(pending), error=repr(error))
        while self._buffer:
            batch, self._buffer = self._buffer[: self._batch], self._buffer[self._batch :]
            try:
                await self._store.append_events(batch)
            except Exception as error:  # the resilient store buffers by itself; a local backend failing is worth a line
                logger.warning("usage events not stored", events=len(batch), error=repr(error))
                return
            if self.on_stored is not None:
                self.on_stored(len(batch))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self.flush()


_sink: UsageSink | None = None


def attach_usage_sink(sink: UsageSink | None) -> None:
    """Route this process's usage events to ``sink`` (``None``: not recorded)."""
    global _sink
    _sink = sink
