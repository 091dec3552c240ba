"""Every Redis key name coo-llm uses, in one place.

Keys that an atomic script touches together share a hash tag, so each script touches one slot
and runs unchanged on Redis Cluster:

- ``{k:<key id>}``: everything about one provider key (``openai#2``): its request window, the
  tokens of each window entry, in-flight marks, health and per-minute history.
- ``{c}``: the response cache (entries and the expiry index that warming and purging walk).
- ``{u}``: usage events, the roll-up cursor and the roll-up buckets (folded atomically).
- claims are single keys, each in its own slot.
- ``{d:<collection>}``: one collection of documents (clients, stored responses, files,
  batches): each document, the collection's index and its put counter.
- ``{n:<name>}``: one set of counters (a client's budget periods, a batch's progress).
- ``{r}``: the capped list of recent request records (the admin dashboard's overview).

The arq queue (``arq:*``) is arq's own; see ``workers.queue``.
"""

from __future__ import annotations

from typing import NamedTuple

PREFIX = "coo"


class ProviderKeyNames(NamedTuple):
    window: str  # ZSET entry id -> reserved at
    tokens: str  # HASH entry id -> tokens, plus "_sum" (tokens in the window)
    inflight: str  # ZSET entry id -> reserved at, for requests not yet settled
    health: str  # HASH cooldown, failures, error_rate, latency, seq (entry id counter)
    history: str  # HASH "r:<minute>" / "t:<minute>" -> requests / tokens reserved in that minute


def provider_key(key_id: str) -> ProviderKeyNames:
    tag = f"{PREFIX}:{{k:{key_id}}}"
    return ProviderKeyNames(f"{tag}:win", f"{tag}:tok", f"{tag}:infl", f"{tag}:health", f"{tag}:hist")


CACHE_INDEX = f"{PREFIX}:{{c}}:index"  # ZSET cache key -> expires at


def cache_entry(key: str) -> str:
    return f"{PREFIX}:{{c}}:e:{key}"  # HASH body, expires, hits, meta


USAGE_EVENTS = f"{PREFIX}:{{u}}:events"  # STREAM of UsageEvent JSON
USAGE_CURSOR = f"{PREFIX}:{{u}}:cursor"  # STRING: the last event id folded into roll-ups


def usage_writer(writer: str) -> str:
    return f"{PREFIX}:{{u}}:writer:{writer}"  # STRING: the highest append mark of one writer (process)


def rollup_bucket(granularity: str, bucket: int) -> str:
    return f"{PREFIX}:{{u}}:rollup:{granularity}:{bucket}"  # HASH "<dims>\t<metric>" -> total


def claim(name: str) -> str:
    return f"{PREFIX}:claim:{name}"


def doc(collection: str, doc_id: str) -> str:
    return f"{PREFIX}:{{d:{collection}}}:doc:{doc_id}"  # STRING: the document's JSON (PX when it has a TTL)


def doc_index(collection: str) -> str:
    return f"{PREFIX}:{{d:{collection}}}:index"  # ZSET document id -> put number (put order)


def doc_seq(collection: str) -> str:
    return f"{PREFIX}:{{d:{collection}}}:seq"  # STRING: the collection's put counter


def counters(name: str) -> str:
    return f"{PREFIX}:{{n:{name}}}"  # HASH field -> value


RECENT = f"{PREFIX}:{{r}}:recent"  # LIST of request record JSON, newest first, capped at storage.base.RECENT_MAX

QUEUE_STATS = f"{PREFIX}:queue:stats"  # HASH "<function>:<outcome>" -> count, "<function>:seconds" -> total run time
