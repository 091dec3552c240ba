"""``POST /v1/chat/completions``: the typed body (``app.inbound``) becomes a ``Call`` for the
service; the answer is rendered as JSON or SSE.

Only the fields the gateway reads or translates are checked: every other parameter travels
upstream untouched, and the upstream judges it.
"""

from __future__ import annotations

from sanic import Blueprint, Request

from app.calls import Call
from app.endpoints import CHAT
from app.inbound import parse_chat_request
from app.routes.respond import serve_call

bp = Blueprint("chat", url_prefix="/v1")


def chat_call(raw: bytes, principal) -> Call:
    """The ``Call`` for a chat request body; ``InvalidRequest`` naming the parameter otherwise."""
    chat = parse_chat_request(raw)
    return Call(
        endpoint=CHAT,
        body=chat.body,
        model=chat.model,
        principal=principal,
        stream=chat.stream,
        include_usage=chat.include_usage,
        max_tokens=chat.max_tokens,
        prompt_tokens=chat.prompt_tokens,
    )


@bp.post("/chat/completions")
async def chat_completions(request: Request):
    return await serve_call(request, chat_call(request.body, request.ctx.principal))
