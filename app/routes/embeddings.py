"""``POST /v1/embeddings``: check what routing needs, then the same service path as chat (balancing,
limits, failover, cache, queue-backed retries, accounting). Providers translate the rest:
OpenAI-compatible ones pass it through, Gemini maps it to ``batchEmbedContents``, Anthropic (no
embeddings) answers 400.
"""

from __future__ import annotations

from sanic import Blueprint, Request

from app.cache import directives_from_headers
from app.calls import Call
from app.endpoints import EMBEDDINGS
from app.errors import InvalidRequest
from app.routes.chat import parse_json_object
from app.routes.respond import json_answer
from app.tokens import estimate_embedding_tokens

bp = Blueprint("embeddings", url_prefix="/v1")

ENCODING_FORMATS = ("float", "base64")


def _valid_input(value) -> bool:
    """A string, or a non-empty array of strings, of token ids, or of token-id arrays."""
    if isinstance(value, str):
        return bool(value)
    if not isinstance(value, list) or not value:
        return False
    if all(isinstance(item, str) and item for item in value):
        return True
    if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return True
    return all(
        isinstance(item, list) and item and all(isinstance(t, int) and not isinstance(t, bool) for t in item) for item in value
    )


def parse_embeddings(raw: bytes, principal) -> Call:
    """Check an embeddings request; raise ``InvalidRequest`` naming the param."""
    return embeddings_call(parse_json_object(raw), principal)


def embeddings_call(body: dict, principal) -> Call:
    """The ``Call`` of a parsed embeddings request body (also a batch line's, ``app.batches``)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("You must provide a model parameter.", param="model", code="missing_required_parameter" if model is None else "invalid_type")
    if "input" not in body:
        raise InvalidRequest("You must provide an input parameter.", param="input", code="missing_required_parameter")
    if not _valid_input(body["input"]):
        raise InvalidRequest(
            "'input' must be a non-empty string, or a non-empty array of strings, token ids or token-id arrays.", param="input", code="invalid_value"
        )
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ENCODING_FORMATS:
        raise InvalidRequest("'encoding_format' must be float or base64.", param="encoding_format", code="invalid_value")
    dimensions = body.get("dimensions")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1):
        raise InvalidRequest("'dimensions' must be a positive integer.", param="dimensions", code="invalid_value")
    return Call(endpoint=EMBEDDINGS, body=body, model=model, principal=principal, max_tokens=0, prompt_tokens=estimate_embedding_tokens(body))


@bp.post("/embeddings")
async def create_embeddings(request: Request):
    call = parse_embeddings(request.body, request.ctx.principal)
    call.cache = directives_from_headers(request.headers)
    call.deferrable = True
    return json_answer((await request.app.ctx.service.answer(call, request.ctx.record)).body, request.ctx.record)
