"""loguru set-up: one line per event, JSON or text, to stderr and optionally a file.

Fields travel as loguru ``extra`` (``logger.bind(request_id=...)`` or keyword arguments), never
inside the message text, and never a secret: callers pass masked ids only.

The per-request access line (``info_line``) takes a shorter road to the same sinks: loguru's
record (caller frame, process, thread, timezone-aware time) cost more than everything else in
the line, once per request. ``info_line`` renders the line once per format, exactly as a loguru
``INFO`` record with those fields would be rendered, and writes it to the sinks that
``setup_logging`` configured, in order with loguru's own lines (same streams). Inside a running
event loop the access lines of one loop turn are written together at the end of the turn (one
write instead of one per request); a loguru line first writes out any access line still
pending, so the order of lines is kept. Outside a loop every line is written at once.

Redaction: with ``set_log_redactor(redactor)`` every write of these sinks (one loguru line, or the
access lines of one loop turn together) passes through ``redactor.scrub_bytes`` right before it
reaches the stream: loguru's lines and access lines, JSON and text, with the exception text a
JSON line carries, are scrubbed once as final bytes, whatever field holds a secret. It is process-wide and covers
only the sinks of ``setup_logging`` (not loguru's default sink before it is called).
"""

from __future__ import annotations

import asyncio
import atexit
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from loguru import logger

if TYPE_CHECKING:
    from app.redact import Redactor

_STANDARD = ("time", "level", "message")
_INFO = 20  # loguru's INFO level number


def _render_json(moment: datetime | str, level: str, message: str, extra: dict, exception: str | None = None) -> bytes:
    line = {
        "time": moment if isinstance(moment, str) else moment.astimezone(timezone.utc).isoformat(timespec="milliseconds"),
        "level": level,
        "message": message,
    }
    line.update(extra)
    if exception is not None:
        line["exception"] = exception
    return orjson.dumps(line, default=str) + b"\n"


def _render_text(moment: datetime, level: str, message: str, extra: dict) -> bytes:
    fields = " ".join(f"{k}={v}" for k, v in extra.items())
    stamp = moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return (f"{stamp} {level:<7} {message}" + (f" {fields}" if fields else "") + "\n").encode()


def _json_line(record) -> bytes:
    error = record["exception"]
    exception = f"{error.type.__name__}: {error.value}" if error is not None else None
    return _render_json(record["time"], record["level"].name, record["message"], record["extra"], exception)


def _text_line(record) -> bytes:
    return _render_text(record["time"], record["level"].name, record["message"], record["extra"])


# What every write of the sinks passes through (set_log_redactor); None: written as rendered.
_log_redactor: Redactor | None = None


def set_log_redactor(redactor: Redactor | None) -> None:
    """Scrub every line the sinks of ``setup_logging`` write with ``redactor`` (process-wide,
    from the next write on, lines already queued included); ``None`` turns scrubbing off."""
    global _log_redactor
    _log_redactor = redactor


class _Sink:
    """A loguru sink writing pre-rendered lines to a binary stream. ``add`` queues an access
    line to be written at the end of the current loop turn (at once without a running loop);
    loguru's lines (``write``) go out at once, after any queued ones."""

    def __init__(self, stream, as_json: bool) -> None:
        self.stream = stream
        self.json = as_json
        self._pending: list[bytes] = []
        self._lock = threading.Lock()  # loguru may call ``write`` from another thread

    def write(self, message) -> None:
        record = message.record
        line = _json_line(record) if self.json else _text_line(record)
        with self._lock:
            self._pending.append(line)
            self._write_pending()

    def add(self, line: bytes) -> None:
        with self._lock:
            self._pending.append(line)
            if len(self._pending) > 1:
                return  # a flush is already scheduled for this turn
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # no loop running here: write now
            self.flush()

    def flush(self) -> None:
        with self._lock:
            self._write_pending()

    def _write_pending(self) -> None:
        if self._pending:
            data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._pending.clear()
            redactor = _log_redactor
            if redactor is not None:
                data = redactor.scrub_bytes(data)  # once per write, however many lines it holds
            self.stream.write(data)
            self.stream.flush()


class _UtcStamp:
    """``time.time()`` as loguru's JSON lines show it (UTC, ISO 8601, milliseconds), with the
    date-and-seconds part rendered once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second, self._prefix = second, datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{int((now - second) * 1000):03d}+00:00"


_utc_stamp = _UtcStamp()


# The sinks of the last setup_logging() if they take INFO lines; None before it (loguru's default).
_info_sinks: list[_Sink] | None = None


def info_line(message: str, fields: dict) -> None:
    """Log ``message`` at INFO with ``fields`` as its extra, like ``logger.info(message, **fields)``
    rendered by ``setup_logging``'s sinks, but without building a loguru record."""
    sinks = _info_sinks
    if sinks is None:  # logging not set up here (an embedding app): let loguru decide
        logger.info(message, **fields)
        return
    if not sinks:
        return
    now = time.time()
    rendered: dict[bool, bytes] = {}
    for sink in sinks:
        line = rendered.get(sink.json)
        if line is None:
            if sink.json:
                line = _render_json(_utc_stamp(now), "INFO", message, fields)
            else:
                line = _render_text(datetime.fromtimestamp(now).astimezone(), "INFO", message, fields)
            rendered[sink.json] = line
        sink.add(line)


def setup_logging(config) -> None:
    """Configure loguru from a ``LoggingConfig``, creating the log file's folder if missing. Safe
    to call again (replaces the sinks)."""
    global _info_sinks
    logger.remove()
    for old in _info_sinks or ():
        old.flush()
    sinks = [_Sink(sys.stderr.buffer, config.json_)]
    if config.file:
        Path(config.file).parent.mkdir(parents=True, exist_ok=True)  # app.preflight checked that it can be
        handle = open(config.file, "ab", buffering=0)  # noqa: SIM115 - lives as long as the process
        sinks.append(_Sink(handle, True))
    for sink in sinks:
        logger.add(sink.write, level=config.level, format="{message}")
    _info_sinks = sinks if logger.level(config.level).no <= _INFO else []


def flush_logs() -> None:
    """Write out access lines still queued (at shutdown)."""
    for sink in _info_sinks or ():
        sink.flush()


atexit.register(flush_logs)
