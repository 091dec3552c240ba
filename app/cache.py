"""The exact-match response cache (``policy.cache``), shared by every process using the same store.

The key (``cache_key``) is the SHA-256 of canonical JSON holding:

- the endpoint (chat, embeddings...): one API's answer is never served to another,
- the resolved target group (``provider:model`` of every target the request may go to),
- the request minus ``model``, ``stream`` and ``stream_options`` (which only pick the transport):
  the messages, every generation parameter, the tools, ``user`` and anything else sent,
- the client's namespace (its key id, or ``api_keys[].cache_namespace``, or a runtime client's
  ``cache_namespace``), so one tenant never gets another's answer.

Per request (``CacheDirectives`` from the headers, then a ``CachePlan`` made by the service):

- ``Cache-Control: no-cache``: do not answer from the cache, but store the new answer.
- ``Cache-Control: no-store``: do not store the answer (a cached one may still be served).
- ``x-coo-llm-cache-ttl: <seconds>``: store the answer for that long instead of ``ttl_seconds``.

A hit answers with the stored ``chat.completion`` (a stream gets it replayed as SSE by
``replay_frames``), the ``x-coo-llm-cache: hit`` header, cost 0, and the cost it saved recorded
in metrics and the usage event. Streamed misses are assembled (``StreamAssembler``) and stored
like any other answer. Entries also keep the request (``app.calls.call_payload``), so the
warming job can refresh them.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import orjson

from adapters.sse import DONE_FRAME, frame
from app import metrics
from app.auth import client_key_id
from app.errors import InvalidRequest
from storage.base import CacheEntry

CACHE_HEADER = "x-coo-llm-cache"
TTL_HEADER = "x-coo-llm-cache-ttl"
MAX_TTL = 7 * 86400
TRANSPORT_FIELDS = frozenset({"model", "stream", "stream_options"})


def cache_key(endpoint: str, targets, body: dict, namespace: str) -> str:
    canonical = {
        "endpoint": endpoint,
        "namespace": namespace,
        "targets": [f"{t.provider_id}:{t.model}" for t in targets],
        "request": {name: value for name, value in body.items() if name not in TRANSPORT_FIELDS},
    }
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class CacheDirectives:
    """What the client asked of the cache for one request (``directives_from_headers``)."""

    lookup: bool = True  # may answer from the cache
    store: bool = True  # may store the answer
    ttl: float | None = None  # seconds to store it for (None: policy.cache.ttl_seconds)


NO_CACHE = CacheDirectives(lookup=False, store=False)


def cache_control(value: str | None) -> set[str]:
    return {part.strip().lower().split("=", 1)[0] for part in (value or "").split(",") if part.strip()}


def directives_from_headers(headers) -> CacheDirectives:
    """``Cache-Control: no-cache / no-store`` and ``x-coo-llm-cache-ttl``; 400 for a bad TTL."""
    control = headers.get("cache-control")
    raw_ttl = headers.get(TTL_HEADER)
    if control is None and raw_ttl is None:
        return DEFAULT_DIRECTIVES
    directives = cache_control(control)
    ttl = None
    if raw_ttl is not None:
        try:
            ttl = float(raw_ttl)
        except ValueError:
            ttl = -1.0
        if not 0 < ttl <= MAX_TTL:
            raise InvalidRequest(f"'{TTL_HEADER}' must be a number of seconds between 1 and {MAX_TTL}.", param=TTL_HEADER, code="invalid_value")
    return CacheDirectives("no-cache" not in directives, "no-store" not in directives, ttl)


DEFAULT_DIRECTIVES = CacheDirectives()


@dataclass(slots=True)
class CachePlan:
    key: str
    lookup: bool  # may answer from the cache
    store: bool  # may store the answer
    ttl: float
    request: dict = field(default_factory=dict)  # the call's payload (``app.calls``), so warming can replay it

    @property
    def header(self) -> str:
        return "miss" if self.lookup else "bypass"


class ResponseCache:
    def __init__(self, settings, store) -> None:
        self.policy = settings.policy.cache
        self.store = store
        self._namespaces = {client_key_id(c.key): c.cache_namespace for c in settings.api_keys if c.cache_namespace}

    @property
    def enabled(self) -> bool:
        return self.policy.enabled

    def namespace(self, principal) -> str:
        return principal.cache_namespace or self._namespaces.get(principal.id, principal.id)

    def plan(self, call, targets) -> CachePlan | None:
        """How this request uses the cache, or None when it does not at all."""
        if not self.policy.enabled:
            return None
        directives = call.cache
        if not (directives.lookup or directives.store):
            metrics.child(metrics.CACHE_LOOKUPS, "bypass").inc()
            return None
        from app.calls import call_payload

        namespace = self.namespace(call.principal)
        request = {**call_payload(call), "namespace": namespace}
        ttl = directives.ttl if directives.ttl is not None else float(self.policy.ttl_seconds)
        return CachePlan(cache_key(call.endpoint.name, targets, call.body, namespace), directives.lookup, directives.store, ttl, request)

    async def lookup(self, plan: CachePlan | None) -> CacheEntry | None:
        if plan is None or not plan.lookup:
            if plan is not None:
                metrics.child(metrics.CACHE_LOOKUPS, "bypass").inc()
            return None
        entry = await self.store.cache_get(plan.key, now=time.time())
        metrics.count(metrics.CACHE_LOOKUPS, ("hit" if entry else "miss",))
        return entry

    async def save(self, plan: CachePlan | None, body: bytes, record) -> None:
        """Store a successful answer (and who served it, at what cost) for ``plan.ttl`` seconds."""
        if plan is None or not plan.store:
            return
        now = time.time()
        meta = {
            "provider": record.provider,
            "model": record.model,
            "listed": record.model_label == record.model,
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "cost": record.cost,
            "ttl": plan.ttl,
            "created": now,
            "request": plan.request,
        }
        await self.store.cache_put(CacheEntry(plan.key, body, now + plan.ttl, meta=meta), now=now)

    @staticmethod
    def charge_hit(entry: CacheEntry, record) -> None:
        """A hit costs nothing; what the stored answer cost is recorded as saved."""
        record.answered_from_cache(entry.meta)
        if record.saved:
            metrics.child(metrics.CACHE_SAVED, record.provider, record.model_label).inc(record.saved)


def replay_frames(body: bytes, *, include_usage: bool) -> list[bytes]:
    """A stored ``chat.completion`` as the SSE frames a stream of it would have sent."""
    data = orjson.loads(body)
    head = {"id": data.get("id"), "object": "chat.completion.chunk", "created": data.get("created"), "model": data.get("model")}
    if data.get("system_fingerprint"):
        head["system_fingerprint"] = data["system_fingerprint"]
    frames: list[bytes] = []
    for choice in data.get("choices") or []:
        message = choice.get("message") or {}
        delta: dict = {"role": message.get("role") or "assistant", "content": message.get("content")}
        if message.get("refusal"):
            delta["refusal"] = message["refusal"]
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        index = choice.get("index", 0)
        frames.append(frame({**head, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": None}]}))
        frames.append(frame({**head, "choices": [{"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason")}]}))
    if include_usage and data.get("usage"):
        frames.append(frame({**head, "choices": [], "usage": data["usage"]}))
    frames.append(DONE_FRAME)
    return frames


class StreamAssembler:
    """Rebuilds a ``chat.completion`` from the SSE frames sent to the client, so a streamed answer
    can be cached. Any error frame makes the answer uncacheable."""

    def __init__(self) -> None:
        self._head: dict | None = None
        self._choices: dict[int, dict] = {}
        self.failed = False

    def feed(self, piece: bytes) -> None:
        """Take what was sent to the client: one or more whole SSE frames."""
        for frame_bytes in piece.split(b"\n\n"):
            if frame_bytes:
                self._feed_frame(frame_bytes)

    def _feed_frame(self, piece: bytes) -> None:
        if self.failed or not piece.startswith(b"data: "):
            return
        data = piece[6:].strip()
        if data == b"[DONE]":
            return
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.failed = True
            return
        if "error" in chunk:
            self.failed = True
            return
        if self._head is None:
            self._head = {k: chunk.get(k) for k in ("id", "created", "model", "system_fingerprint") if chunk.get(k) is not None}
        for choice in chunk.get("choices") or []:
            state = self._choices.setdefault(choice.get("index", 0), {"role": "assistant", "content": [], "tool_calls": {}, "finish_reason": None, "refusal": []})
            delta = choice.get("delta") or {}
            if delta.get("role"):
                state["role"] = delta["role"]
            if delta.get("content"):
                state["content"].append(delta["content"])
            if delta.get("refusal"):
                state["refusal"].append(delta["refusal"])
            for call in delta.get("tool_calls") or []:
                slot = state["tool_calls"].setdefault(call.get("index", 0), {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                if call.get("id"):
                    slot["id"] = call["id"]
                if call.get("type"):
                    slot["type"] = call["type"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                state["finish_reason"] = choice["finish_reason"]

    def completion(self, usage: dict | None) -> bytes | None:
        """The assembled answer, or None if the stream failed or never finished."""
        if self.failed or self._head is None or not self._choices:
            return None
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            if state["finish_reason"] is None:
                return None
            message: dict = {"role": state["role"], "content": "".join(state["content"]) if state["content"] or not state["tool_calls"] else None}
            message["refusal"] = "".join(state["refusal"]) or None
            if state["tool_calls"]:
                message["tool_calls"] = [state["tool_calls"][i] for i in sorted(state["tool_calls"])]
            choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": state["finish_reason"]})
        body = {**self._head, "object": "chat.completion", "choices": choices}
        if usage:
            body["usage"] = usage
        return orjson.dumps(body)
