"""Batches (``/v1/batches``): OpenAI's Batch API, run by the gateway's own workers.

A batch's life, in OpenAI's statuses:

1. ``validating``: ``Batches.create`` stores it. A pump (``workers.batch_pump``, in every
   ``coo-llm worker``, or in the web process without Redis) reads the input file and checks every
   line (``app.batch_input.validate_lines``): any problem ends it ``failed`` with ``errors``
   naming the lines.
2. ``in_progress``: every pump runs its lines through the same ``Service`` as live requests,
   leaving ``batches.headroom`` of each key window to live traffic (``workers.batch_lines``).
3. ``finalizing`` then ``completed``: the output and error files are written
   (``workers.batch_finish``). ``cancelling`` (``cancel``) ends ``cancelled`` and the end of
   ``completion_window`` ends ``expired``: lines already answered keep their results, the others
   get an error line (``batch_cancelled`` / ``batch_expired``).

Everything lives in the runtime store, so any number of processes share one batch:

- documents ``batches``: ``{"batch": the Batch object as last written, "owner" (its
  ``Principal.id``; each line runs as the owner is when it runs: ``owner_principal``),
  "output_expires"}``; documents ``batches_active``: the ids of unfinished batches (what pumps poll);
- counters ``batch:<id>`` (``progress_name``): ``next`` (lines handed out), ``completed``,
  ``failed``, ``cancel_at``; counters ``batch:<id>:lines`` (``lines_name``): the stop flags
  ``cancel`` and ``expired`` and, per line i, ``x<i>``: execution rounds started;
- documents ``batch_results:<id>`` (``results_collection``): one per line that has its result;
- documents ``batch_pumps`` (``PUMPS``): the heartbeat of every live pump;
- claims ``batch:<id>:line:<i>:<generation>`` (who runs a line), ``...:validate``, ``...:final``.

While a batch runs, its Batch object is the stored one with the live counts (``present``): the
counters' ``completed`` and ``failed``, and ``cancelling`` once a cancel was asked for.

A client sees only its own batches (owner = ``Principal.id``); another's is a 404.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from app.auth import ANONYMOUS, Principal, client_key_id, principal_for
from app.batch_input import BATCH_ENDPOINTS
from app.clients import CLIENTS, principal_of
from app.config import parse_duration
from app.errors import AuthenticationFailed, InvalidRequest, NotFound
from app.files import EXPIRES_MAX, EXPIRES_MIN, FileStore, list_page

BATCHES = "batches"
ACTIVE = "batches_active"
PUMPS = "batch_pumps"  # heartbeat documents, one per live pump (``workers.batch_pump``)
RUNNING = ("validating", "in_progress", "finalizing")
MAX_WINDOW = 86400.0  # OpenAI's only completion_window is 24h; shorter durations are accepted too
METADATA_KEYS, METADATA_KEY_CHARS, METADATA_VALUE_CHARS = 16, 64, 512
LIST_LIMIT_MAX = 100


def progress_name(batch_id: str) -> str:
    return f"batch:{batch_id}"


def lines_name(batch_id: str) -> str:
    return f"batch:{batch_id}:lines"


def results_collection(batch_id: str) -> str:
    return f"batch_results:{batch_id}"


def counters_ttl(doc: dict, now: float) -> float:
    """How long a batch's counters are kept after their last change: its window, and a day more."""
    return max(60.0, doc["batch"]["expires_at"] - now) + 86400.0


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """A checked ``POST /v1/batches`` body."""

    input_file_id: str
    endpoint: str
    completion_window: str
    window: float  # seconds
    metadata: dict | None
    output_expires: float | None


def _required_string(body: dict, name: str) -> str:
    value = body.get(name)
    if value is None:
        raise InvalidRequest(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"'{name}' must be a non-empty string.", param=name, code="invalid_type")
    return value


def check_metadata(value) -> dict | None:
    """OpenAI's metadata: at most 16 string pairs, keys up to 64 characters, values up to 512."""
    if value is None:
        return None
    ok = (
        isinstance(value, dict)
        and len(value) <= METADATA_KEYS
        and all(isinstance(k, str) and len(k) <= METADATA_KEY_CHARS and isinstance(v, str) and len(v) <= METADATA_VALUE_CHARS for k, v in value.items())
    )
    if not ok:
        raise InvalidRequest(
            f"'metadata' must map at most {METADATA_KEYS} string keys (up to {METADATA_KEY_CHARS} characters) to strings (up to {METADATA_VALUE_CHARS}).",
            param="metadata",
            code="invalid_value",
        )
    return value


def parse_create(body: dict) -> BatchRequest:
    """Check a create-batch body; ``InvalidRequest`` naming the parameter."""
    input_file_id = _required_string(body, "input_file_id")
    endpoint = _required_string(body, "endpoint")
    if endpoint not in BATCH_ENDPOINTS:
        raise InvalidRequest(f"'endpoint' must be one of {', '.join(BATCH_ENDPOINTS)}.", param="endpoint", code="invalid_value")
    label = _required_string(body, "completion_window")
    try:
        window = parse_duration(label)
    except ValueError:
        window = 0.0
    if not 0 < window <= MAX_WINDOW:
        raise InvalidRequest("'completion_window' must be '24h' (or a shorter duration such as '1h').", param="completion_window", code="invalid_value")
    expires = body.get("output_expires_after")
    output_expires = None
    if expires is not None:
        seconds = expires.get("seconds") if isinstance(expires, dict) else None
        if not (isinstance(expires, dict) and expires.get("anchor") == "created_at" and isinstance(seconds, int) and EXPIRES_MIN <= seconds <= EXPIRES_MAX):
            raise InvalidRequest(
                f"'output_expires_after' must be {{\"anchor\": \"created_at\", \"seconds\": {EXPIRES_MIN}..{EXPIRES_MAX}}}.", param="output_expires_after", code="invalid_value"
            )
        output_expires = float(seconds)
    return BatchRequest(input_file_id, endpoint, label, window, check_metadata(body.get("metadata")), output_expires)


async def owner_principal(settings, store, owner: str) -> Principal:
    """Whom the batch's owner authenticates as now: a config key, a runtime client (``app.clients``)
    or, on an open gateway, ``ANONYMOUS``; ``AuthenticationFailed`` (401) as its key would get
    when it was removed, revoked or has expired."""
    if owner == ANONYMOUS.id:
        return ANONYMOUS
    for client in settings.api_keys:
        if client_key_id(client.key) == owner:
            return principal_for(client)
    doc = await store.doc_get(CLIENTS, owner, now=time.time())
    if doc is None:
        raise AuthenticationFailed("The API key that created this batch no longer exists.", code="invalid_api_key")
    principal = principal_of(doc)
    if principal.revoked:
        raise AuthenticationFailed("The API key that created this batch has been revoked.", code="api_key_revoked")
    if principal.expires_at is not None and time.time() >= principal.expires_at:
        raise AuthenticationFailed("The API key that created this batch has expired.", code="api_key_expired")
    return principal


def new_batch_id() -> str:
    return "batch_" + secrets.token_hex(12)


def present(doc: dict, progress: dict[str, float]) -> dict:
    """The Batch object a client sees: the stored one, with the live counts while it runs, without
    the fields that have no value (yet)."""
    batch = dict(doc["batch"])
    if batch["status"] in RUNNING:
        total = batch["request_counts"]["total"]
        batch["request_counts"] = {
            "total": total,
            "completed": min(total, int(progress.get("completed", 0))),
            "failed": min(total, int(progress.get("failed", 0))),
        }
        if progress.get("cancel_at"):
            batch["status"], batch["cancelling_at"] = "cancelling", int(progress["cancel_at"])
    # OpenAI's schema types these fields without null: a field with no value yet is left out.
    return {key: value for key, value in batch.items() if value is not None or key == "metadata"}


class Batches:
    """Creating, reading and cancelling batches for their owners (the routes' side)."""

    def __init__(self, settings, store, files: FileStore) -> None:
        self.settings = settings
        self.store = store
        self.files = files

    async def create(self, principal, request: BatchRequest) -> dict:
        source = await self.files.find(principal.id, request.input_file_id, param="input_file_id")
        if source["purpose"] != "batch":
            raise InvalidRequest("The input file must have been uploaded with purpose 'batch'.", param="input_file_id", code="invalid_value")
        now = time.time()
        batch_id = new_batch_id()
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": request.endpoint,
            "errors": None,
            "input_file_id": request.input_file_id,
            "completion_window": request.completion_window,
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(now),
            "in_progress_at": None,
            "expires_at": int(now + request.window),
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": request.metadata,
        }
        doc = {"batch": batch, "owner": principal.id, "output_expires": request.output_expires}
        await self.store.doc_put(BATCHES, batch_id, doc, now=now)
        await self.store.doc_put(ACTIVE, batch_id, {"id": batch_id}, now=now)
        return present({"batch": batch}, {})

    async def find(self, owner: str, batch_id: str) -> dict:
        doc = await self.store.doc_get(BATCHES, batch_id, now=time.time())
        if doc is None or doc["owner"] != owner:
            raise NotFound(f"No such Batch object: {batch_id}", param="batch_id")
        return doc

    async def view(self, doc: dict) -> dict:
        progress = await self.store.counters_get(progress_name(doc["batch"]["id"])) if doc["batch"]["status"] in RUNNING else {}
        return present(doc, progress)

    async def retrieve(self, owner: str, batch_id: str) -> dict:
        return await self.view(await self.find(owner, batch_id))

    async def list(self, owner: str, *, after: str | None, limit: int) -> dict:
        """The owner's batches, newest first, ``limit`` of them after the batch ``after``."""
        docs = [d for d in await self.store.doc_list(BATCHES, now=time.time()) if d["owner"] == owner]
        docs.sort(key=lambda d: (d["batch"]["created_at"], d["batch"]["id"]), reverse=True)
        page = list_page([d["batch"] for d in docs], after=after, limit=limit)
        by_id = {d["batch"]["id"]: d for d in docs}
        page["data"] = [await self.view(by_id[batch["id"]]) for batch in page["data"]]
        return page

    async def cancel(self, owner: str, batch_id: str) -> dict:
        """Ask a running batch to stop: no line starts after this; it ends ``cancelled``."""
        doc = await self.find(owner, batch_id)
        status = doc["batch"]["status"]
        if status not in ("validating", "in_progress"):
            raise InvalidRequest(f"Cannot cancel a batch with status '{status}'.", param="batch_id", code="invalid_state", status=409)
        now = time.time()
        ttl = counters_ttl(doc, now)
        # The stop flag first: from then on no line starts (``workers.batch_lines`` checks it
        # atomically); then the time shown as cancelling_at, set once.
        await self.store.counters_add(lines_name(batch_id), {"cancel": 1}, limits={"cancel": 1}, ttl=ttl)
        await self.store.counters_add(progress_name(batch_id), {"cancel_at": now}, limits={"cancel_at": now}, ttl=ttl)
        return await self.view(doc)

    async def snapshot(self) -> dict:
        """The unfinished batches with their progress, and the live pumps (``GET /admin/v1/queue``)."""
        out = []
        now = time.time()
        for active in await self.store.doc_list(ACTIVE, now=now):
            doc = await self.store.doc_get(BATCHES, active["id"], now=now)
            if doc is None:
                continue
            batch = await self.view(doc)
            out.append({
                "id": batch["id"],
                "owner": doc["owner"],
                "endpoint": batch["endpoint"],
                "status": batch["status"],
                "request_counts": batch["request_counts"],
                "created_at": batch["created_at"],
                "expires_at": batch["expires_at"],
            })
        return {"active": out, "pumps": len(await self.store.doc_list(PUMPS, now=now))}
