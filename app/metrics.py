"""Every Prometheus metric, declared once.

Label values are provider ids, masked key ids (``openai#2``), configured model names and
statuses: bounded sets, and never a secret. A model the client invented is never a label
(requests that fail before routing use ``model=""``). ``labels()`` children are cached, because
resolving them is a measurable part of the hot path.

With ``serve --workers N`` each process writes its own files under ``PROMETHEUS_MULTIPROC_DIR``
and ``/metrics`` merges them (set up by ``app.cli``).
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

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
    ["provider", "key"], multiprocess_mode="max",
)
NO_CAPACITY = Counter("coo_llm_no_capacity_total", "Requests refused because no key had room.", ["model"])
INFLIGHT = Gauge("coo_llm_inflight_requests", "Requests being handled now.", multiprocess_mode="livesum")
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


def render() -> tuple[bytes, str]:
    """The exposition text for ``/metrics`` (merged across processes in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
