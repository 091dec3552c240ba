"""Rendering what the service answered: JSON with the served headers, or an SSE stream.

Every front door renders the same way; only the body's format differs (the endpoint's).
"""

from __future__ import annotations

from sanic import HTTPResponse, Request

from app.accounting import RequestRecord
from app.cache import CACHE_HEADER

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def served_headers(record: RequestRecord) -> dict[str, str]:
    """Who served the request: provider, masked key, attempts, cache result, queue job."""
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
    return headers


def json_answer(body: bytes, record: RequestRecord) -> HTTPResponse:
    return HTTPResponse(body, status=200, headers=served_headers(record), content_type="application/json")


async def send_stream(request: Request, relay) -> None:
    """Write a ``app.service.Relay`` to the client as ``text/event-stream``; the relay settles itself."""
    async with relay:
        response = await request.respond(status=200, headers={**served_headers(relay.record), **SSE_HEADERS}, content_type="text/event-stream")
        async for piece in relay:
            await response.send(piece)
        await response.eof()
