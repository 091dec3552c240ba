"""``/v1/files``: upload, list, retrieve, download and delete files (``app.files.FileStore``).

``POST /v1/files`` takes the multipart form the OpenAI SDKs send (``file``, ``purpose=batch``,
optionally ``expires_after[anchor]`` / ``expires_after[seconds]``). Its body is read as a stream,
so the upload limit is ``files.max_mb`` (plus room for the form around the file), not
``server.max_body_mb``; a larger upload is a 413 before anything is stored.
"""

from __future__ import annotations

from contextlib import contextmanager

from sanic import Blueprint, HTTPResponse, Request
from sanic.response import json

from app.errors import InvalidRequest, PayloadTooLarge, StorageUnavailable
from app.files import expires_after_seconds, list_page
from storage import StoreUnavailable

bp = Blueprint("files", url_prefix="/v1")

FORM_SLACK = 64 * 1024  # bytes of multipart framing and fields allowed beyond the file itself
FILE_LIST_MAX = 10_000


@contextmanager
def store_errors():
    """The runtime store unreachable: a 503 in the OpenAI envelope, not a traceback."""
    try:
        yield
    except StoreUnavailable as error:
        raise StorageUnavailable(error) from None


def query_limit(request: Request, *, default: int, maximum: int) -> int:
    raw = request.args.get("limit")
    if raw in (None, ""):
        return default
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= maximum:
        raise InvalidRequest(f"'limit' must be a whole number from 1 to {maximum}.", param="limit", code="invalid_value")
    return limit


async def read_upload(request: Request, limit: int) -> bytes:
    """The streamed body, refused with a 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The upload is larger than this gateway accepts ({limit - FORM_SLACK} bytes per file).", param="file")
    chunks, size = [], 0
    while (chunk := await request.stream.read()) is not None:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The upload is larger than this gateway accepts ({limit - FORM_SLACK} bytes per file).", param="file")
        chunks.append(chunk)
    return b"".join(chunks)


@bp.post("/files", stream=True)
async def upload_file(request: Request):
    files = request.app.ctx.files
    request.body = await read_upload(request, files.max_bytes + FORM_SLACK)
    if not request.content_type.startswith("multipart/form-data"):
        raise InvalidRequest("Upload files as multipart/form-data with the fields 'file' and 'purpose'.", param="file", code="invalid_request")
    form, uploads = request.form or {}, request.files or {}
    uploaded = uploads.get("file")
    if uploaded is None:
        raise InvalidRequest("Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
    purpose = form.get("purpose")
    if purpose is None:
        raise InvalidRequest("Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter")
    if purpose != "batch":
        raise InvalidRequest("This gateway keeps files for the Batch API only: 'purpose' must be 'batch'.", param="purpose", code="invalid_value")
    try:
        uploaded.body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("A batch input file must be UTF-8 JSONL.", param="file", code="invalid_file") from None
    expires = expires_after_seconds(form.get("expires_after[anchor]"), form.get("expires_after[seconds]"))
    with store_errors():
        created = await files.create(request.ctx.principal.id, filename=uploaded.name or "upload.jsonl", purpose="batch", data=uploaded.body, expires_after=expires)
    return json(created)


@bp.get("/files")
async def list_files(request: Request):
    order = request.args.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be asc or desc.", param="order", code="invalid_value")
    limit = query_limit(request, default=FILE_LIST_MAX, maximum=FILE_LIST_MAX)
    with store_errors():
        items = await request.app.ctx.files.list(request.ctx.principal.id, purpose=request.args.get("purpose"), order=order)
    return json(list_page(items, after=request.args.get("after"), limit=limit))


@bp.get("/files/<file_id>")
async def retrieve_file(request: Request, file_id: str):
    with store_errors():
        return json(await request.app.ctx.files.get(request.ctx.principal.id, file_id))


@bp.get("/files/<file_id>/content")
async def file_content(request: Request, file_id: str):
    with store_errors():
        data = await request.app.ctx.files.content(request.ctx.principal.id, file_id)
    return HTTPResponse(data, status=200, content_type="application/octet-stream")


@bp.delete("/files/<file_id>")
async def delete_file(request: Request, file_id: str):
    with store_errors():
        return json(await request.app.ctx.files.delete(request.ctx.principal.id, file_id))
