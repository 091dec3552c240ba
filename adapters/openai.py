"""OpenAI Chat Completions, and any OpenAI-compatible server (``custom``): nearly a pass-through.

The request goes upstream as the client sent it, except: ``model`` becomes the target's model,
streams always ask for usage (``stream_options.include_usage``; the gateway needs it for
accounting), a provider ``limits.max_tokens`` caps ``max_tokens``/``max_completion_tokens``, and
the provider's ``drop_params`` are removed. Every other parameter passes through untouched.

Responses pass through byte for byte. Streams pass through frame by frame, except usage: the
translator takes it from whichever chunk carries it and gives it to the client once, in a final
``choices: []`` chunk, and only if the client asked for it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Mapping
from urllib.parse import urlsplit

import orjson

from adapters.base import (
    ChatResult,
    SSEEvent,
    UpstreamError,
    UpstreamRequest,
    Usage,
    parse_retry_after,
    usage_from_openai,
)
from adapters.sse import DONE_FRAME, frame
from balancer.health import Outcome, outcome_for_status

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_GO_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@lru_cache(maxsize=256)
def api_base(base_url: str) -> str:
    """``base_url`` works with or without ``/v1``: a bare host gets ``/v1``, any path is kept."""
    base = base_url.rstrip("/")
    return base + "/v1" if urlsplit(base).path in ("", "/") else base


def parse_go_duration(value: str | None) -> float | None:
    """Seconds from OpenAI's ``x-ratelimit-reset-*`` values such as ``6m0s`` or ``20ms``."""
    if not value:
        return None
    parts = _GO_DURATION.findall(value)
    if not parts:
        return None
    return sum(float(number) * _GO_UNITS[unit] for number, unit in parts)


def openai_envelope(data: object, fallback_message: str) -> dict:
    """An OpenAI error envelope from whatever the upstream sent, with all four fields present."""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str):
        error = {"message": error}
    if not isinstance(error, dict):
        error = {}
    return {
        "error": {
            "message": str(error.get("message") or fallback_message),
            "type": error.get("type") or "upstream_error",
            "param": error.get("param"),
            "code": error.get("code"),
        }
    }


class OpenAIAdapter:
    def __init__(self, kind: str = "openai") -> None:
        self.kind = kind

    def auth_headers(self, secret: str) -> dict[str, str]:
        return {"authorization": f"Bearer {secret}"}

    def build_chat(self, chat: dict, target, *, stream: bool) -> UpstreamRequest:
        body = dict(chat)
        body["model"] = target.model
        if stream:
            options = chat.get("stream_options")
            body["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
        cap = target.max_tokens
        if cap:
            for name in ("max_tokens", "max_completion_tokens"):
                value = body.get(name)
                if isinstance(value, int) and value > cap:
                    body[name] = cap
        for name in target.drop_params:
            body.pop(name, None)
        return UpstreamRequest(api_base(target.base_url) + "/chat/completions", orjson.dumps(body))

    def parse_chat(self, body: bytes, *, model: str) -> ChatResult:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamError(Outcome.SERVER_ERROR, 200, "upstream sent a response that is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise UpstreamError(Outcome.SERVER_ERROR, 200, "upstream sent JSON that is not a chat completion")
        return ChatResult(body, usage_from_openai(data.get("usage")))

    def stream_translator(self, *, model: str, include_usage: bool) -> "OpenAIStream":
        return OpenAIStream(model=model, include_usage=include_usage)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        text = body[:300].decode("utf-8", "replace").strip() if data is None else ""
        envelope = openai_envelope(data, text or f"upstream answered HTTP {status}")
        outcome = outcome_for_status(status)
        retry_after = parse_retry_after(headers)
        if retry_after is None and outcome is Outcome.RATE_LIMITED:
            resets = [parse_go_duration(headers.get(h)) for h in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")]
            retry_after = max((r for r in resets if r is not None), default=None)
        return UpstreamError(outcome, status, envelope["error"]["message"], retry_after, envelope)


class OpenAIStream:
    """Per-stream state for an OpenAI-compatible upstream (see the module docstring)."""

    __slots__ = ("include_usage", "model", "usage", "done", "_usage_raw", "_head")

    def __init__(self, *, model: str, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.model = model
        self.usage: Usage | None = None
        self.done = False
        self._usage_raw: dict | None = None
        self._head: dict | None = None  # id / created / model of the stream, for the usage chunk

    def feed(self, event: SSEEvent) -> list[bytes]:
        data = event.data
        if data == b"[DONE]":
            self.done = True
            return []
        if not data.strip():
            return []
        if self._head is not None and b'"usage"' not in data and b'"error"' not in data:
            return [b"data: " + data + b"\n\n"]  # the common case: forward the frame untouched
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError(Outcome.SERVER_ERROR, 200, f"malformed stream event: {data[:200]!r}") from None
        if not isinstance(chunk, dict):
            raise UpstreamError(Outcome.SERVER_ERROR, 200, f"malformed stream event: {data[:200]!r}")
        if "error" in chunk and "choices" not in chunk:
            envelope = openai_envelope(chunk, "upstream stream error")
            raise UpstreamError(Outcome.SERVER_ERROR, None, envelope["error"]["message"], None, envelope)
        if self._head is None:
            self._head = {
                "id": chunk.get("id") or "chatcmpl-coo",
                "created": chunk.get("created") or 0,
                "model": chunk.get("model") or self.model,
            }
            if chunk.get("system_fingerprint"):
                self._head["system_fingerprint"] = chunk["system_fingerprint"]
        usage = chunk.get("usage")
        if usage:
            self._usage_raw = usage
            self.usage = usage_from_openai(usage)
        if not chunk.get("choices"):
            return []  # a usage-only chunk: re-sent by finish() if the client asked
        if usage is not None:
            del chunk["usage"]
            return [frame(chunk)]
        return [b"data: " + data + b"\n\n"]

    def finish(self) -> list[bytes]:
        frames = []
        if self.include_usage and self._usage_raw is not None:
            head = self._head or {"id": "chatcmpl-coo", "created": 0, "model": self.model}
            frames.append(frame({**head, "object": "chat.completion.chunk", "choices": [], "usage": self._usage_raw}))
        frames.append(DONE_FRAME)
        return frames
