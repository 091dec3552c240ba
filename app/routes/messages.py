"""``/v1/messages`` and ``/v1/messages/count_tokens``: Anthropic Messages, as the ``anthropic``
SDKs and Claude Code send them (``ANTHROPIC_BASE_URL`` pointed at the gateway).

Authentication is the same client keys, sent as ``x-api-key`` or ``Authorization: Bearer``.
Errors on these routes come in Anthropic's shape (``app.server`` renders them). The request goes
through the service like any other (``app.endpoints.messages``): natively to Anthropic
providers, translated to the others.
"""

from __future__ import annotations

import re

from sanic import Blueprint, Request
from sanic.response import json

from adapters import AdapterError
from adapters.messages import count_tokens_estimate, messages_request_to_chat
from adapters.shapes import random_hex
from app.calls import Call, hub_call
from app.endpoints import MESSAGES
from app.endpoints.messages import FORWARDED_HEADERS
from app.errors import InvalidRequest
from app.inbound import check_nesting, parse_json_object
from app.routes.respond import serve_call

bp = Blueprint("messages", url_prefix="/v1")


def messages_call(body: dict, principal, headers) -> Call:
    """The ``Call`` for a Messages request (a 400 naming the field for anything malformed)."""
    check_nesting(body)  # an Anthropic provider gets the body whole: the limit chat has, for every target
    try:
        chat = messages_request_to_chat(body, provider_kind="openai")  # validates, and sizes the prompt
    except AdapterError as error:
        raise InvalidRequest(error.message, param=error.param, code=error.code) from None
    return hub_call(
        MESSAGES, body, chat, principal, forward_headers=forwarded_headers(headers), extra={"id": "msg_" + random_hex(12)}
    )


_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")


def forwarded_headers(headers) -> dict[str, str]:
    """The client's ``FORWARDED_HEADERS`` for a native Anthropic call. A value that is not
    printable ASCII cannot go upstream (the HTTP client refuses control characters, and the
    attempt would fail as if the upstream had): a 400 naming the header."""
    out = {}
    for name in FORWARDED_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        if not _HEADER_VALUE.fullmatch(value):
            raise InvalidRequest(f"The '{name}' header must be printable ASCII.", param=name, code="invalid_value")
        out[name] = value
    return out


@bp.post("/messages")
async def create_message(request: Request):
    return await serve_call(request, messages_call(parse_json_object(request.body), request.ctx.principal, request.headers))


@bp.post("/messages/count_tokens")
async def count_tokens(request: Request):
    """The prompt's size as the gateway reserves it (about four characters a token, whatever the
    provider): no upstream call, so it costs no key's window. The model must be one the client
    may use."""
    body = parse_json_object(request.body)
    check_nesting(body)
    try:
        tokens = count_tokens_estimate(body)
    except AdapterError as error:
        raise InvalidRequest(error.message, param=error.param, code=error.code) from None
    request.app.ctx.service.targets(body["model"], request.ctx.principal)
    return json({"input_tokens": tokens})
