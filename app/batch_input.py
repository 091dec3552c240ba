"""A batch's JSONL: its input lines, how they are checked, and the lines of its output files.

Input (OpenAI's ``BatchRequestInput``), one JSON object per line::

    {"custom_id": "q-1", "method": "POST", "url": "/v1/chat/completions", "body": {...}}

``BATCH_ENDPOINTS`` says which ``url``s a batch may run and how a line's ``body`` becomes a
``Call``: with the very function the live route uses (``chat_call``, ``embeddings_call``,
``responses_call``), so a line is checked and routed exactly as the same request sent live.
Serving another endpoint in batches is one entry in that table.

``request_lines(data)`` splits a file into its requests (blank lines skipped, each keeps its line
number). ``validate_lines`` checks, before anything runs, what OpenAI checks then; each problem is
a ``BatchError`` naming the line, and any problem fails the whole batch:

- ``empty_file`` (no request), ``too_many_tasks`` (more than ``batches.max_lines``),
- ``invalid_json_line`` (not a JSON object), ``missing_required_parameter`` (no ``custom_id`` or
  ``body``; ``param`` says which), ``invalid_value`` (``method`` not POST),
- ``duplicate_custom_id``, ``url_mismatch`` (``url`` is not the batch's endpoint),
- ``model_mismatch`` (a batch runs one model: the first line's).

What only the endpoint can judge (a chat body without ``messages``, an unknown model) is not a
validation error: the line runs, fails like the live request would (400, 404) and that answer is
its line in the error file.

Output (OpenAI's ``BatchRequestOutput``): ``answered_line`` for a request that got an HTTP answer
(the output file for 2xx, the error file otherwise), ``unanswered_line`` for one that got none
(expired, cancelled, or interrupted by a worker that died while running it).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Awaitable, Callable

import orjson

from app.auth import Principal
from app.calls import Call
from app.responses_store import ResponseStore
from app.routes.chat import chat_call
from app.routes.embeddings import embeddings_call
from app.routes.responses import responses_call

MAX_ERRORS = 100  # validation errors reported per batch (the first ones)


@dataclass(frozen=True, slots=True)
class BatchEndpoint:
    url: str
    # A line's body -> its Call, as the live route builds it (``InvalidRequest`` as the route would
    # answer); the service is at hand for endpoints that read state (stored responses).
    call: Callable[[dict, Principal, object], Awaitable[Call]]


async def _chat(body: dict, principal: Principal, service) -> Call:
    return chat_call(orjson.dumps(body), principal)  # the route decodes and checks bytes: give it the line's


async def _embeddings(body: dict, principal: Principal, service) -> Call:
    return embeddings_call(orjson.dumps(body), principal)


async def _responses(body: dict, principal: Principal, service) -> Call:
    return await responses_call(body, principal, ResponseStore.of(service))


BATCH_ENDPOINTS: dict[str, BatchEndpoint] = {
    endpoint.url: endpoint
    for endpoint in (
        BatchEndpoint("/v1/chat/completions", _chat),
        BatchEndpoint("/v1/embeddings", _embeddings),
        BatchEndpoint("/v1/responses", _responses),
    )
}


@dataclass(frozen=True, slots=True)
class RequestLine:
    number: int  # 1-based line number in the file
    raw: bytes


def request_lines(data: bytes) -> list[RequestLine]:
    """The file's requests in order: every line that is not blank (a trailing newline is not a request)."""
    return [RequestLine(number, line) for number, line in enumerate(data.split(b"\n"), 1) if line.strip()]


def batch_error(code: str, message: str, *, line: int | None = None, param: str | None = None) -> dict:
    return {"code": code, "message": message, "param": param, "line": line}


def _line_problem(line: RequestLine, url: str, seen: set[str]) -> tuple[dict | None, dict | None]:
    """(the line's request, or None) and (its first problem, or None)."""
    n = line.number
    try:
        request = orjson.loads(line.raw)
    except orjson.JSONDecodeError:
        request = None
    if not isinstance(request, dict):
        return None, batch_error("invalid_json_line", "This line is not parseable as a JSON object.", line=n)
    custom_id = request.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return None, batch_error("missing_required_parameter", "Each line needs a non-empty string custom_id.", line=n, param="custom_id")
    if custom_id in seen:
        return None, batch_error("duplicate_custom_id", f"The custom_id '{custom_id[:64]}' is used by an earlier line; each must be unique.", line=n, param="custom_id")
    seen.add(custom_id)
    if request.get("method") != "POST":
        return None, batch_error("invalid_value", "The method of every line must be POST.", line=n, param="method")
    if request.get("url") != url:
        return None, batch_error("url_mismatch", f"The url of every line must be the batch's endpoint, {url}.", line=n, param="url")
    if not isinstance(request.get("body"), dict):
        return None, batch_error("missing_required_parameter", "Each line needs a JSON object body.", line=n, param="body")
    return request, None


def validate_lines(lines: list[RequestLine], *, url: str, max_lines: int) -> tuple[str | None, list[dict]]:
    """(the batch's model, the ``BatchError``s); the batch may run only when there are none."""
    if not lines:
        return None, [batch_error("empty_file", "The input file has no requests.")]
    if len(lines) > max_lines:
        return None, [batch_error("too_many_tasks", f"The input file has {len(lines)} requests; a batch may have at most {max_lines}.")]
    errors: list[dict] = []
    seen: set[str] = set()
    model: str | None = None
    for line in lines:
        request, problem = _line_problem(line, url, seen)
        if problem is None:
            line_model = request["body"].get("model")
            if isinstance(line_model, str):
                if model is None:
                    model = line_model
                elif line_model != model:
                    problem = batch_error(
                        "model_mismatch", f"Every line of a batch must use the same model ('{model[:64]}' on the first one).", line=line.number, param="body.model"
                    )
        if problem is not None:
            errors.append(problem)
            if len(errors) >= MAX_ERRORS:
                break
    return model, errors


def new_line_id() -> str:
    return "batch_req_" + secrets.token_hex(16)


def answered_line(custom_id: str, *, request_id: str, status: int, body) -> dict:
    """The output (or error-file) line of a request that got an HTTP answer."""
    return {"id": new_line_id(), "custom_id": custom_id, "response": {"status_code": status, "request_id": request_id, "body": body}, "error": None}


def unanswered_line(custom_id: str, *, code: str, message: str) -> dict:
    """The error-file line of a request that got no answer."""
    return {"id": new_line_id(), "custom_id": custom_id, "response": None, "error": {"code": code, "message": message}}


def jsonl(lines: list[dict]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)
