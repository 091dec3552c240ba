"""Anthropic Messages requests to an Anthropic provider: native, untranslated.

A ``/v1/messages`` client whose model resolves to an Anthropic target gets Anthropic itself:
the body goes up as sent (only ``model`` becomes the target's), so ``cache_control``, thinking
blocks and their signatures, server tools and fields this gateway has never heard of all
arrive; the answer comes back as Anthropic sent it. The gateway only reads usage (for windows
and cost) and watches the stream for errors and its end.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson
from loguru import logger

from adapters.anthropic import anthropic_error, anthropic_usage_to_usage
from adapters.base import AdapterError, Outcome, SSEEvent, UpstreamError, Usage

USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")

_EVENT_NAME = re.compile(rb"[A-Za-z0-9_.\-]+")


def native_messages_request(body: dict, target_model: str) -> bytes:
    """The body to send upstream: ``body`` with ``model`` set to ``target_model``, nothing else changed."""
    if not isinstance(body, dict):
        raise AdapterError("The request body must be a JSON object.", param=None, code="invalid_type")
    try:
        return orjson.dumps({**body, "model": target_model})
    except TypeError:
        raise AdapterError("The request holds a value JSON cannot carry upstream (an integer past 64 bits?).", code="invalid_value") from None


def usage_counts(usage: Any) -> dict[str, int] | None:
    """The token counts of an Anthropic ``usage`` object (absent or null ones left out), or None
    when it is not an object or a count is not a non-negative number."""
    if not isinstance(usage, dict):
        return None
    counts = {}
    for name in USAGE_FIELDS:
        value = usage.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            return None
        counts[name] = int(value)
    return counts


def message_usage(message: dict) -> Usage | None:
    """Usage of an Anthropic ``message``: prompt = input + cache reads + cache writes, cached = reads."""
    counts = usage_counts(message.get("usage")) if isinstance(message, dict) else None
    return anthropic_usage_to_usage(counts) if counts is not None else None


def sse_frame(event: str | None, data: bytes) -> bytes:
    """An SSE frame with ``data`` as it came (a multi-line payload keeps one ``data:`` line per line)."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"".join(b"data: " + line + b"\n" for line in data.split(b"\n")) + b"\n"


class NativeMessagesStream:
    """Relays an Anthropic stream event by event (a ``StreamTranslator`` that translates nothing).

    ``feed`` returns each event re-framed (``event:`` + the untouched ``data:``); it reads usage
    from ``message_start`` and ``message_delta`` (cumulative: the latest value of each count
    wins) and raises ``UpstreamError`` for an ``error`` event or data that is not a JSON object.
    ``finish`` raises ``UpstreamError`` if ``message_stop`` never came, else returns nothing.
    """

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.usage_unreadable = False
        self.done = False
        self._counts: dict[str, int] = {}

    def feed(self, event: SSEEvent) -> list[bytes]:
        data = event.data
        if not data.strip():
            return [sse_frame(event.event, data)] if event.event else []
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError(Outcome.SERVER_ERROR, 200, f"malformed stream event: {data[:200]!r}") from None
        if not isinstance(payload, dict):
            raise UpstreamError(Outcome.SERVER_ERROR, 200, f"malformed stream event: {data[:200]!r}")
        kind = payload.get("type") if isinstance(payload.get("type"), str) else event.event
        if kind == "error":
            raise anthropic_error(payload, None)
        if kind == "message_start":
            message = payload.get("message")
            self._take_usage(message.get("usage") if isinstance(message, dict) else None)
        elif kind == "message_delta":
            self._take_usage(payload.get("usage"))
        elif kind == "message_stop":
            self.done = True
        name = event.event or kind
        if name and not _EVENT_NAME.fullmatch(name.encode()):
            name = None  # never let a payload's type write SSE lines of its own
        return [sse_frame(name, data)]

    def finish(self) -> list[bytes]:
        if not self.done:
            raise UpstreamError(Outcome.SERVER_ERROR, None, "the Anthropic stream ended before message_stop")
        return []

    def _take_usage(self, usage: Any) -> None:
        if usage is None:
            return
        counts = usage_counts(usage)
        if counts is None:  # unknown, never a guess: the app warns once and counts it
            self.usage, self.usage_unreadable = None, True
            return
        self._counts.update(counts)
        self.usage = anthropic_usage_to_usage(self._counts)
