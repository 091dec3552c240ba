"""Every Prometheus metric, declared once.

Label values are provider ids, masked key ids (``openai#2``), configured model names and
statuses: bounded sets, and never a secret. A model the client invented is never a label
(requests that fail before routing use ``model=""``). ``labels()`` children are cached, because
resolving them is a measurable part of the hot path.

With ``serve --workers N`` each process writes its own files under ``PROMETHEUS_MULTIPROC_DIR``
and ``/metrics`` merges them (set up by ``app.cli``) into one set of series: counters and
histograms summed over the processes, and each gauge by the mode its meaning asks for. In-flight
requests are summed over the live processes; "store degraded" is the worst process's. Gauges
whose value is a reading of shared state (a key's cooldown end, the queue read from Redis when
scraped) take the value written last, by whichever process: a reading taken by one process
is not stale because another process read it earlier (``max`` would keep the highest old
reading, e.g. a cooldown lifted by ``POST /admin/v1/keys/{label}/reset``).
"""

from __future__ import annotations

import os
from bisect import bisect_left

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

from app.loopturn import OncePerTurn

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter("coo_llm_requests_total", "Requests answered, by provider, model and HTTP status.", ["provider", "model", "status"])
REQUEST_LATENCY = Histogram(
    "coo_llm_request_duration_seconds", "Time from request received to response finished, as the client saw it.",
    ["provider"], buckets=LATENCY_BUCKETS,
)
UPSTREAM_LATENCY = Histogram(
    "coo_llm_upstream_duration_seconds", "Time of each upstream attempt until its answer (or first stream byte).",
    ["provider"], buckets=LATENCY_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "coo_llm_time_to_first_token_seconds", "Streams: time from request received to the first chunk sent.",
    ["provider"], buckets=LATENCY_BUCKETS,
)
TOKENS = Counter("coo_llm_tokens_total", "Tokens counted from upstream usage.", ["provider", "model", "direction"])
COST = Counter("coo_llm_cost_usd_total", "Cost in USD priced from usage.", ["provider", "model"])
ATTEMPTS = Counter("coo_llm_upstream_attempts_total", "Upstream attempts by outcome.", ["provider", "outcome"])
RETRIES = Counter("coo_llm_retries_total", "Attempts after the first, by the outcome that caused them.", ["provider", "reason"])
FAILOVERS = Counter("coo_llm_failovers_total", "Retries that moved to another provider.", ["from_provider", "to_provider"])
COOLDOWNS = Counter("coo_llm_key_cooldowns_total", "Cooldowns started on a provider key.", ["provider", "key", "reason"])
COOLDOWN_UNTIL = Gauge(
    "coo_llm_key_cooldown_until_timestamp_seconds", "Unix time until which a key rests (cooling while > time()).",
    ["provider", "key"], multiprocess_mode="mostrecent",
)
UNPRICED = Counter(
    "coo_llm_unpriced_requests_total", "Requests served by a model with no known price (their cost is null).", ["provider", "model"]
)
UNREADABLE_USAGE = Counter(
    "coo_llm_unreadable_usage_total", "Upstream answers whose usage could not be read (counted as unknown).", ["provider"]
)
NO_CAPACITY = Counter("coo_llm_no_capacity_total", "Requests refused because no key had room.", ["model"])
CLIENT_REFUSALS = Counter(
    "coo_llm_client_refusals_total", "Requests refused by the client's own limits or budget (app.governance).", ["reason"]
)
INFLIGHT = Gauge("coo_llm_inflight_requests", "Requests being handled now.", multiprocess_mode="livesum")
STORE_DEGRADED = Gauge(
    "coo_llm_store_degraded", "1 while the shared runtime store is unreachable and this process serves from memory.",
    multiprocess_mode="max",
)
STORE_FALLBACKS = Counter("coo_llm_store_fallbacks_total", "Times a process fell back to memory state because the store was unreachable.")
EVENT_LOOP_LAG = Histogram(
    "coo_llm_event_loop_lag_seconds", "How late the event loop woke a periodic timer (see app.looplag); large means blocked.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

_children: dict[tuple, object] = {}


def child(metric, *labels: str):
    """``metric.labels(*labels)``, cached."""
    key = (metric, labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


class Tally:
    """The request path's counts and observations, added up and handed to prometheus_client once
    per event-loop turn.

    A prometheus_client ``inc`` takes a lock and, with several web processes, writes a memory-
    mapped file; a histogram ``observe`` also searches its buckets. Per request that was about a
    dozen such calls. ``count`` and ``observe`` here only add to a dict; ``flush`` (scheduled with
    ``call_soon`` on the first addition of a turn, and run by ``render`` before a scrape) applies
    one ``inc`` per series and one per histogram bucket touched. Nothing waits longer than the
    loop turn it happened in. Without a running loop (a CLI, a test), values are applied at once.
    """

    def __init__(self) -> None:
        self._counts: dict[tuple, float] = {}
        self._observed: dict[tuple, list] = {}  # (histogram, labels) -> [per-bucket counts, sum]
        self._turn = OncePerTurn(self.flush)

    def count(self, metric, labels: tuple, amount: float = 1.0) -> None:
        key = (metric, labels)
        self._counts[key] = self._counts.get(key, 0.0) + amount
        self._schedule()

    def observe(self, histogram, labels: tuple, value: float) -> None:
        key = (histogram, labels)
        seen = self._observed.get(key)
        if seen is None:
            seen = self._observed[key] = [[0] * len(_bounds(histogram)), 0.0]
        seen[0][bisect_left(_bounds(histogram), value)] += 1
        seen[1] += value
        self._schedule()

    def _schedule(self) -> None:
        if not self._turn.schedule():
            self.flush()

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        observed, self._observed = self._observed, {}
        for (metric, labels), amount in counts.items():
            (child(metric, *labels) if labels else metric).inc(amount)
        for (histogram, labels), (buckets, total) in observed.items():
            series = child(histogram, *labels) if labels else histogram
            # prometheus_client keeps per-bucket values (not cumulative) and a sum; ``observe``
            # adds one to a bucket and the value to the sum, as this does in bulk.
            for index, number in enumerate(buckets):
                if number:
                    series._buckets[index].inc(number)
            series._sum.inc(total)


_BOUNDS: dict[object, tuple[float, ...]] = {}


def _bounds(histogram) -> tuple[float, ...]:
    found = _BOUNDS.get(histogram)
    if found is None:
        found = _BOUNDS[histogram] = tuple(histogram._upper_bounds)
    return found


tally = Tally()
count = tally.count
observe = tally.observe
CACHE_LOOKUPS = Counter("coo_llm_cache_requests_total", "Chat requests by response-cache result: hit, miss or bypass.", ["result"])
CACHE_SAVED = Counter("coo_llm_cache_saved_usd_total", "USD not spent because the answer came from the cache.", ["provider", "model"])
QUEUE_DEPTH = Gauge(
    "coo_llm_queue_depth", "Jobs in the queue by state: ready (due now), deferred (due later), in_progress.",
    ["state"], multiprocess_mode="mostrecent",
)
JOBS = Counter("coo_llm_jobs_total", "Background jobs finished, by function and outcome.", ["function", "outcome"])
JOB_LATENCY = Histogram("coo_llm_job_duration_seconds", "Run time of background jobs.", ["function"], buckets=LATENCY_BUCKETS)
# The two above count the jobs run by this process. With arq the jobs run in worker processes, so
# web processes also publish every worker's totals, read from Redis when /metrics is scraped.
QUEUE_JOBS = Gauge(
    "coo_llm_queue_jobs_finished", "Jobs finished by all workers (from Redis), by function and outcome.",
    ["function", "outcome"], multiprocess_mode="mostrecent",
)
QUEUE_JOB_SECONDS = Gauge(
    "coo_llm_queue_job_seconds", "Total run time of jobs finished by all workers (from Redis), by function.",
    ["function"], multiprocess_mode="mostrecent",
)
DEFERRED = Counter(
    "coo_llm_deferred_requests_total",
    "Requests handed to the queue-backed retry, by result: completed, failed, timed_out or not_queued.", ["result"],
)


def store_state_changed(degraded: bool) -> None:
    """``storage.open_store``'s ``on_state`` hook."""
    STORE_DEGRADED.set(1 if degraded else 0)
    if degraded:
        STORE_FALLBACKS.inc()


def render() -> tuple[bytes, str]:
    """The exposition text for ``/metrics`` (merged across processes in multiprocess mode)."""
    tally.flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
