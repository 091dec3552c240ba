"""Streams through the chat hub: a provider's chat translator feeding a front door's translator.

A front door that is not Chat Completions (the Responses API, Anthropic Messages) reaches a
provider that does not speak its format through the hub: the provider's ``StreamTranslator``
turns upstream events into ``chat.completion.chunk`` frames, and ``HubStream`` hands each
chunk, parsed, to the front door's translator, whose frames go to the client. The chat side is
asked for usage always (the front door's last events carry it), and its ``[DONE]`` ends nothing
the client sees: the front door's ``finish`` writes the closing events.

``HubStream`` is a ``StreamTranslator`` itself (``feed``, ``finish``, ``usage``, ``done``,
``usage_unreadable``), so the relay that drives it does not know it is two. The front door's
opening events (``start()``, when it has one) go out with its first frames, so an upstream that
sends nothing the client can see is still a failure that may fail over.
"""

from __future__ import annotations

from typing import Any, Protocol

from adapters.base import SSEEvent, StreamTranslator, Usage, load_json_event


class FrontStream(Protocol):
    """What a front door's translator offers: chat chunks in, its own SSE frames out."""

    def feed(self, chunk: dict) -> list[bytes]: ...

    def finish(self, usage: Usage | None = None) -> list[bytes]: ...


def chunk_of(frame: bytes) -> dict | None:
    """The chunk in one ``data: {...}\\n\\n`` frame, or None for ``[DONE]``."""
    data = frame[6:].strip() if frame.startswith(b"data: ") else frame.strip()
    if data == b"[DONE]":
        return None
    return load_json_event(data)


class HubStream:
    __slots__ = ("chat", "front", "_opening")

    def __init__(self, chat: StreamTranslator, front: Any) -> None:
        self.chat = chat
        self.front = front
        # The front door's opening events, made before anything is fed (they number its events
        # from 0), held until its first frames go out.
        self._opening: list[bytes] | None = front.start() if hasattr(front, "start") else None

    @property
    def usage(self) -> Usage | None:
        return self.chat.usage

    @property
    def done(self) -> bool:
        return self.chat.done

    @property
    def usage_unreadable(self) -> bool:
        return getattr(self.chat, "usage_unreadable", False)

    def _pass(self, frames: list[bytes], *, closing: bool = False) -> list[bytes]:
        out: list[bytes] = []
        for frame in frames:
            chunk = chunk_of(frame)
            if chunk is not None:
                out.extend(self.front.feed(chunk))
        if closing:
            out.extend(self.front.finish(self.chat.usage))
        if out and self._opening is not None:
            out[:0] = self._opening
            self._opening = None
        return out

    def feed(self, event: SSEEvent) -> list[bytes]:
        return self._pass(self.chat.feed(event))

    def finish(self) -> list[bytes]:
        return self._pass(self.chat.finish(), closing=True)

