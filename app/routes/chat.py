"""``POST /v1/chat/completions``: parse the body into a ``Call``, hand it to the service, render.

The body is parsed with orjson and only the fields the gateway reads are checked: every other
parameter travels upstream untouched, and the upstream judges it.
"""

from __future__ import annotations

import orjson
from sanic import Blueprint, Request

from app.cache import directives_from_headers
from app.calls import Call
from app.endpoints import CHAT
from app.errors import InvalidRequest
from app.routes.respond import json_answer, send_stream
from app.tokens import estimate_prompt_tokens

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
    return chat_call(parse_json_object(raw), principal)


def chat_call(body: dict, principal) -> Call:
    """The ``Call`` of a parsed chat request body (also a batch line's, ``app.batches``)."""
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
        endpoint=CHAT,
        body=body,
        model=model,
        principal=principal,
        stream=bool(stream),
        include_usage=bool(stream and options and options.get("include_usage")),
        max_tokens=max_tokens,
        prompt_tokens=estimate_prompt_tokens(body),
    )


@bp.post("/chat/completions")
async def chat_completions(request: Request):
    call = parse_chat(request.body, request.ctx.principal)
    call.cache = directives_from_headers(request.headers)
    service, record = request.app.ctx.service, request.ctx.record
    if not call.stream:
        call.deferrable = True
        return json_answer((await service.answer(call, record)).body, record)
    await send_stream(request, await service.open_stream(call, record))
