"""A real quick benchmark run: nginx mock, wrk, the bare proxy and coo-llm gateways (~25 s).

It checks that the harness measures what it claims (every row answered correctly, no errors,
both provider keys used, loop lag read from the gateway), not how fast anything is.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.procs import ROOT, find_program

ROWS = ["direct", "direct-stream", "bare-proxy", "memory-1w", "stream"]

pytestmark = pytest.mark.skipif(
    not (find_program("nginx") and find_program("wrk") and find_program("taskset")),
    reason="nginx, wrk and taskset are needed (make bench installs them)",
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "latest.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--rows", ",".join(ROWS), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text()), done.stdout


def test_every_row_ran_cleanly(quick_run):
    result, _ = quick_run
    rows = {row["id"]: row for row in result["rows"]}
    assert list(rows) == ROWS
    for row in rows.values():
        assert row["status"] == "ok", row
        assert row["errors"] == 0
        assert row["c32"]["requests"] > 0 and row["c1"]["requests"] > 0
        assert row["c1"]["p50_ms"] <= row["c1"]["p99_ms"]
        assert row["peak_rss_mb"] > 0


def test_gateway_rows_balance_over_both_keys_and_report_loop_lag(quick_run):
    result, _ = quick_run
    rows = {row["id"]: row for row in result["rows"]}
    for row_id in ("memory-1w", "stream"):
        row = rows[row_id]
        assert row["provider_keys_seen"] == ["mock#1", "mock#2"]
        assert row["cpu_us_per_request"] > 0
        assert row["loop_lag"]["1 connection"]["samples"] > 0
        assert row["added_p50_ms"] is not None


def test_stream_rows_time_first_byte_and_whole_answer(quick_run):
    result, _ = quick_run
    rows = {row["id"]: row for row in result["rows"]}
    for row_id in ("direct-stream", "stream"):
        times = rows[row_id]["stream_times"]
        assert times["count"] > 0 and times["errors"] == 0
        assert 0 < times["ttfb_p50_ms"] <= times["total_p50_ms"]
    assert rows["stream"]["added_ttfb_p50_ms"] is not None


def test_table_and_targets_are_printed(quick_run):
    result, stdout = quick_run
    assert stdout.startswith("| row | RPS @32 |")
    for row in result["rows"]:
        assert f"| {row['label']} |" in stdout
    figures = {item["figure"]: item for item in result["targets"]}
    assert figures["coo-llm (memory, 1 worker) RPS ÷ bare-proxy RPS at 32 connections"]["value"] > 0
    assert figures["coo-llm 2 workers ÷ 1 worker (Redis)"]["met"] is None  # not in this quick run
