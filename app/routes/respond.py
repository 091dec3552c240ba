"""Rendering what the service answered: JSON with the served headers, or an SSE stream.

Every front door renders the same way; only the body's format differs (the endpoint's).
"""

from __future__ import annotations

from sanic import HTTPResponse, Request
from sanic.helpers import has_message_body

from app.accounting import RateWindow, RequestRecord
from app.cache import CACHE_HEADER, directives_from_headers
from storage.base import WINDOW_SECONDS

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class GatewayResponse(HTTPResponse):
    """An ``HTTPResponse`` whose headers the gateway wrote from values it checked itself (request
    ids matching ``app.server``'s pattern, provider ids and key labels from the config, numbers):
    they skip Sanic's per-header sanitizing, two ``str.translate`` calls and an f-string for
    every header of every answer, which cost more than a tenth of a request's own time."""

    __slots__ = ()

    @property
    def processed_headers(self):
        if has_message_body(self.status):
            self.headers.setdefault("content-type", self.content_type)
        return [(name.encode(), str(value).encode()) for name, value in self.headers.items()]


def served_headers(record: RequestRecord) -> dict[str, str]:
    """Who served the request: provider, masked key, attempts, cache result, queue job; what it
    cost (unary answers, when the price is known); the client's own windows and budget."""
    headers = {"x-request-id": record.request_id}
    if record.provider:
        headers["x-coo-llm-provider"] = record.provider
    if record.key_id:
        headers["x-coo-llm-key"] = record.key_id
    headers["x-coo-llm-attempts"] = str(record.attempts)
    if record.cache_result:
        headers[CACHE_HEADER] = record.cache_result
    if record.deferred:
        headers["x-coo-llm-deferred"] = record.deferred
    if record.cost is not None and not record.stream:
        headers["x-coo-llm-cost-usd"] = usd_text(record.cost)
    if record.ratelimit is not None:
        rate_limit_headers(record.ratelimit, headers)
    if record.budget_remaining is not None:
        headers["x-coo-llm-budget-remaining-usd"] = usd_text(record.budget_remaining)
    return headers


def usd_text(amount: float) -> str:
    """USD as a plain decimal (no exponent), to 1e-10."""
    text = f"{amount:.10f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def duration_text(seconds: float) -> str:
    """A duration the way OpenAI writes ``x-ratelimit-reset-*``: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    rest_text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{rest_text}" if minutes else rest_text


def rate_limit_headers(window: RateWindow, headers: dict[str, str]) -> None:
    """OpenAI's ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` for each limit the client
    has. ``reset`` is the time the window takes to refill what is used at its rate (limit per
    window), as OpenAI means it; a 429's ``Retry-After`` is the exact time until the next request fits."""
    for name, limit, used in (("requests", window.limit_requests, window.requests), ("tokens", window.limit_tokens, window.tokens)):
        if limit is None:
            continue
        used = min(max(0, used), limit)
        headers[f"x-ratelimit-limit-{name}"] = str(limit)
        headers[f"x-ratelimit-remaining-{name}"] = str(limit - used)
        headers[f"x-ratelimit-reset-{name}"] = duration_text(WINDOW_SECONDS * used / limit)


def json_answer(body: bytes, record: RequestRecord) -> HTTPResponse:
    return GatewayResponse(body, status=200, headers=served_headers(record), content_type="application/json")


async def send_stream(request: Request, relay) -> None:
    """Write a ``app.service.Relay`` to the client as ``text/event-stream``; the relay settles itself."""
    async with relay:
        response = await request.respond(status=200, headers={**served_headers(relay.record), **SSE_HEADERS}, content_type="text/event-stream")
        async for piece in relay:
            await response.send(piece)
        await response.eof()


async def serve_call(request: Request, call) -> HTTPResponse | None:
    """Answer a client's ``app.calls.Call`` through the service: JSON, or SSE for a stream (then
    the response is already written). The request's cache headers apply, and a unary call may be
    deferred to the queue when every key is busy."""
    call.cache = directives_from_headers(request.headers)
    service, record = request.app.ctx.service, request.ctx.record
    if not call.stream:
        call.deferrable = True
        return json_answer((await service.answer(call, record)).body, record)
    await send_stream(request, await service.open_stream(call, record))
    return None
