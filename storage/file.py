"""Single-node persistence in one SQLite file (standard library, WAL mode).

What lives where:

- Hot state stays in memory (a ``MemoryStore``): rate windows, in-flight marks, per-minute
  history and claims. After a restart windows start empty, as with ``memory``.
- The usage ledger (events), the roll-ups, key health (cooldowns, failure counts, error and
  latency averages), the response cache, documents (clients, stored responses, files, batches),
  counters (budgets, batch progress) and the recent request records (the admin dashboard's) are
  in SQLite and survive restarts.

Writes are cheap on the request path: usage events and health changes are buffered in memory
and written by a flusher every ``flush_interval`` seconds (0.75 by default) in one transaction;
cache entries are written through. All SQLite work runs on one background thread, never on the
event loop.

Loss bound on ``kill -9``: a committed transaction survives a killed process (WAL with
``synchronous=NORMAL``; only an OS crash or power loss can drop the last commits). So a ``kill -9``
loses exactly the events and health changes recorded since the last completed flush: at most
``flush_interval`` seconds of them, plus those recorded while the final flush was running. A web
process hands usage events over in 0.25 s batches (``app.accounting.UsageSink``), so end to end a
finished request's event is committed within 1 s: a ``kill -9`` loses at most the last second.
Cache entries and roll-ups are never lost (they commit before the call returns).

One process per file: windows are not shared between processes (use ``redis`` for that).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import orjson
from loguru import logger

from storage.base import RECENT_MAX, CacheEntry, KeyState, Refusal, Reservation, WindowLimits
from storage.memory import MemoryStore
from storage.usage import METRICS, RETENTION, Dims, Rollup, UsageEvent

# With the web process's UsageSink (0.25 s batches) an event waits at most 1 s before it commits.
FLUSH_INTERVAL = 0.75

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rollups (
  granularity TEXT NOT NULL, bucket INTEGER NOT NULL,
  client TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, key TEXT NOT NULL,
  {", ".join(f"{m} REAL NOT NULL DEFAULT 0" for m in METRICS)},
  PRIMARY KEY (granularity, bucket, client, provider, model, key)
);
CREATE TABLE IF NOT EXISTS health (
  key_id TEXT PRIMARY KEY, cooldown_until REAL, failures INTEGER, error_rate REAL, latency REAL
);
CREATE TABLE IF NOT EXISTS cache (
  key TEXT PRIMARY KEY, body BLOB NOT NULL, expires_at REAL NOT NULL, hits INTEGER NOT NULL, meta TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_expiry ON cache (expires_at);
CREATE TABLE IF NOT EXISTS docs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, collection TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, expires_at REAL,
  UNIQUE (collection, id)
);
CREATE TABLE IF NOT EXISTS counters (
  name TEXT NOT NULL, field TEXT NOT NULL, value REAL NOT NULL, expires_at REAL, PRIMARY KEY (name, field)
);
CREATE TABLE IF NOT EXISTS recent (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
"""

_UPSERT_ROLLUP = (
    f"INSERT INTO rollups (granularity, bucket, client, provider, model, key, {', '.join(METRICS)}) "
    f"VALUES (?, ?, ?, ?, ?, ?, {', '.join('?' for _ in METRICS)}) "
    f"ON CONFLICT (granularity, bucket, client, provider, model, key) DO UPDATE SET "
    + ", ".join(f"{m} = {m} + excluded.{m}" for m in METRICS)
)


class FileStore:
    name = "file"
    shared = False

    def __init__(self, path: str | Path, *, flush_interval: float = FLUSH_INTERVAL) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.flush_interval = flush_interval
        self._hot = MemoryStore()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coo-sqlite")
        # Opened here, then used only on the executor's one thread (hence check_same_thread off).
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        for key_id, cooldown, failures, error_rate, latency in self._db.execute("SELECT * FROM health"):
            self._hot.restore_health(key_id, cooldown, failures, error_rate, latency)
        self._events: list[UsageEvent] = []
        self._dirty: set[str] = set()
        self._flusher: asyncio.Task | None = None
        self._closed = False

    # ------------------------------------------------------------------ plumbing

    async def _run(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, self._db)

    def _start_flusher(self) -> None:
        if self._flusher is None and not self._closed:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
            except Exception as error:  # keep buffering; the next flush retries
                logger.warning("file store flush failed", path=str(self.path), error=repr(error))

    async def flush(self) -> None:
        """Write buffered events and health changes in one transaction."""
        if not self._events and not self._dirty:
            return
        events, self._events = self._events, []
        health = [(key_id, *self._hot.health_of(key_id)) for key_id in self._dirty]
        self._dirty = set()

        def write(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.executemany("INSERT INTO events (data) VALUES (?)", [(e.dumps(),) for e in events])
                db.executemany("INSERT OR REPLACE INTO health VALUES (?, ?, ?, ?, ?)", health)

        try:
            await self._run(write)
        except BaseException:
            self._events[:0] = events
            self._dirty.update(h[0] for h in health)
            raise

    # ------------------------------------------------------------------ windows and health (memory)

    async def reserve(self, key_id: str, *, tokens: int, limits: WindowLimits, now: float) -> Reservation | Refusal:
        return await self._hot.reserve(key_id, tokens=tokens, limits=limits, now=now)

    async def settle(self, reservation: Reservation, **kwargs: Any) -> int:
        self._dirty.add(reservation.key_id)
        self._start_flusher()
        return await self._hot.settle(reservation, **kwargs)

    async def cool_down(self, key_id: str, until: float) -> None:
        self._dirty.add(key_id)
        self._start_flusher()
        await self._hot.cool_down(key_id, until)

    async def reset_key(self, key_id: str) -> None:
        self._dirty.add(key_id)
        self._start_flusher()
        await self._hot.reset_key(key_id)

    async def key_states(self, key_ids: list[str], *, window: float, now: float) -> dict[str, KeyState]:
        return await self._hot.key_states(key_ids, window=window, now=now)

    async def claim(self, name: str, owner: str, *, ttl: float, now: float) -> str:
        return await self._hot.claim(name, owner, ttl=ttl, now=now)

    async def key_history(self, key_ids: Sequence[str], *, since: float):
        return await self._hot.key_history(key_ids, since=since)

    # ------------------------------------------------------------------ response cache (SQLite)

    async def cache_get(self, key: str, *, now: float) -> CacheEntry | None:
        def get(db: sqlite3.Connection):
            with _transaction(db):
                row = db.execute("SELECT body, expires_at, hits, meta FROM cache WHERE key = ?", (key,)).fetchone()
                if row is None:
                    return None
                if row[1] <= now:
                    db.execute("DELETE FROM cache WHERE key = ?", (key,))
                    return None
                db.execute("UPDATE cache SET hits = hits + 1 WHERE key = ?", (key,))
                return row

        row = await self._run(get)
        if row is None:
            return None
        body, expires_at, hits, meta = row
        return CacheEntry(key, bytes(body), expires_at, hits + 1, orjson.loads(meta))

    async def cache_put(self, entry: CacheEntry, *, now: float) -> None:
        if entry.expires_at <= now:
            return
        row = (entry.key, entry.body, entry.expires_at, orjson.dumps(entry.meta).decode())
        await self._run(lambda db: db.execute("INSERT OR REPLACE INTO cache VALUES (?, ?, ?, 0, ?)", (row[0], row[1], row[2], row[3])))

    async def cache_hot(self, *, min_hits: int, expiring_before: float, now: float, limit: int = 100) -> list[CacheEntry]:
        query = "SELECT key, body, expires_at, hits, meta FROM cache WHERE hits >= ? AND expires_at > ? AND expires_at <= ? ORDER BY expires_at LIMIT ?"
        rows = await self._run(lambda db: db.execute(query, (min_hits, now, expiring_before, limit)).fetchall())
        return [CacheEntry(k, bytes(b), e, h, orjson.loads(m)) for k, b, e, h, m in rows]

    async def cache_purge(self) -> int:
        return await self._run(lambda db: db.execute("DELETE FROM cache").rowcount)

    # ------------------------------------------------------------------ usage events and roll-ups (SQLite)

    async def append_events(self, events: Sequence[UsageEvent], *, writer: str = "", batch: int = 0) -> None:
        # In-process: a call cannot succeed without this process seeing it, so nothing is ever sent twice.
        self._events.extend(events)
        self._start_flusher()

    async def read_events(self, after: str, *, limit: int) -> list[tuple[str, UsageEvent]]:
        await self.flush()
        start = int(after) if after else 0
        rows = await self._run(lambda db: db.execute("SELECT id, data FROM events WHERE id > ? ORDER BY id LIMIT ?", (start, limit)).fetchall())
        return [(str(i), UsageEvent.loads(data)) for i, data in rows]

    async def rollup_cursor(self) -> str:
        row = await self._run(lambda db: db.execute("SELECT value FROM meta WHERE name = 'cursor'").fetchone())
        return row[0] if row else ""

    async def apply_rollup(self, rollup: Rollup, *, expected: str, cursor: str) -> bool:
        rows = [(g, b, *dims, *(totals.get(m, 0) for m in METRICS)) for (g, b, dims), totals in rollup.items()]

        def apply(db: sqlite3.Connection) -> bool:
            with _transaction(db):
                row = db.execute("SELECT value FROM meta WHERE name = 'cursor'").fetchone()
                if (row[0] if row else "") != expected:
                    return False
                db.executemany(_UPSERT_ROLLUP, rows)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('cursor', ?)", (cursor,))
                db.execute("DELETE FROM events WHERE id <= ?", (int(cursor) if cursor else 0,))
                return True

        return await self._run(apply)

    async def rollup_rows(self, buckets: Sequence[tuple[str, int]]) -> list[tuple[Dims, dict[str, float]]]:
        def read(db: sqlite3.Connection):
            out = []
            for granularity, bucket in buckets:
                query = f"SELECT client, provider, model, key, {', '.join(METRICS)} FROM rollups WHERE granularity = ? AND bucket = ?"
                for row in db.execute(query, (granularity, bucket)):
                    out.append((tuple(row[:4]), dict(zip(METRICS, row[4:]))))
            return out

        return await self._run(read)

    # ------------------------------------------------------------------ compaction

    async def compact(self, key_ids: Sequence[str], *, window: float, history: float, now: float) -> int:
        removed = await self._hot.compact(key_ids, window=window, history=history, now=now)

        def prune(db: sqlite3.Connection) -> int:
            with _transaction(db):
                count = db.execute("DELETE FROM cache WHERE expires_at <= ?", (now,)).rowcount
                for granularity, keep in RETENTION.items():
                    count += db.execute("DELETE FROM rollups WHERE granularity = ? AND bucket + ? <= ?", (granularity, keep, now)).rowcount
                return count

        return removed + await self._run(prune)

    async def footprint(self, key_ids: Sequence[str]) -> dict[str, int]:
        counts = await self._hot.footprint(key_ids)

        def count(db: sqlite3.Connection) -> tuple[int, int]:
            return db.execute("SELECT COUNT(*) FROM cache").fetchone()[0], db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

        cache_entries, events = await self._run(count)
        return {**counts, "cache_entries": cache_entries, "events": events + len(self._events)}

    # ------------------------------------------------------------------ documents and counters (SQLite)

    async def doc_put(self, collection: str, doc_id: str, doc: dict, *, ttl: float | None = None, now: float) -> None:
        row = (collection, doc_id, orjson.dumps(doc).decode(), None if ttl is None else now + ttl)

        def put(db: sqlite3.Connection) -> None:
            with _transaction(db):  # delete then insert: a replaced document moves to the end (put order)
                db.execute("DELETE FROM docs WHERE collection = ? AND id = ?", row[:2])
                db.execute("INSERT INTO docs (collection, id, body, expires_at) VALUES (?, ?, ?, ?)", row)

        await self._run(put)

    async def doc_get(self, collection: str, doc_id: str, *, now: float) -> dict | None:
        query = "SELECT body FROM docs WHERE collection = ? AND id = ? AND (expires_at IS NULL OR expires_at > ?)"
        found = await self._run(lambda db: db.execute(query, (collection, doc_id, now)).fetchone())
        return orjson.loads(found[0]) if found else None

    async def doc_delete(self, collection: str, doc_id: str) -> bool:
        return await self._run(lambda db: db.execute("DELETE FROM docs WHERE collection = ? AND id = ?", (collection, doc_id)).rowcount > 0)

    async def doc_list(self, collection: str, *, now: float) -> list[dict]:
        query = "SELECT body FROM docs WHERE collection = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY seq"
        rows = await self._run(lambda db: db.execute(query, (collection, now)).fetchall())
        return [orjson.loads(body) for (body,) in rows]

    async def counters_add(
        self, name: str, deltas: dict[str, float], *, limits: dict[str, float] | None = None, ttl: float | None = None
    ) -> tuple[bool, dict[str, float]]:
        now = time.time()

        def add(db: sqlite3.Connection) -> tuple[bool, dict[str, float]]:
            with _transaction(db):
                db.execute("DELETE FROM counters WHERE name = ? AND expires_at IS NOT NULL AND expires_at <= ?", (name, now))
                values = dict(db.execute("SELECT field, value FROM counters WHERE name = ?", (name,)).fetchall())
                after = {field: values.get(field, 0.0) + delta for field, delta in deltas.items()}
                if limits and any(after.get(field, values.get(field, 0.0)) > limit for field, limit in limits.items()):
                    return False, {field: values.get(field, 0.0) for field in deltas}
                expires = None if ttl is None else now + ttl
                db.executemany(
                    "INSERT INTO counters VALUES (?, ?, ?, ?) ON CONFLICT (name, field) DO UPDATE SET value = excluded.value",
                    [(name, field, value, expires) for field, value in after.items()],
                )
                if ttl is not None:
                    db.execute("UPDATE counters SET expires_at = ? WHERE name = ?", (expires, name))
                return True, after

        return await self._run(add)

    async def counters_get(self, name: str) -> dict[str, float]:
        query = "SELECT field, value FROM counters WHERE name = ? AND (expires_at IS NULL OR expires_at > ?)"
        return dict(await self._run(lambda db: db.execute(query, (name, time.time())).fetchall()))

    async def counters_drop(self, name: str, fields: Sequence[str]) -> None:
        await self._run(lambda db: db.executemany("DELETE FROM counters WHERE name = ? AND field = ?", [(name, f) for f in fields]))

    # ------------------------------------------------------------------ recent requests (SQLite)

    async def recent_push(self, items: Sequence[dict]) -> None:
        rows = [(orjson.dumps(item).decode(),) for item in items]
        if not rows:
            return

        def push(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.executemany("INSERT INTO recent (body) VALUES (?)", rows)
                db.execute("DELETE FROM recent WHERE seq <= (SELECT MAX(seq) FROM recent) - ?", (RECENT_MAX,))

        await self._run(push)

    async def recent_list(self, limit: int) -> list[dict]:
        rows = await self._run(lambda db: db.execute("SELECT body FROM recent ORDER BY seq DESC LIMIT ?", (max(0, limit),)).fetchall())
        return [orjson.loads(body) for (body,) in rows]

    async def ping(self) -> bool:
        return not self._closed

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
        try:
            await self.flush()
        finally:
            await self._run(lambda db: db.close())
            self._thread.shutdown(wait=True)


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK``) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, error, trace) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")
