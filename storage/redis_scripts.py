"""Every Lua script ``RedisStore`` runs, one per store call, with its KEYS / ARGV contract.

Rules every script here keeps (they are why one script is one atomic, portable step):

- All KEYS of one script share a hash tag (``storage.keys``), so it touches one slot and runs
  unchanged on Redis Cluster. Key names are always passed as KEYS, never built inside Lua.
- Replies are flat: strings, integers, ``false`` (nil), or flat arrays of those. Both transports
  (redis-py and webdis, which flattens nested replies badly) then carry them the same way.
- Numbers travel as strings (``storage.redis.num``): times are float seconds from the caller's
  clock, never Redis's, so every process agrees with the caller's ``now``.

Each script is named after the store call it serves. ``Script.hot`` marks the request-path ones
(``storage.redis_transport.Coalescer`` batches those); ``HOT_CALLS`` names the ``RedisStore``
methods made only of hot scripts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Script:
    """One Lua script: its ``name`` (the store call it serves), its ``source`` and the SHA1 that
    ``EVALSHA`` runs it by (the transports ``SCRIPT LOAD`` it on a ``NOSCRIPT`` reply)."""

    name: str
    source: str
    hot: bool = False  # on the request path: the Coalescer batches it with the other hot calls queued meanwhile
    sha: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


# Lua helper prepended to the scripts that read a window: expire_window(win, tok, cutoff) removes
# the entries reserved at or before ``cutoff`` from the window ZSET and their token counts from the
# tokens HASH (taking them out of its "_sum"), 500 at a time; it returns how many it removed.
_EXPIRE_WINDOW = """
local function expire_window(win, tok, cutoff)
  local removed = 0
  while true do
    local ids = redis.call('ZRANGEBYSCORE', win, '-inf', cutoff, 'LIMIT', 0, 500)
    if #ids == 0 then return removed end
    local toks = redis.call('HMGET', tok, unpack(ids))
    local freed = 0
    for i = 1, #ids do freed = freed + (tonumber(toks[i]) or 0) end
    redis.call('HDEL', tok, unpack(ids))
    redis.call('ZREM', win, unpack(ids))
    redis.call('HINCRBY', tok, '_sum', -freed)
    removed = removed + #ids
  end
end
"""

# RESERVE: the atomic check-and-record of ``RedisStore.reserve`` (storage.base contract 1).
#   KEYS: window, tokens, inflight, health, history of one provider key (keys.provider_key)
#   ARGV: now, cutoff (now - window), max requests (-1: none), max tokens (-1: none), tokens to
#         reserve, window seconds, minute of now (history field), key TTL ms
#   ->    {1, entry id, requests, tokens, inflight, cooldown, failures, error rate, latency}
#         (the key's state right after, as KEY_STATE returns it) | {0, retry after seconds, reason}
#         with reason 'cooldown' | 'requests' | 'tokens'. A refusal records nothing.
RESERVE = Script("reserve", hot=True, source=_EXPIRE_WINDOW + """
local now = tonumber(ARGV[1])
local cooldown = tonumber(redis.call('HGET', KEYS[4], 'cooldown') or '0')
if cooldown > now then return {0, tostring(cooldown - now), 'cooldown'} end
expire_window(KEYS[1], KEYS[2], ARGV[2])
local window = tonumber(ARGV[6])
local max_requests = tonumber(ARGV[3])
if max_requests >= 0 and redis.call('ZCARD', KEYS[1]) >= max_requests then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tostring(tonumber(oldest[2]) + window - now), 'requests'}
end
local tokens = tonumber(ARGV[5])
local max_tokens = tonumber(ARGV[4])
if max_tokens >= 0 then
  local used = tonumber(redis.call('HGET', KEYS[2], '_sum') or '0')
  local need = math.min(tokens, max_tokens)
  if used + need > max_tokens then
    -- walk the oldest entries until enough tokens would have left the window
    local freed, start = 0, 0
    while true do
      local batch = redis.call('ZRANGE', KEYS[1], start, start + 199, 'WITHSCORES')
      if #batch == 0 then break end
      local ids = {}
      for i = 1, #batch, 2 do ids[#ids + 1] = batch[i] end
      local toks = redis.call('HMGET', KEYS[2], unpack(ids))
      for i = 1, #ids do
        freed = freed + (tonumber(toks[i]) or 0)
        if used - freed + need <= max_tokens then
          return {0, tostring(tonumber(batch[2 * i]) + window - now), 'tokens'}
        end
      end
      start = start + 200
    end
    return {0, tostring(window), 'tokens'}
  end
end
local id = tostring(redis.call('HINCRBY', KEYS[4], 'seq', 1))
redis.call('ZADD', KEYS[1], ARGV[1], id)
redis.call('HSET', KEYS[2], id, ARGV[5])
local sum = redis.call('HINCRBY', KEYS[2], '_sum', ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[1], id)
redis.call('HINCRBY', KEYS[5], 'r:' .. ARGV[7], 1)
redis.call('HINCRBY', KEYS[5], 't:' .. ARGV[7], ARGV[5])
-- refresh the TTLs at most once a minute (PTTL is -1 right after the window key is created)
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[8]) - 60000 then
  for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ARGV[8]) end
end
-- the key's state after this reservation, as KEY_STATE returns it, for the caller's ranking
local h = redis.call('HMGET', KEYS[4], 'cooldown', 'failures', 'error_rate', 'latency')
return {1, id, redis.call('ZCARD', KEYS[1]), sum, redis.call('ZCARD', KEYS[3]), h[1] or '0', h[2] or '0', h[3] or '0', h[4] or '0'}
""")

# SETTLE: ``RedisStore.settle`` (contract 2): the entry's real token count, the in-flight mark
# removed, the minute's history corrected, health updated (EWMA with ``alpha``).
#   KEYS: window, tokens, inflight, health, history of one provider key
#   ARGV: entry id, real tokens, reserved tokens, failed ('1' | '0' | '': no health change),
#         latency seconds ('' : none), minute the entry was reserved in, EWMA alpha
#   ->    consecutive failures after this outcome
SETTLE = Script("settle", hot=True, source="""
redis.call('ZREM', KEYS[3], ARGV[1])
local tokens = tonumber(ARGV[2])
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('HINCRBY', KEYS[2], '_sum', tokens - tonumber(old))
end
local field = 't:' .. ARGV[6]
if redis.call('HEXISTS', KEYS[5], field) == 1 then
  redis.call('HINCRBY', KEYS[5], field, tokens - tonumber(ARGV[3]))
end
local h = redis.call('HMGET', KEYS[4], 'failures', 'error_rate', 'latency')
local failures = tonumber(h[1] or '0')
local error_rate = tonumber(h[2] or '0')
local latency = tonumber(h[3] or '0')
local alpha = tonumber(ARGV[7])
if ARGV[4] == '1' then
  failures = failures + 1
  error_rate = error_rate + alpha * (1 - error_rate)
elseif ARGV[4] == '0' then
  failures = 0
  error_rate = error_rate + alpha * (0 - error_rate)
  if ARGV[5] ~= '' then
    local sample = tonumber(ARGV[5])
    if latency == 0 then latency = sample else latency = latency + alpha * (sample - latency) end
  end
end
redis.call('HSET', KEYS[4], 'failures', failures, 'error_rate', tostring(error_rate), 'latency', tostring(latency))
return failures
""")

# COOL_DOWN: ``RedisStore.cool_down`` (contract 3): the cooldown only ever moves later.
#   KEYS: health of one provider key
#   ARGV: until (seconds), TTL ms (the health hash lives at least that long)
#   ->    1
COOL_DOWN = Script("cool_down", hot=True, source="""
local current = tonumber(redis.call('HGET', KEYS[1], 'cooldown') or '0')
if tonumber(ARGV[1]) > current then redis.call('HSET', KEYS[1], 'cooldown', ARGV[1]) end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
""")

# KEY_STATE: one key of ``RedisStore.key_states``, expiring old window entries and stale in-flight marks first.
#   KEYS: window, tokens, inflight, health of one provider key
#   ARGV: cutoff (now - window), stale before (now - INFLIGHT_STALE)
#   ->    {requests, tokens, inflight, cooldown, failures, error rate, latency}
KEY_STATE = Script("key_state", hot=True, source=_EXPIRE_WINDOW + """
expire_window(KEYS[1], KEYS[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[2])
local h = redis.call('HMGET', KEYS[4], 'cooldown', 'failures', 'error_rate', 'latency')
return {redis.call('ZCARD', KEYS[1]), redis.call('HGET', KEYS[2], '_sum') or '0', redis.call('ZCARD', KEYS[3]),
        h[1] or '0', h[2] or '0', h[3] or '0', h[4] or '0'}
""")

# COMPACT_KEY: one key of ``RedisStore.compact`` (contract 6).
#   KEYS: window, tokens, inflight, health, history of one provider key
#   ARGV: cutoff (now - window), stale before (now - INFLIGHT_STALE), history cutoff (now - history:
#         the minutes that ended by then go)
#   ->    items removed (window entries, in-flight marks, history minutes)
COMPACT_KEY = Script("compact_key", _EXPIRE_WINDOW + """
local removed = expire_window(KEYS[1], KEYS[2], ARGV[1])
removed = removed + redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[2])
local oldest = tonumber(ARGV[3])
local fields = redis.call('HKEYS', KEYS[5])
local old = {}
for i = 1, #fields do
  local minute = tonumber(string.sub(fields[i], 3))
  if minute and minute + 60 <= oldest then
    old[#old + 1] = fields[i]
    if string.sub(fields[i], 1, 1) == 'r' then removed = removed + 1 end
  end
end
for i = 1, #old, 500 do redis.call('HDEL', KEYS[5], unpack(old, i, math.min(i + 499, #old))) end
return removed
""")

# READ_HASH: one key of ``RedisStore.key_history``.
#   KEYS: history of one provider key
#   ->    flat {field, value, ...} ('r:<minute>' / 't:<minute>' -> requests / tokens)
READ_HASH = Script("read_hash", "return redis.call('HGETALL', KEYS[1])")

# KEY_FOOTPRINT: one key of ``RedisStore.footprint``.
#   KEYS: window, inflight, history of one provider key
#   ->    {window entries, in-flight marks, history fields}
KEY_FOOTPRINT = Script("key_footprint", """
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('HLEN', KEYS[3])}
""")

# CACHE_COUNT / EVENTS_COUNT: the rest of ``RedisStore.footprint`` (separate slots, so separate calls).
#   KEYS: keys.CACHE_INDEX -> cache entries | keys.USAGE_EVENTS -> unfolded usage events
CACHE_COUNT = Script("cache_count", "return redis.call('ZCARD', KEYS[1])")
EVENTS_COUNT = Script("events_count", "return redis.call('XLEN', KEYS[1])")

# CACHE_GET: ``RedisStore.cache_get`` (contract 4): a live entry, counting one hit; an expired one is deleted.
#   KEYS: keys.cache_entry(key)
#   ARGV: now
#   ->    false (no live entry) | {body, expires at, hits including this one, meta JSON}
CACHE_GET = Script("cache_get", hot=True, source="""
local v = redis.call('HMGET', KEYS[1], 'body', 'expires', 'meta')
if not v[1] then return false end
if tonumber(v[2]) <= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return false
end
local hits = redis.call('HINCRBY', KEYS[1], 'hits', 1)
return {v[1], v[2], hits, v[3]}
""")

# CACHE_PUT: ``RedisStore.cache_put``: replaces the entry (hits back to 0), indexes it by expiry and
# drops index members that expired.
#   KEYS: keys.cache_entry(key), keys.CACHE_INDEX
#   ARGV: index member (the cache key), body, expires at, meta JSON, now, TTL ms (> 0)
#   ->    1
CACHE_PUT = Script("cache_put", hot=True, source="""
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'body', ARGV[2], 'expires', ARGV[3], 'hits', 0, 'meta', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
return 1
""")

# CACHE_INDEX_RANGE: a page of cache keys by expiry (``cache_hot``, ``cache_purge``).
#   KEYS: keys.CACHE_INDEX
#   ARGV: min expiry, max expiry (ZRANGEBYSCORE bounds: '(' exclusive, '-inf' / '+inf'), limit
#   ->    cache keys (index members)
CACHE_INDEX_RANGE = Script("cache_index_range", """
return redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3])
""")

# CACHE_PEEK: ``cache_hot`` reads entries without counting hits.
#   KEYS: keys.cache_entry(key) for each key
#   ->    flat {i, body, expires at, hits, meta JSON, ...} for each entry that exists (i = its
#         1-based KEYS position)
CACHE_PEEK = Script("cache_peek", """
local out = {}
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'body', 'expires', 'hits', 'meta')
  if v[1] then
    out[#out + 1] = i; out[#out + 1] = v[1]; out[#out + 1] = v[2]; out[#out + 1] = v[3] or '0'; out[#out + 1] = v[4] or '{}'
  end
end
return out
""")

# CACHE_DROP: one page of ``cache_purge``.
#   KEYS: keys.CACHE_INDEX, then keys.cache_entry(key) for each key
#   ARGV: the keys themselves (index members), in the same order
#   ->    entries deleted
CACHE_DROP = Script("cache_drop", """
local deleted = 0
for i = 2, #KEYS do deleted = deleted + redis.call('DEL', KEYS[i]) end
redis.call('ZREM', KEYS[1], unpack(ARGV))
return deleted
""")

# CACHE_TRIM: the cache part of ``compact``.
#   KEYS: keys.CACHE_INDEX
#   ARGV: now
#   ->    index members removed (their entries already expired by TTL)
CACHE_TRIM = Script("cache_trim", "return redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])")

# EVENTS_APPEND: one chunk of ``RedisStore.append_events`` (contract 5), idempotent per mark.
#   KEYS: keys.USAGE_EVENTS, keys.usage_writer(writer)
#   ARGV: stream max length (approximate), mark (0: not idempotent), writer TTL ms, event JSON...
#   ->    id of the last event appended | 'duplicate' (nothing appended)
# A writer's marks only grow (see ``RedisStore.append_events``): a mark at or below the writer's
# highest is a batch already appended, sent again because its reply was lost, and is skipped.
EVENTS_APPEND = Script("events_append", """
local mark = tonumber(ARGV[2])
if mark > 0 then
  if mark <= tonumber(redis.call('GET', KEYS[2]) or '0') then return 'duplicate' end
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
local id = ''
for i = 4, #ARGV do id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[i]) end
return id
""")

# EVENTS_READ: ``RedisStore.read_events``.
#   KEYS: keys.USAGE_EVENTS
#   ARGV: start ('-': from the first, '(<id>': after that id), count
#   ->    flat {event id, event JSON, ...}
EVENTS_READ = Script("events_read", """
local rows = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
local out = {}
for i = 1, #rows do
  out[#out + 1] = rows[i][1]
  out[#out + 1] = rows[i][2][2]
end
return out
""")

# GET_CURSOR: ``RedisStore.rollup_cursor``.
#   KEYS: keys.USAGE_CURSOR
#   ->    the id of the last event folded ('' before the first fold)
GET_CURSOR = Script("get_cursor", "return redis.call('GET', KEYS[1]) or ''")

# ROLLUP_APPLY: ``RedisStore.apply_rollup`` (contract 5): increments applied and the cursor moved
# in one step, only if the cursor is still ``expected``; events up to the new cursor are trimmed.
#   KEYS: keys.USAGE_CURSOR, keys.USAGE_EVENTS, then n roll-up buckets (keys.rollup_bucket)
#   ARGV: expected cursor, new cursor, n, n bucket TTLs (ms), then triples (bucket position 1..n,
#         field, increment)
#   ->    1 applied | 0 the cursor had moved (nothing done)
ROLLUP_APPLY = Script("rollup_apply", """
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[3])
local i = 4 + n
while i <= #ARGV do
  redis.call('HINCRBYFLOAT', KEYS[2 + tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2])
  i = i + 3
end
for b = 1, n do
  if redis.call('PTTL', KEYS[2 + b]) < tonumber(ARGV[3 + b]) then redis.call('PEXPIRE', KEYS[2 + b], ARGV[3 + b]) end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('XTRIM', KEYS[2], 'MINID', ARGV[2])
return 1
""")

# ROLLUP_READ: ``RedisStore.rollup_rows``.
#   KEYS: roll-up buckets (keys.rollup_bucket)
#   ->    flat {bucket position (1-based), field, value, ...}
ROLLUP_READ = Script("rollup_read", """
local out = {}
for i = 1, #KEYS do
  local kv = redis.call('HGETALL', KEYS[i])
  for j = 1, #kv, 2 do
    out[#out + 1] = i; out[#out + 1] = kv[j]; out[#out + 1] = kv[j + 1]
  end
end
return out
""")

# CLAIM: ``RedisStore.claim`` (contract 7): set if nobody holds it.
#   KEYS: keys.claim(name)
#   ARGV: owner, TTL ms
#   ->    the holder after the call
CLAIM = Script("claim", """
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
""")

# DOC_PUT: ``RedisStore.doc_put`` (contract 8): replace the document, move it to the end of the index.
#   KEYS: keys.doc(c, id), keys.doc_index(c), keys.doc_seq(c)
#   ARGV: id, JSON, TTL ms (0: none)
#   ->    1
DOC_PUT = Script("doc_put", """
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
return 1
""")

# DOC_DELETE: ``RedisStore.doc_delete``.
#   KEYS: keys.doc(c, id), keys.doc_index(c) ; ARGV: id -> 1 if a live document was deleted, else 0
DOC_DELETE = Script("doc_delete", """
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
""")

# DOC_INDEX: the ids of a collection in put order. KEYS: keys.doc_index(c) -> ids
DOC_INDEX = Script("doc_index", "return redis.call('ZRANGE', KEYS[1], 0, -1)")

# DOC_READ: documents by key. KEYS: keys.doc(c, id)... -> JSON or false (expired) for each
DOC_READ = Script("doc_read", "return redis.call('MGET', unpack(KEYS))")

# DOC_UNINDEX: forget ids whose documents expired. KEYS: keys.doc_index(c) ; ARGV: ids -> removed
DOC_UNINDEX = Script("doc_unindex", "return redis.call('ZREM', KEYS[1], unpack(ARGV))")

# COUNTERS_ADD: ``RedisStore.counters_add`` (contract 9): add every delta, unless a limited field
# would pass its maximum. Hot: clients' budgets reserve and settle with it on the request path.
#   KEYS: keys.counters(name)
#   ARGV: TTL ms (0: none), n, then n pairs (field, delta), then pairs (field, maximum)
#   ->    {1, value of each delta field after} | {0, value of each delta field now}
COUNTERS_ADD = Script("counters_add", hot=True, source="""
local n = tonumber(ARGV[2])
local deltas = {}
for i = 0, n - 1 do deltas[ARGV[3 + 2 * i]] = tonumber(ARGV[4 + 2 * i]) end
local i = 3 + 2 * n
while i < #ARGV do
  local current = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if current + (deltas[ARGV[i]] or 0) > tonumber(ARGV[i + 1]) then
    local out = {0}
    for j = 0, n - 1 do out[#out + 1] = redis.call('HGET', KEYS[1], ARGV[3 + 2 * j]) or '0' end
    return out
  end
  i = i + 2
end
local out = {1}
for j = 0, n - 1 do out[#out + 1] = redis.call('HINCRBYFLOAT', KEYS[1], ARGV[3 + 2 * j], ARGV[4 + 2 * j]) end
if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return out
""")

# COUNTERS_DROP: delete fields. KEYS: keys.counters(name) ; ARGV: fields -> removed
COUNTERS_DROP = Script("counters_drop", "return redis.call('HDEL', KEYS[1], unpack(ARGV))")

SCRIPTS = (
    RESERVE, SETTLE, COOL_DOWN, KEY_STATE, COMPACT_KEY, READ_HASH, KEY_FOOTPRINT, CACHE_COUNT, EVENTS_COUNT, CACHE_GET, CACHE_PUT,
    CACHE_INDEX_RANGE, CACHE_PEEK, CACHE_DROP, CACHE_TRIM, EVENTS_APPEND, EVENTS_READ, GET_CURSOR, ROLLUP_APPLY, ROLLUP_READ, CLAIM,
    DOC_PUT, DOC_DELETE, DOC_INDEX, DOC_READ, DOC_UNINDEX, COUNTERS_ADD, COUNTERS_DROP,
)

# RedisStore methods that run hot scripts only (the transport bounds them itself: see
# ``RedisStore.self_bounded``).
HOT_CALLS = frozenset({"reserve", "settle", "cool_down", "key_states", "cache_get", "cache_put", "counters_add"})
