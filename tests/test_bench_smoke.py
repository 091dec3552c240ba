"""A real quick benchmark run: nginx mock, wrk, the bare proxy and coo-llm gateways (~45 s).

It checks that the harness measures what it claims (every row answered correctly, no errors,
both provider keys used, loop lag read from the gateway, the flame graph recorded), not how
fast anything is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench import spy
from bench.procs import ROOT, find_program

MEASURED = ["direct", "direct-stream", "bare-proxy", "bare-proxy-stream", "memory-1w", "stream", "responses", "messages"]
ROWS = MEASURED[:4] + ["tensorzero"] + MEASURED[4:]

pytestmark = [
    pytest.mark.skipif(
        not (find_program("nginx") and find_program("wrk") and find_program("taskset")),
        reason="nginx, wrk and taskset are needed (make bench installs them)",
    ),
    pytest.mark.timeout(240),
]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "latest.json"
    env = {name: value for name, value in os.environ.items() if name != "TENSORZERO_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--rows", ",".join(ROWS), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=220, env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text()), done.stdout, out


def test_every_row_ran_cleanly(quick_run):
    result, _, _ = quick_run
    rows = {row["id"]: row for row in result["rows"]}
    assert list(rows) == ROWS
    assert rows["tensorzero"]["status"] == "skipped" and "not available on this machine" in rows["tensorzero"]["reason"]
    for row in (rows[row_id] for row_id in MEASURED):
        assert row["status"] == "ok", row
        assert row["errors"] == 0
        assert row["c32"]["requests"] > 0 and row["c1"]["requests"] > 0
        assert row["c1"]["p50_ms"] <= row["c1"]["p99_ms"]
        assert row["peak_rss_mb"] > 0
        assert row["other_cpu_pct"] >= 0  # what else ran on the machine meanwhile


def test_gateway_rows_balance_over_both_keys_and_report_loop_lag(quick_run):
    result, _, _ = quick_run
    rows = {row["id"]: row for row in result["rows"]}
    for row_id in ("memory-1w", "stream", "responses", "messages"):
        row = rows[row_id]
        assert row["provider_keys_seen"] == ["mock#1", "mock#2"]
        assert row["cpu_us_per_request"] > 0
        assert row["loop_lag"]["1 connection"]["samples"] > 0
        assert row["added_p50_ms"] is not None


def test_stream_rows_time_first_byte_and_whole_answer(quick_run):
    result, _, _ = quick_run
    rows = {row["id"]: row for row in result["rows"]}
    for row_id in ("direct-stream", "bare-proxy-stream", "stream"):
        times = rows[row_id]["stream_times"]
        assert times["count"] > 0 and times["errors"] == 0
        assert 0 < times["ttfb_p50_ms"] <= times["total_p50_ms"]
    assert rows["stream"]["added_ttfb_p50_ms"] is not None


def test_table_and_targets_are_printed(quick_run):
    result, stdout, _ = quick_run
    assert stdout.startswith("| row | RPS @32 |")
    for row in result["rows"]:
        assert f"| {row['label']} |" in stdout
    targets = {item["id"]: item for item in result["targets"]}
    for target_id in ("rps-vs-bare", "cpu-vs-bare", "stream-rps-vs-bare", "responses-vs-chat", "added-ttft", "rss-rejections"):
        assert targets[target_id]["value"] is not None and targets[target_id]["met"] is not None, target_id
        assert targets[target_id]["figure"] in stdout
    assert targets["workers"]["met"] is None  # not in this quick run
    assert "not available on this machine" in targets["rps-vs-tensorzero"]["why_missing"]
    assert "RSS of a fresh memory gateway over 20 requests with 1 MB prompts" in stdout


@pytest.mark.skipif(spy.py_spy() is None, reason="py-spy is not installed")
def test_the_memory_row_gets_a_flame_graph_summarised_in_the_output(quick_run):
    result, stdout, out = quick_run
    flame = result["flame"]
    assert flame["status"] == "ok", flame
    assert flame["samples"] > 0 and flame["by_area"] and flame["ours"]
    svg = out.with_name("latest-flame-memory-1w.svg")
    assert svg.read_text().lstrip().startswith("<?xml") and svg.with_suffix(".md").exists()
    assert "Flame graph of coo-llm memory, 1 worker at 32 connections" in stdout
    assert "coo-llm functions by inclusive time" in stdout
