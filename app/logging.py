"""loguru set-up: one line per event, JSON or text, to stderr and optionally a file.

Fields travel as loguru ``extra`` (``logger.bind(request_id=...)`` or keyword arguments), never
inside the message text, and never a secret: callers pass masked ids only.

The per-request access line (``info_line``) takes a shorter road to the same sinks: loguru's
record (caller frame, process, thread, timezone-aware time) cost more than everything else in
the line, once per request. ``info_line`` renders the line once per format, exactly as a loguru
``INFO`` record with those fields would be rendered, and writes it to the sinks that
``setup_logging`` configured, in order with loguru's own lines (same streams, same thread).
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import orjson
from loguru import logger

_STANDARD = ("time", "level", "message")
_INFO = 20  # loguru's INFO level number


def _render_json(moment: datetime, level: str, message: str, extra: dict, exception: str | None = None) -> bytes:
    line = {
        "time": moment.astimezone(timezone.utc).isoformat(timespec="milliseconds"),
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


class _Sink:
    """A loguru sink writing pre-rendered lines to a binary stream."""

    def __init__(self, stream, as_json: bool) -> None:
        self.stream = stream
        self.json = as_json

    def write(self, message) -> None:
        record = message.record
        self.stream.write(_json_line(record) if self.json else _text_line(record))
        self.stream.flush()


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
    moment = datetime.now().astimezone()
    rendered: dict[bool, bytes] = {}
    for sink in sinks:
        line = rendered.get(sink.json)
        if line is None:
            line = rendered[sink.json] = (_render_json if sink.json else _render_text)(moment, "INFO", message, fields)
        sink.stream.write(line)
        sink.stream.flush()


def setup_logging(config) -> None:
    """Configure loguru from a ``LoggingConfig``. Safe to call again (replaces the sinks)."""
    global _info_sinks
    logger.remove()
    sinks = [_Sink(sys.stderr.buffer, config.json_)]
    if config.file:
        handle = open(config.file, "ab", buffering=0)  # noqa: SIM115 - lives as long as the process
        sinks.append(_Sink(handle, True))
    for sink in sinks:
        logger.add(sink.write, level=config.level, format="{message}")
    _info_sinks = sinks if logger.level(config.level).no <= _INFO else []
