"""Client keys managed at run time: their documents in the runtime store, and each process's index.

Stored (storage contract 8 documents, contract 9 counters):

- ``clients`` / ``<id>``: the client document (``client_document``): id (``cl_`` + 16 hex
  digits), name, the SHA-256 ``digest`` of its key (the key itself is never stored), the key's last
  4 characters (``key_hint``), allowed providers and models, limits, budgets, expiry, cache
  namespace, metadata, created / updated / revoked times (unix seconds). Revoking keeps the
  document (``revoked: true``), so a revoked key is told so and the client still shows in reports.
- ``client_keys`` / ``<digest hex>``: ``{"id": <client id>}``, to find a client by its key.
- ``clients:version``: a counter set whose field ``v`` grows by one with every change.

``ClientDirectory`` is each web process's view of them. It reads every client document once at
start, then polls ``clients:version`` every ``POLL_INTERVAL`` seconds (one small store call, off
the request path) and reads the documents again when the version moved (and at least every
``FULL_RELOAD`` seconds). So authenticating a runtime key is a dictionary hit on its digest; a
change made through any process's admin API takes effect on every process sharing the store
within one poll plus one read (the process that made it reloads at once). A digest not in the
index is looked up in the store (two document reads), so a key created a moment ago on another
process works at once. Expiry is checked on every request against the clock, so it needs no
propagation.

``ClientInput`` / ``ClientChange`` validate the admin API's bodies (strict JSON types, unknown
fields refused); ``client_view`` is what the admin API shows, with ``spend`` from
``spend_of``.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from datetime import datetime, timezone
from typing import Any, Callable

import orjson
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.auth import Principal, rules_from
from app.config import ClientBudgets, ClientLimits, described_errors
from app.errors import InvalidRequest, StorageUnavailable
from app.governance import Period, spend_name
from storage.usage import plan_buckets

CLIENTS = "clients"
CLIENT_KEYS = "client_keys"
VERSION = "clients:version"
KEY_PREFIX = "sk-coo-"
POLL_INTERVAL = 0.25  # seconds between version polls in each process
FULL_RELOAD = 30.0  # read every document again at least this often, whatever the version says
METADATA_MAX_BYTES = 16 * 1024


def new_key() -> str:
    """A client secret: ``sk-coo-`` and 43 random URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_client_id() -> str:
    return "cl_" + secrets.token_hex(8)


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


# ---------------------------------------------------------------------------------- admin input


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ClientChange(_Input):
    """``PATCH /admin/v1/clients/{id}``: every field optional; ``limits``, ``budgets`` and
    ``metadata`` merge into what is stored (a field set to null is removed), the others replace."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    allowed_providers: list[str] | None = Field(default=None, min_length=1)
    allowed_models: list[str] | None = Field(default=None, min_length=1)
    limits: ClientLimits | None = None
    budgets: ClientBudgets | None = None
    expires_at: datetime | None = None
    cache_namespace: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: dict[str, Any] | None = None


class ClientInput(ClientChange):
    """``POST /admin/v1/clients``: ``name`` is required; ``allowed_providers`` defaults to ``["*"]``."""

    name: str = Field(min_length=1, max_length=200)


def _code(kind: str) -> str:
    if kind == "extra_forbidden":
        return "unknown_parameter"
    if kind == "missing":
        return "missing_required_parameter"
    return "invalid_type" if kind.endswith("_type") else "invalid_value"


def parse_input(raw: bytes, model: type[ClientChange], *, providers: set[str], now: float) -> ClientChange:
    """Validate an admin body; ``InvalidRequest`` (400) names the first bad field in ``param``."""
    try:
        data = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        raise InvalidRequest("We could not parse the JSON body of your request.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    try:
        parsed = model.model_validate_json(raw, strict=True)
    except ValidationError as error:
        kind = error.errors()[0]["type"]
        path, reason = described_errors(error)[0]
        raise InvalidRequest(f"Invalid client: {path}: {reason}.", param=path, code=_code(kind)) from None
    for index, name in enumerate(parsed.allowed_providers or ()):
        if name != "*" and name not in providers:
            raise InvalidRequest(f"Invalid client: allowed_providers[{index}]: unknown provider {name!r}.", param=f"allowed_providers[{index}]", code="invalid_value")
    for index, name in enumerate(parsed.allowed_models or ()):
        if not name:
            raise InvalidRequest(f"Invalid client: allowed_models[{index}]: is empty.", param=f"allowed_models[{index}]", code="invalid_value")
    if parsed.expires_at is not None and _seconds(parsed.expires_at) <= now:
        raise InvalidRequest("Invalid client: expires_at: must be in the future.", param="expires_at", code="invalid_value")
    for name in sorted(parsed.model_fields_set):  # stored as JSON: an integer past 64 bits was a 500 (or a 503 from the store)
        try:
            orjson.dumps(parsed.model_dump(mode="json", include={name}))
        except TypeError:
            raise InvalidRequest(f"Invalid client: {name}: holds an integer JSON cannot store (past 64 bits).", param=name, code="invalid_value") from None
    if parsed.metadata is not None and len(orjson.dumps(parsed.metadata)) > METADATA_MAX_BYTES:
        raise InvalidRequest(f"Invalid client: metadata: must be at most {METADATA_MAX_BYTES} bytes of JSON.", param="metadata", code="invalid_value")
    return parsed


def _seconds(moment: datetime) -> float:
    """Unix seconds; a date-time without an offset is UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _providers(values: list[str] | None) -> list[str]:
    return ["*"] if values is None or "*" in values else list(dict.fromkeys(values))


def _set_fields(model: BaseModel | None) -> dict:
    return {} if model is None else {name: getattr(model, name) for name in model.model_fields_set}


# ---------------------------------------------------------------------------------- documents


def client_document(spec: ClientInput, *, client_id: str, key: str, now: float) -> dict:
    """The stored form of a new client (see the module docstring)."""
    return {
        "id": client_id,
        "name": spec.name,
        "digest": key_digest(key).hex(),
        "key_hint": key[-4:],
        "allowed_providers": _providers(spec.allowed_providers),
        "allowed_models": None if spec.allowed_models is None else list(dict.fromkeys(spec.allowed_models)),
        "limits": {k: v for k, v in _set_fields(spec.limits).items() if v is not None},
        "budgets": {k: v for k, v in _set_fields(spec.budgets).items() if v is not None},
        "expires_at": None if spec.expires_at is None else _seconds(spec.expires_at),
        "cache_namespace": spec.cache_namespace,
        "metadata": spec.metadata or {},
        "created_at": now,
        "updated_at": now,
        "revoked": False,
        "revoked_at": None,
    }


def changed_document(doc: dict, change: ClientChange, *, now: float) -> dict:
    """``doc`` with ``change`` applied (``ClientChange`` says how each field merges)."""
    given = change.model_fields_set
    out = dict(doc)
    for name in ("name", "cache_namespace"):
        if name in given:
            out[name] = getattr(change, name)
    if out["name"] is None:
        raise InvalidRequest("Invalid client: name: may not be null.", param="name", code="invalid_value")
    if "allowed_providers" in given:
        out["allowed_providers"] = _providers(change.allowed_providers)
    if "allowed_models" in given:
        out["allowed_models"] = None if change.allowed_models is None else list(dict.fromkeys(change.allowed_models))
    if "expires_at" in given:
        out["expires_at"] = None if change.expires_at is None else _seconds(change.expires_at)
    for name in ("limits", "budgets", "metadata"):
        if name not in given:
            continue
        value = getattr(change, name)
        if value is None:
            out[name] = {}
            continue
        merged = dict(doc.get(name) or {})
        merged.update(value if isinstance(value, dict) else _set_fields(value))
        out[name] = {k: v for k, v in merged.items() if v is not None}
    out["updated_at"] = now
    return out


def principal_of(doc: dict) -> Principal:
    """Whom a runtime client's key authenticates as."""
    providers = doc.get("allowed_providers") or ["*"]
    models = doc.get("allowed_models")
    return Principal(
        doc["id"],
        doc.get("name", ""),
        None if "*" in providers else frozenset(providers),
        models=None if models is None else frozenset(models),
        rules=rules_from(ClientLimits(**doc.get("limits") or {}), ClientBudgets(**doc.get("budgets") or {})),
        expires_at=doc.get("expires_at"),
        revoked=bool(doc.get("revoked")),
        cache_namespace=doc.get("cache_namespace"),
    )


EMPTY_SPEND = {"usd_today": 0.0, "usd_this_month": 0.0, "requests_today": 0, "tokens_today": 0}


def client_view(doc: dict, spend: dict | None = None) -> dict:
    """A client as the admin API shows it: never its digest, its key only as ``key_hint``."""
    return {
        "object": "client",
        "id": doc["id"],
        "name": doc["name"],
        "key_hint": doc["key_hint"],
        "allowed_providers": doc["allowed_providers"],
        "allowed_models": doc["allowed_models"],
        "limits": {"req_per_min": None, "tokens_per_min": None, **doc["limits"]},
        "budgets": {"usd_per_day": None, "usd_per_month": None, **doc["budgets"]},
        "created_at": _iso(doc["created_at"]),
        "updated_at": _iso(doc["updated_at"]),
        "expires_at": _iso(doc["expires_at"]),
        "revoked": doc["revoked"],
        "revoked_at": _iso(doc["revoked_at"]),
        "cache_namespace": doc["cache_namespace"],
        "metadata": doc["metadata"],
        "spend": spend or dict(EMPTY_SPEND),
    }


async def spend_of(store, principals: list[Principal], *, now: float) -> dict[str, dict]:
    """Each principal's spend today and this month (UTC). Clients with limits or budgets are
    counted live by ``app.governance`` (in-flight reservations included); the others cost nothing
    per request, so theirs comes from the usage roll-ups (which trail by up to ``workers.rollup_every``)."""
    period = Period.of(now)
    out: dict[str, dict] = {}
    governed = [p for p in principals if p.rules is not None]
    counted = await asyncio.gather(*(store.counters_get(spend_name(p.id)) for p in governed))
    for principal, values in zip(governed, counted):
        out[principal.id] = {
            "usd_today": round(values.get(period.usd_day, 0.0), 10),
            "usd_this_month": round(values.get(period.usd_month, 0.0), 10),
            "requests_today": int(values.get(period.requests_day, 0)),
            "tokens_today": int(values.get(period.tokens_day, 0)),
        }
    rest = {p.id for p in principals if p.rules is None}
    if rest:
        day_start = period.day_ends - 86400
        month_start = datetime.fromtimestamp(now, timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
        today = await store.rollup_rows(plan_buckets(day_start, now))
        month = await store.rollup_rows(plan_buckets(month_start, now))
        for client_id in rest:
            out[client_id] = dict(EMPTY_SPEND)
        for dims, totals in today:
            if dims[0] in rest:
                spend = out[dims[0]]
                spend["usd_today"] += totals.get("cost_usd", 0.0)
                spend["requests_today"] += int(totals.get("requests", 0))
                spend["tokens_today"] += int(totals.get("prompt_tokens", 0) + totals.get("completion_tokens", 0))
        for dims, totals in month:
            if dims[0] in rest:
                out[dims[0]]["usd_this_month"] += totals.get("cost_usd", 0.0)
        for client_id in rest:
            out[client_id]["usd_today"] = round(out[client_id]["usd_today"], 10)
            out[client_id]["usd_this_month"] = round(out[client_id]["usd_this_month"], 10)
    return out


# ---------------------------------------------------------------------------------- the per-process index


class ClientDirectory:
    """See the module docstring. ``find`` and ``empty`` never touch the store."""

    def __init__(self, store, *, poll_interval: float = POLL_INTERVAL, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self._clock = clock
        self._by_digest: dict[bytes, tuple[bytes, Principal]] = {}
        self._names: dict[str, str] = {}
        self._version: float | None = None
        self._loaded_at = 0.0
        self.loaded = False
        self.reloads = 0
        self._listeners: list[Callable[[], None]] = []
        self._task: asyncio.Task | None = None
        self._failing = False

    @property
    def empty(self) -> bool:
        """True once loaded with no client at all (until the first load nobody knows: not empty)."""
        return self.loaded and not self._by_digest

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after each reload (the authenticator forgets what it accepted)."""
        self._listeners.append(listener)

    def find(self, digest: bytes) -> tuple[bytes, Principal] | None:
        return self._by_digest.get(digest)

    def names(self) -> dict[str, str]:
        """Client id -> name, for reports."""
        return dict(self._names)

    async def look_up(self, digest: bytes) -> tuple[bytes, Principal] | None:
        """A client by its key digest from the store (not yet in the index); ``StorageUnavailable``."""
        now = self._clock()
        try:
            ref = await self.store.doc_get(CLIENT_KEYS, digest.hex(), now=now)
            doc = await self.store.doc_get(CLIENTS, ref["id"], now=now) if ref else None
        except Exception as error:
            raise StorageUnavailable(error) from None
        if doc is None or doc.get("digest") != digest.hex():
            return None
        entry = (digest, principal_of(doc))
        self._by_digest[digest] = entry
        self._names[doc["id"]] = doc.get("name", "")
        return entry

    async def _read_version(self) -> float:
        return (await self.store.counters_get(VERSION)).get("v", 0.0)

    async def reload(self, version: float | None = None) -> None:
        """Read every client document again and swap the index."""
        if version is None:
            version = await self._read_version()
        docs = await self.store.doc_list(CLIENTS, now=self._clock())
        index: dict[bytes, tuple[bytes, Principal]] = {}
        names: dict[str, str] = {}
        for doc in docs:
            try:
                digest = bytes.fromhex(doc["digest"])
                index[digest] = (digest, principal_of(doc))
                names[doc["id"]] = doc.get("name", "")
            except Exception as error:  # one bad document must not lock every client out
                logger.warning("unreadable client document skipped", client=doc.get("id"), error=repr(error))
        self._by_digest, self._names = index, names
        self._version, self._loaded_at = version, time.monotonic()
        self.loaded = True
        self.reloads += 1
        for listener in self._listeners:
            listener()

    async def changed(self) -> None:
        """After this process changed a client: move the version (every process reloads), reload here now."""
        try:
            await self.store.counters_add(VERSION, {"v": 1})
            await self.reload()
        except Exception as error:
            raise StorageUnavailable(error) from None

    async def start(self) -> None:
        """Load once (a failure is logged and retried by the poll), then poll in the background."""
        await self._poll_once()
        self._task = asyncio.get_running_loop().create_task(self._poll_forever())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            await self._poll_once()

    async def _poll_once(self) -> None:
        try:
            version = await self._read_version()
            if not self.loaded or version != self._version or time.monotonic() - self._loaded_at > FULL_RELOAD:
                await self.reload(version)
        except Exception as error:
            if not self._failing:
                logger.warning("runtime clients could not be read; keeping the last known ones", error=repr(error))
            self._failing = True
            return
        if self._failing:
            logger.info("runtime clients readable again")
            self._failing = False
