"""The adapter contract: pure translation between OpenAI shapes and one provider's wire format.

An adapter does no I/O and never sees more of a key than ``auth_headers`` needs. Its tests feed
it bytes and compare results. Per provider type it provides:

- ``default_headers``: fixed headers every request needs (e.g. ``anthropic-version``); a
  provider's configured ``headers`` override them.
- ``auth_headers(secret) -> dict``: the credential headers for one key (computed once per key).
- ``build_chat(chat, target, *, stream) -> UpstreamRequest``: ``chat`` is the client's parsed
  OpenAI request body (the adapter must not mutate it).
- ``parse_chat(body, *, model) -> ChatResult``: an OpenAI ``chat.completion`` and its usage.
- ``stream_translator(*, model, include_usage) -> StreamTranslator``: per-stream state.
- ``parse_error(status, headers, body) -> UpstreamError``: classify a non-2xx answer into an
  ``Outcome`` (defined here, with whether a retry elsewhere can help, as data).
- ``build_embeddings(body, target) -> UpstreamRequest`` / ``parse_embeddings(body, *, model,
  request) -> ChatResult`` (an OpenAI embeddings list and its usage). A provider without
  embeddings raises ``AdapterError`` from ``build_embeddings``.

Unknown upstream values (a new finish reason, a new error type) map to an explicit default with
a warning log, never a ``KeyError``. A request the provider cannot honour raises
``AdapterError``, which the client sees as a 400 naming the parameter.

``model`` is the name the client asked for, for adapters whose provider does not echo one.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping, Protocol

import orjson


class Outcome(str, Enum):
    """What one upstream call did: the balancer is told outcomes, never exceptions."""

    SUCCESS = "success"
    CLIENT_ERROR = "client_error"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECT = "connect"
    AUTH = "auth"

    @property
    def retryable(self) -> bool:
        """A retry on another key or target can help."""
        return self not in (Outcome.SUCCESS, Outcome.CLIENT_ERROR)

    @property
    def key_failed(self) -> bool | None:
        """True if the key (not the request) failed; None if the outcome says nothing about it."""
        if self is Outcome.SUCCESS:
            return False
        if self is Outcome.CLIENT_ERROR:
            return None
        return True


def outcome_for_status(status: int) -> Outcome:
    """Classify an upstream HTTP status."""
    if status < 400:
        return Outcome.SUCCESS
    if status == 429:
        return Outcome.RATE_LIMITED
    if status == 408:
        return Outcome.TIMEOUT
    if status in (401, 403):
        return Outcome.AUTH
    if status in (503, 529):
        return Outcome.OVERLOADED
    if status >= 500:
        return Outcome.SERVER_ERROR
    return Outcome.CLIENT_ERROR


class AdapterError(ValueError):
    """The request cannot be expressed for this provider: the client gets a 400 naming ``param``."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = "unsupported_parameter"):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    body: bytes
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as OpenAI reports them: ``prompt_tokens`` includes the cache reads
    (``cached_tokens``) and cache writes (``cache_write_tokens``), ``completion_tokens`` includes
    the ``reasoning_tokens``. Details an upstream does not report stay 0 (and bill at the base rate)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A translated non-streaming answer: a serialized OpenAI ``chat.completion`` (or, from
    ``parse_embeddings``, an embeddings list) and the usage read from the upstream."""

    body: bytes
    usage: Usage | None


@dataclass(slots=True)
class UpstreamError(Exception):
    """A failed upstream call, classified. ``envelope`` is the OpenAI-shaped error to relay."""

    outcome: Outcome
    status: int | None = None
    message: str = ""
    retry_after: float | None = None
    envelope: dict | None = None

    def __str__(self) -> str:
        return f"{self.outcome.value} ({self.status}): {self.message}"


class StreamTranslator(Protocol):
    """Turns upstream SSE events into OpenAI ``chat.completion.chunk`` SSE frames (bytes).

    ``feed`` returns the frames to send for one event (often one, sometimes none) and raises
    ``UpstreamError`` for an error event or malformed data. ``finish`` returns the closing frames:
    the usage chunk when the client asked for it, then ``data: [DONE]``. ``usage`` is the
    upstream's usage once seen (counted once, whichever event carried it).
    """

    usage: Usage | None
    done: bool

    def feed(self, event: "SSEEvent") -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...


class Adapter(Protocol):
    kind: str
    default_headers: Mapping[str, str]

    def auth_headers(self, secret: str) -> dict[str, str]: ...

    def build_chat(self, chat: dict, target, *, stream: bool) -> UpstreamRequest: ...

    def parse_chat(self, body: bytes, *, model: str) -> ChatResult: ...

    def stream_translator(self, *, model: str, include_usage: bool) -> StreamTranslator: ...

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError: ...

    def build_embeddings(self, body: dict, target) -> UpstreamRequest: ...

    def parse_embeddings(self, body: bytes, *, model: str, request: dict) -> ChatResult: ...


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: bytes
    event: str | None = None


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds from ``retry-after-ms``, or ``retry-after`` as seconds or an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def usage_from_openai(data: dict | None) -> Usage | None:
    """Read an OpenAI ``usage`` object, tolerating nulls and missing fields."""
    if not isinstance(data, dict):
        return None
    details = data.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
    )


def load_json(body: bytes, what: str):
    """Parse an upstream JSON body; anything else is the upstream's fault (a retryable failure)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError(Outcome.SERVER_ERROR, 200, f"upstream sent {what} that is not JSON: {body[:200]!r}") from None


def usage_to_openai(usage: Usage) -> dict:
    out = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return out
