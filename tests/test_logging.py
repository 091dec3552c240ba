"""The access line's short road (app.logging.info_line) renders exactly what loguru's sinks would."""

from __future__ import annotations

import orjson
import pytest
from loguru import logger

from app.config import LoggingConfig
from app.logging import info_line, setup_logging

FIELDS = {"request_id": "req_1", "client": "ck-12345678", "status": 200, "latency_ms": 1.25, "stream": False, "error": "a b"}


@pytest.fixture
def log_file(tmp_path):
    yield tmp_path / "gateway.log"
    setup_logging(LoggingConfig())  # back to stderr only


def test_info_line_is_the_line_loguru_would_write(log_file):
    setup_logging(LoggingConfig(level="INFO", json=True, file=str(log_file)))
    logger.info("request", **FIELDS)
    info_line("request", FIELDS)
    via_loguru, direct = [orjson.loads(line) for line in log_file.read_text().splitlines()]
    assert list(direct) == list(via_loguru) == ["time", "level", "message", *FIELDS]
    assert direct["time"][:16] == via_loguru["time"][:16] and direct["time"].endswith("+00:00")
    assert {**direct, "time": None} == {**via_loguru, "time": None}


def test_info_line_follows_the_configured_level(log_file):
    setup_logging(LoggingConfig(level="WARNING", json=True, file=str(log_file)))
    info_line("request", FIELDS)
    logger.warning("kept", reason="x")
    lines = [orjson.loads(line) for line in log_file.read_text().splitlines()]
    assert [line["message"] for line in lines] == ["kept"]
