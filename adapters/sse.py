"""Server-sent events: an incremental decoder for upstream bytes and the frame encoder.

``SSEDecoder.feed(chunk)`` accepts bytes split anywhere (mid-line, mid-``\\r\\n``) and returns the
complete events so far. Multi-line ``data:`` fields are joined with ``\\n``; comments (``:``)
and fields we do not use (``id``, ``retry``) are ignored, as the SSE spec allows.
"""

from __future__ import annotations

import orjson

from adapters.base import SSEEvent

DONE_FRAME = b"data: [DONE]\n\n"


def frame(payload: dict) -> bytes:
    """One SSE ``data:`` frame holding ``payload`` as JSON."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class SSEDecoder:
    __slots__ = ("_buffer", "_data", "_event")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._event: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):  # maybe half of a \r\n; wait for the next chunk
                self._buffer = buffer
                return []
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, self._buffer = buffer.split(b"\n")
        events: list[SSEEvent] = []
        for line in lines:
            if not line:
                if self._data or self._event:
                    events.append(SSEEvent(b"\n".join(self._data), self._event))
                    self._data = []
                    self._event = None
                continue
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
        return events

    def close(self) -> list[SSEEvent]:
        """Flush an event the upstream did not end with a blank line."""
        events = self.feed(b"\n\n") if (self._buffer or self._data) else []
        self._buffer = b""
        return events
