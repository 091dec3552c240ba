"""What one request did, and where that is recorded: metrics, the access log line, usage events.

A ``RequestRecord`` rides on ``request.ctx`` from the first middleware on; dispatch fills in the
provider, key, tokens and cost, and ``finish`` is called exactly once when the client has its
answer (for a stream: when the stream ends).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from app import metrics
from app.logging import info_line


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    route: str = ""
    client: str = ""
    model: str = ""  # the configured model that served it (never a name the client invented)
    provider: str = ""
    key_id: str = ""
    status: int = 0
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    stream: bool = False
    cache_hit: bool = False
    error: str | None = None
    finished: bool = False

    def served_by(self, provider: str, key_id: str, model: str) -> None:
        self.provider, self.key_id, self.model = provider, key_id, model

    def charge(self, prompt_tokens: int, completion_tokens: int, cost: float) -> None:
        self.prompt_tokens, self.completion_tokens, self.cost = prompt_tokens, completion_tokens, cost


def finish(record: RequestRecord) -> None:
    """Record the finished request once: request metrics, token and cost counters, one log line."""
    if record.finished:
        return
    record.finished = True
    metrics.INFLIGHT.dec()
    latency = time.perf_counter() - record.started
    provider, model = record.provider, record.model
    metrics.child(metrics.REQUESTS, provider, model, str(record.status)).inc()
    metrics.child(metrics.REQUEST_LATENCY, provider).observe(latency)
    if record.prompt_tokens or record.completion_tokens:
        metrics.child(metrics.TOKENS, provider, model, "in").inc(record.prompt_tokens)
        metrics.child(metrics.TOKENS, provider, model, "out").inc(record.completion_tokens)
        metrics.child(metrics.COST, provider, model).inc(record.cost)
    fields = {
        "request_id": record.request_id,
        "route": record.route,
        "client": record.client,
        "provider": provider,
        "key_id": record.key_id,
        "model": model,
        "status": record.status,
        "latency_ms": round(latency * 1000, 2),
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cost_usd": round(record.cost, 8),
        "attempts": record.attempts,
        "stream": record.stream,
    }
    if record.cache_hit:
        fields["cache_hit"] = True
    if record.error:
        fields["error"] = record.error
    info_line("request", fields)
