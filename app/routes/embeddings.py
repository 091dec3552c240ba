"""``POST /v1/embeddings``: the typed body (``app.inbound``) becomes a ``Call`` on the same
service path as chat (balancing, limits, failover, cache, queue-backed retries, accounting).
Providers translate the rest: OpenAI-compatible ones pass it through, Gemini maps it to
``batchEmbedContents``, Anthropic (no embeddings) answers 400.
"""

from __future__ import annotations

from sanic import Blueprint, Request

from app.cache import directives_from_headers
from app.calls import Call
from app.endpoints import EMBEDDINGS
from app.inbound import parse_embeddings_request
from app.routes.respond import json_answer

bp = Blueprint("embeddings", url_prefix="/v1")


def embeddings_call(raw: bytes, principal) -> Call:
    """The ``Call`` for an embeddings request body; ``InvalidRequest`` naming the parameter otherwise."""
    request = parse_embeddings_request(raw)
    return Call(endpoint=EMBEDDINGS, body=request.body, model=request.model, principal=principal, max_tokens=0, prompt_tokens=request.prompt_tokens)


@bp.post("/embeddings")
async def create_embeddings(request: Request):
    call = embeddings_call(request.body, request.ctx.principal)
    call.cache = directives_from_headers(request.headers)
    call.deferrable = True
    return json_answer((await request.app.ctx.service.answer(call, request.ctx.record)).body, request.ctx.record)
