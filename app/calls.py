"""One client request as the service runs it (``Call``), and its JSON form.

A route builds a ``Call`` from the typed body (``app.inbound``) and the request headers; from
then on only the service reads it. ``call_payload`` / ``call_from_payload`` carry a call to
where it runs later or elsewhere: a queued retry in a worker, a cache entry being warmed, a
batch line. The payload holds the body, the endpoint's name and who asked (the principal's id
and allowed providers), never a secret.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from app.auth import Principal
from app.cache import CacheDirectives
from app.inbound import check_chat_body

if TYPE_CHECKING:
    from app.endpoints import Endpoint


@dataclass(slots=True)
class Call:
    endpoint: "Endpoint"
    body: dict  # the parsed request, in the endpoint's own format
    model: str
    principal: Principal
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None  # completion tokens to reserve (None: the target's default; 0: none)
    prompt_tokens: int = 0  # the prompt estimate reserved in the token windows
    deadline: float | None = None  # time.monotonic() by which to give up (default: now + retry.timeout)
    cache: CacheDirectives = field(default_factory=CacheDirectives)
    deferrable: bool = False  # may wait in the job queue (policy.retry.queue): live unary requests only
    forward_headers: Mapping[str, str] = field(default_factory=dict)  # client headers an endpoint passes upstream
    headroom: float = 0.0  # fraction of every key window to leave to others (batch lines: batches.headroom)
    extra: dict = field(default_factory=dict)  # the endpoint's own state for this call (JSON-able)


def hub_call(endpoint: "Endpoint", body: dict, chat: dict, principal: Principal, **fields) -> Call:
    """The ``Call`` of a front door that translated ``body`` to the chat request ``chat`` (the
    hub): the model, stream flag, completion tokens to reserve and prompt estimate are the hub
    request's, and the boundary checks it is one the adapters accept (a 400 naming the field if
    not). ``fields`` sets the rest (``extra``, ``forward_headers``)."""
    return Call(
        endpoint=endpoint,
        body=body,
        model=chat["model"],
        principal=principal,
        stream=bool(chat.get("stream")),
        max_tokens=chat.get("max_completion_tokens"),
        prompt_tokens=check_chat_body(chat).prompt_tokens,
        **fields,
    )


def call_payload(call: Call) -> dict:
    """The JSON-able form of ``call`` (no deadline: the carrier sets its own)."""
    principal = call.principal
    allowed = None if principal.allowed is None else sorted(principal.allowed)
    return {
        "endpoint": call.endpoint.name,
        "body": call.body,
        "model": call.model,
        "include_usage": call.include_usage,
        "max_tokens": call.max_tokens,
        "prompt_tokens": call.prompt_tokens,
        "principal": {"id": principal.id, "allowed": allowed},
        "forward_headers": dict(call.forward_headers),
        "extra": call.extra,
    }


def call_from_payload(data: dict, *, deadline: float | None = None, cache: CacheDirectives | None = None) -> Call:
    """Rebuild a non-streaming ``Call``; ``deadline`` is wall-clock (``time.time()``) seconds."""
    from app.endpoints import ENDPOINTS

    who = data["principal"]
    principal = Principal(who["id"], allowed=None if who["allowed"] is None else frozenset(who["allowed"]))
    return Call(
        endpoint=ENDPOINTS[data.get("endpoint", "chat")],
        body=data["body"],
        model=data["model"],
        principal=principal,
        include_usage=bool(data.get("include_usage")),
        max_tokens=data.get("max_tokens"),
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        deadline=None if deadline is None else time.monotonic() + (deadline - time.time()),
        cache=cache or CacheDirectives(lookup=False, store=False),
        forward_headers=data.get("forward_headers") or {},
        extra=data.get("extra") or {},
    )
