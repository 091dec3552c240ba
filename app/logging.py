"""loguru set-up: one line per event, JSON or text, to stderr and optionally a file.

Fields travel as loguru ``extra`` (``logger.bind(request_id=...)`` or keyword arguments), never
inside the message text, and never a secret: callers pass masked ids only.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import orjson
from loguru import logger

_STANDARD = ("time", "level", "message")


def _json_line(record) -> bytes:
    line = {
        "time": datetime.fromtimestamp(record["time"].timestamp(), timezone.utc).isoformat(timespec="milliseconds"),
        "level": record["level"].name,
        "message": record["message"],
    }
    line.update(record["extra"])
    if record["exception"] is not None:
        line["exception"] = f"{record['exception'].type.__name__}: {record['exception'].value}"
    return orjson.dumps(line, default=str) + b"\n"


def _text_line(record) -> str:
    fields = " ".join(f"{k}={v}" for k, v in record["extra"].items())
    stamp = record["time"].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return f"{stamp} {record['level'].name:<7} {record['message']}" + (f" {fields}" if fields else "") + "\n"


class _Sink:
    """A loguru sink writing pre-rendered lines to a binary stream."""

    def __init__(self, stream, as_json: bool) -> None:
        self._stream = stream
        self._json = as_json

    def write(self, message) -> None:
        record = message.record
        if self._json:
            self._stream.write(_json_line(record))
        else:
            self._stream.write(_text_line(record).encode())
        self._stream.flush()


def setup_logging(config) -> None:
    """Configure loguru from a ``LoggingConfig``. Safe to call again (replaces the sinks)."""
    logger.remove()
    logger.add(_Sink(sys.stderr.buffer, config.json_).write, level=config.level, format="{message}")
    if config.file:
        handle = open(config.file, "ab", buffering=0)  # noqa: SIM115 - lives as long as the process
        logger.add(_Sink(handle, True).write, level=config.level, format="{message}")
