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

Upstream values of the wrong JSON type never raise anything but ``UpstreamError``:

- Token counts are read by ``read_count`` only. A usage with any count that is not a whole
  number from 0 to ``MAX_TOKEN_COUNT`` is unknown: ``usage`` is None and ``usage_unreadable`` is
  True (on ``ChatResult`` and on every stream translator), and the answer completes normally.
  Adapters do not log this per request; the app turns the flag into one warning and a metric.
- Error envelopes are built by ``error_envelope``: ``message``, ``type``, ``param`` and ``code``
  are always a string or None; a non-string ``message``, ``param`` or ``code`` becomes compact
  JSON text (which the redactor can scrub), a non-string ``type`` the default type.

``model`` is the name the client asked for, for adapters whose provider does not echo one.
"""

from __future__ import annotations

import email.utils
import math
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Mapping, Protocol, TypeVar

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
    headers: Mapping[str, str] | None = None  # per-request headers a front door passes through (never credentials)


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
    ``parse_embeddings``, an embeddings list) and the usage read from the upstream.

    ``usage_unreadable``: the upstream sent a usage whose counts are not token counts, so
    ``usage`` is None (unknown) although the upstream did report one."""

    body: bytes
    usage: Usage | None
    usage_unreadable: bool = False

    def with_body(self, body: bytes) -> "ChatResult":
        """The same answer, serialized as ``body`` (a front door's shape, a redacted copy)."""
        return ChatResult(body, self.usage, self.usage_unreadable)


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
    the usage chunk when the client asked for it, then ``data: [DONE]``; it raises
    ``UpstreamError`` (``SERVER_ERROR``) when the upstream's stream ended before its end marker,
    so a cut stream never reaches the client as a complete one. ``usage`` is the upstream's
    usage once seen (counted once, whichever event carried it); ``usage_unreadable`` is True
    while the latest usage seen had counts that are not token counts (``usage`` is then None).
    """

    usage: Usage | None
    usage_unreadable: bool
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


# ------------------------------------------------------------------ token counts

# Above any context window by orders of magnitude: a larger count is a broken upstream, and
# accepting it would let one answer exhaust a budget or overflow a counter.
MAX_TOKEN_COUNT = 1_000_000_000


class UnreadableUsage(ValueError):
    """A usage object holds a count that is not a token count (see ``read_count``)."""


def read_count(value: object) -> int | None:
    """A token count from upstream JSON, or None when it is not one.

    Missing (None) is 0. A count is an int, or a float with no fraction, from 0 to
    ``MAX_TOKEN_COUNT``; strings (even of digits), booleans, lists, objects, negative, NaN,
    infinite and larger numbers are not counts.
    """
    if value is None:
        return 0
    if type(value) is int:
        return value if 0 <= value <= MAX_TOKEN_COUNT else None
    if type(value) is float and math.isfinite(value) and value.is_integer() and 0 <= value <= MAX_TOKEN_COUNT:
        return int(value)
    return None


def count_in(data: Mapping, name: str) -> int:
    """``data[name]`` as a token count (missing is 0); raises ``UnreadableUsage`` naming it."""
    count = read_count(data.get(name))
    if count is None:
        raise UnreadableUsage(name)
    return count


Read = TypeVar("Read")


def read_usage(reader: Callable[[Any], Read | None], data: Any) -> tuple[Read | None, bool]:
    """``(reader(data), False)``, or ``(None, True)`` when a count in ``data`` is unreadable.

    ``reader`` reads one provider's usage object with ``count_in`` and returns None when the
    upstream sent no usage; every adapter reads usage through this, so "unknown" means the same
    everywhere."""
    try:
        return reader(data), False
    except UnreadableUsage:
        return None, True


def usage_from_openai(data: Any) -> Usage | None:
    """An OpenAI ``usage`` object (None when absent; counts through ``count_in``).

    A usage that is neither an object nor null is unreadable, as is a non-object
    ``prompt_tokens_details``."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise UnreadableUsage("usage")
    details = data.get("prompt_tokens_details")
    if details is not None and not isinstance(details, dict):
        raise UnreadableUsage("prompt_tokens_details")
    return Usage(count_in(data, "prompt_tokens"), count_in(data, "completion_tokens"), count_in(details or {}, "cached_tokens"))


# ------------------------------------------------------------------ upstream text and errors


def raw_excerpt(data: bytes, limit: int = 200) -> str:
    """The start of an upstream's raw bytes for an error message (never more than ``limit``)."""
    return repr(data[:limit])


def load_json_event(data: bytes) -> dict:
    """One stream event's JSON object; anything else is an ``UpstreamError`` quoting the raw text."""
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        raise UpstreamError(Outcome.SERVER_ERROR, 200, f"malformed stream event (not a JSON object): {raw_excerpt(data)}")
    return payload


def error_text(value: object) -> str | None:
    """An upstream error field as text: a string as it is, null as None, anything else as
    compact JSON (never ``repr``), so clients and the redactor see ordinary text."""
    if value is None or isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:  # only values built in Python can get here (e.g. ints beyond 64 bits)
        return str(value)


def error_envelope(message: object, fallback_message: str, *, error_type: object = None, param: object = None, code: object = None) -> dict:
    """An OpenAI error envelope whose four fields are a string or None, whatever the upstream put
    in them; an empty or missing ``message`` becomes ``fallback_message``, a non-string or empty
    ``type`` becomes ``upstream_error``."""
    return {
        "error": {
            "message": error_text(message) or fallback_message,
            "type": error_type if isinstance(error_type, str) and error_type else "upstream_error",
            "param": error_text(param),
            "code": error_text(code),
        }
    }


def load_json(body: bytes, what: str):
    """Parse an upstream JSON body; anything else is the upstream's fault (a retryable failure)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError(Outcome.SERVER_ERROR, 200, f"upstream sent {what} that is not JSON: {raw_excerpt(body)}") from None


def usage_to_openai(usage: Usage) -> dict:
    out = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return out
