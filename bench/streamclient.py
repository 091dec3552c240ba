"""Time to first byte and total time of streamed answers: a small blocking HTTP/1.1 client.

wrk cannot see when the first body byte arrives, so stream rows also run this client: one
keep-alive connection, requests one after another. For each it notes the time from sending the
request to the first byte of body data (after the headers; for a chunked body, the first data
byte of the first non-empty chunk) and to the end of the body. It parses just enough HTTP for
``Content-Length`` and chunked bodies, and costs far less than an HTTP library per read.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


class BodyReader:
    """Incremental body framing for ``Content-Length`` or chunked bodies.

    ``feed(bytes)`` may be called with any split of the body; ``data`` counts the body's data
    bytes seen so far (without chunk framing) and ``done`` turns true at the end of the body.
    """

    def __init__(self, headers: dict[str, str]) -> None:
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.length = 0 if self.chunked else int(headers.get("content-length", "0"))
        self.data = 0
        self.done = not self.chunked and self.length == 0
        self._buffer = b""
        self._left: int | None = None  # bytes left of the current chunk and its CRLF; None: size line next
        self._trailer = False

    def feed(self, raw: bytes) -> None:
        if not self.chunked:
            self.data += len(raw)
            self.done = self.data >= self.length
            return
        buffer = self._buffer + raw
        while not self.done:
            if self._trailer or self._left is None:
                end = buffer.find(b"\r\n")
                if end < 0:
                    break
                line, buffer = buffer[:end], buffer[end + 2 :]
                if self._trailer:
                    self.done = not line  # the trailer ends with an empty line
                    continue
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    self._trailer = True
                else:
                    self._left = size + 2
                continue
            if not buffer:
                break
            take = min(self._left, len(buffer))
            self.data += min(take, max(0, self._left - 2))
            self._left -= take
            buffer = buffer[take:]
            if self._left == 0:
                self._left = None
        self._buffer = buffer


@dataclass
class StreamTimes:
    ttfb_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


def _request_bytes(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}", "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _one(sock: socket.socket, request: bytes) -> tuple[int, float, float, bool]:
    """Send one request, read its answer: (status, ttfb seconds, total seconds, keep-alive)."""
    started = time.perf_counter()
    sock.sendall(request)
    buffer = b""
    now = started
    while b"\r\n\r\n" not in buffer:
        piece = sock.recv(65536)
        now = time.perf_counter()
        if not piece:
            raise ConnectionError("closed before the headers")
        buffer += piece
    head, _, rest = buffer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = BodyReader(headers)
    first = None
    if rest:
        body.feed(rest)
    while True:
        if first is None and body.data:
            first = now
        if body.done:
            break
        piece = sock.recv(65536)
        now = time.perf_counter()
        if not piece:
            raise ConnectionError("closed mid-body")
        body.feed(piece)
    end = time.perf_counter()
    keep = headers.get("connection", "").lower() != "close"
    return status, (first or end) - started, end - started, keep


def time_streams(port: int, path: str, body: bytes, headers: dict[str, str], *, count: int, timeout: float = 30.0) -> StreamTimes:
    """Send ``count`` requests one after another on one keep-alive connection (reconnecting if closed)."""
    request = _request_bytes(port, path, body, headers)
    times = StreamTimes()
    sock = None
    for _ in range(count):
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            status, ttfb, total, keep = _one(sock, request)
        except (OSError, ValueError):
            times.errors += 1
            sock.close()
            sock = None
            continue
        times.statuses[status] = times.statuses.get(status, 0) + 1
        if not 200 <= status < 300:
            times.errors += 1
        else:
            times.ttfb_ms.append(ttfb * 1000)
            times.total_ms.append(total * 1000)
        if not keep:
            sock.close()
            sock = None
    if sock is not None:
        sock.close()
    return times
