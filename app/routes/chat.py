"""``POST /v1/chat/completions``: parse and check only what routing needs, then dispatch.

The body is parsed with orjson and never validated as a whole: every parameter the gateway does
not use travels upstream untouched, and the upstream judges it.

Order of a request: the response cache (``app.cache``; a hit answers at once, as JSON or replayed
SSE), then dispatch: non-streaming through the ``Deferrer`` (queue-backed retries when
``policy.retry.queue`` is on), streaming straight through ``Dispatcher.open_stream``. Answers are
stored in the cache afterwards.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing

import orjson
from sanic import Blueprint, HTTPResponse, Request

from adapters.sse import DONE_FRAME
from app import metrics
from app.accounting import finish
from app.cache import CACHE_HEADER, ResponseCache, StreamAssembler, replay_frames
from app.dispatch import Call
from app.errors import InvalidRequest

bp = Blueprint("chat", url_prefix="/v1")

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def parse_json_object(raw: bytes) -> dict:
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("We could not parse the JSON body of your request.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return body


def _positive_int(body: dict, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"'{name}' must be a positive integer.", param=name, code="invalid_value")
    return value


def parse_chat(raw: bytes, principal) -> Call:
    """Check the routing-relevant fields of a chat request; raise ``InvalidRequest`` naming the param."""
    body = parse_json_object(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("You must provide a model parameter.", param="model", code="missing_required_parameter" if model is None else "invalid_type")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        code = "missing_required_parameter" if messages is None else "invalid_type"
        raise InvalidRequest("'messages' must be a non-empty array of message objects.", param="messages", code=code)
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{index}] must be an object.", param=f"messages[{index}]", code="invalid_type")
        if message.get("role") not in ROLES:
            raise InvalidRequest(
                f"messages[{index}].role must be one of {', '.join(sorted(ROLES))}.", param=f"messages[{index}].role", code="invalid_value"
            )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean.", param="stream", code="invalid_type")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object.", param="stream_options", code="invalid_type")
    max_tokens = _positive_int(body, "max_completion_tokens") or _positive_int(body, "max_tokens")
    return Call(
        body=body,
        model=model,
        principal=principal,
        stream=bool(stream),
        include_usage=bool(stream and options and options.get("include_usage")),
        max_tokens=max_tokens,
    )


def served_headers(record, cache_result: str | None = None) -> dict[str, str]:
    headers = {
        "x-request-id": record.request_id,
        "x-coo-llm-provider": record.provider,
        "x-coo-llm-key": record.key_id,
        "x-coo-llm-attempts": str(record.attempts),
    }
    if cache_result:
        headers[CACHE_HEADER] = cache_result
    if record.deferred:
        headers["x-coo-llm-deferred"] = record.deferred
    return {name: value for name, value in headers.items() if value}


SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


@bp.post("/chat/completions")
async def chat_completions(request: Request):
    record = request.ctx.record
    call = parse_chat(request.body, request.ctx.principal)
    ctx = request.app.ctx
    plan = ctx.cache.plan(call, ctx.dispatcher.targets(call.model, call.principal), request.headers) if ctx.cache.enabled else None
    hit = await ctx.cache.lookup(plan)
    if hit is not None:
        return await answer_from_cache(request, call, record, hit)
    cache_result = plan.header if plan else None
    if not call.stream:
        result = await ctx.deferrer.chat(call, record)
        record.status = 200
        await ctx.cache.save(plan, result.body, record)
        return HTTPResponse(result.body, status=200, headers=served_headers(record, cache_result), content_type="application/json")

    stream = await ctx.dispatcher.open_stream(call, record)
    record.stream = True
    record.status = 200
    assembler = StreamAssembler() if plan and plan.store else None
    delivered = False
    try:
        response = await request.respond(status=200, headers={**served_headers(record, cache_result), **SSE_HEADERS}, content_type="text/event-stream")
        first = True
        async with aclosing(stream.frames()) as frames:
            async for piece in frames:
                await response.send(piece)
                if assembler:
                    assembler.feed(piece)
                if first:
                    first = False
                    metrics.child(metrics.TIME_TO_FIRST_TOKEN, record.provider).observe(time.perf_counter() - record.started)
                delivered = delivered or piece.endswith(DONE_FRAME)  # the client may hang up from here on
        await response.eof()
    except BaseException:
        if not delivered:
            record.status = 499 if record.error is None else record.status  # the client went away
        raise
    finally:
        # Shielded: a client hanging up right after [DONE] cancels this handler, and the stream must
        # still be settled, cached and accounted, in that order, exactly once.
        wrap_up = asyncio.ensure_future(_wrap_up(stream, record, ctx.cache, plan, assembler if delivered else None))
        _background.add(wrap_up)
        wrap_up.add_done_callback(_background.discard)
        await asyncio.shield(wrap_up)


_background: set[asyncio.Future] = set()


async def _wrap_up(stream, record, cache, plan, assembler: StreamAssembler | None) -> None:
    try:
        await stream.aclose()  # settles the key's windows and charges the record
        if assembler is not None:
            usage = {"prompt_tokens": record.prompt_tokens, "completion_tokens": record.completion_tokens, "total_tokens": record.prompt_tokens + record.completion_tokens}
            body = assembler.completion(usage)
            if body is not None:
                await cache.save(plan, body, record)
    finally:
        finish(record)


async def answer_from_cache(request: Request, call, record, entry):
    """A cache hit: the stored answer as JSON, or replayed as SSE for a stream; it costs nothing."""
    ResponseCache.charge_hit(entry, record)
    record.status = 200
    headers = served_headers(record, "hit")
    if not call.stream:
        return HTTPResponse(entry.body, status=200, headers=headers, content_type="application/json")
    record.stream = True
    try:
        response = await request.respond(status=200, headers={**headers, **SSE_HEADERS}, content_type="text/event-stream")
        for piece in replay_frames(entry.body, include_usage=call.include_usage):
            await response.send(piece)
        await response.eof()
    except BaseException:
        record.status = 499
        raise
    finally:
        finish(record)
