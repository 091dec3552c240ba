"""The benchmark harness's own logic: statistics, targets, the table, parsers and the mock's bodies.

No processes here (see test_bench_smoke.py for a real quick run).
"""

from __future__ import annotations

import math

import orjson
import pytest

from bench import flame, mock, stats, wrk
from bench.rows import BY_ID, CLIENT_KEY, ROWS, TENSORZERO_MISSING, chat_body, gateway_config
from bench.run import ALL_CPUS, QUICK, Endpoint, Run, flame_path
from bench.streamclient import BodyReader


def ok_row(row_id: str, *, rps: float | None = None, c1_p50: float | None = None, ttfb: float | None = None, **extra) -> dict:
    row = {"id": row_id, "label": row_id, "status": "ok", "baseline": "direct", "errors": 0}
    if rps is not None:
        row["c32"] = {"rps": rps, "p50_ms": 1.0, "p99_ms": 2.0}
    if c1_p50 is not None:
        row["c1"] = {"p50_ms": c1_p50, "p99_ms": c1_p50 * 2}
    if ttfb is not None:
        row["stream_times"] = {"ttfb_p50_ms": ttfb, "total_p50_ms": ttfb * 2}
    row.update(extra)
    return row


# ------------------------------------------------------------------ statistics


def test_percentile_interpolates_between_ranks():
    assert stats.percentile([4, 1, 3, 2], 50) == 2.5
    assert stats.percentile([10, 20, 30], 0) == 10
    assert stats.percentile([10, 20, 30], 100) == 30
    assert stats.percentile([10, 20, 30], 75) == 25
    assert stats.percentile([7], 99) == 7
    assert stats.percentile([], 50) is None


def full_run() -> tuple[dict[str, dict], dict]:
    """Every row a full run measures (TensorZero skipped, as on this machine), and its extras."""
    rows = {
        "direct": ok_row("direct", rps=60000, c1_p50=0.02),
        "direct-stream": ok_row("direct-stream", ttfb=0.03),
        "bare-proxy": ok_row("bare-proxy", rps=6000, c1_p50=0.4, cpu_us_per_request=150.0),
        "bare-proxy-stream": ok_row("bare-proxy-stream", rps=4000, ttfb=0.3),
        "tensorzero": {"id": "tensorzero", "label": "TensorZero gateway", "status": "skipped", "reason": TENSORZERO_MISSING},
        "memory-1w": ok_row("memory-1w", rps=4800, c1_p50=0.45, cpu_us_per_request=210.0),
        "redis-1w": ok_row("redis-1w", rps=3600),
        "redis-1w-unpinned": ok_row("redis-1w-unpinned", rps=3700),
        "redis-2w": ok_row("redis-2w", rps=6327),
        "stream": ok_row("stream", rps=2800, ttfb=1.53),
        "responses": ok_row("responses", rps=4200),
        "anthropic": ok_row("anthropic", rps=4000),
        "messages": ok_row("messages", rps=3700),
    }
    extra = {
        "rss_growth": {"ratio": 1.2},
        "rss_after_rejections": {
            "requests": 200, "prompt_mb": 1,
            "rejected": {"growth_mb": 14.5, "unexpected_status": 0}, "answered": {"growth_mb": 6.0, "unexpected_status": 0},
        },
    }
    return rows, extra


def test_targets_are_ratios_and_differences_of_rows_in_the_same_run():
    rows, extra = full_run()
    results = {item["id"]: item for item in stats.evaluate(rows, extra)}
    assert list(results) == [target.id for target in stats.TARGETS]
    expected = {
        "rps-vs-bare": (0.8, True),
        "cpu-vs-bare": (1.4, False),
        "added-p50": (0.43, True),
        "added-ttft": (1.5, False),
        "stream-rps-vs-bare": (0.7, False),
        "redis-vs-memory": (0.75, False),
        "workers": (1.71, True),  # against the unpinned 1-worker row (the pinned one would give 1.7575)
        "anthropic-vs-openai": (4000 / 4800, False),
        "responses-vs-chat": (0.875, False),  # against the chat row to the same OpenAI mock
        "messages-vs-chat": (0.925, True),  # against the chat row to the same Anthropic mock
        "rss-growth": (1.2, False),
        "rss-rejections": (8.5, True),
    }
    for target_id, (value, met) in expected.items():
        assert results[target_id]["value"] == pytest.approx(value, abs=1e-4), target_id
        assert results[target_id]["met"] is met, target_id
    assert results["added-p50"]["target"] == "<= 0.5 ms" and results["workers"]["target"] == ">= 1.7"


def test_tensorzero_is_reported_as_not_available_with_its_reason():
    rows, extra = full_run()
    item = next(item for item in stats.evaluate(rows, extra) if item["id"] == "rps-vs-tensorzero")
    assert item["value"] is None and item["met"] is None
    assert "tensorzero: not available on this machine" in item["why_missing"]
    assert "TENSORZERO_URL" in item["why_missing"]
    rows["tensorzero"] = ok_row("tensorzero", rps=5000)
    item = next(item for item in stats.evaluate(rows, extra) if item["id"] == "rps-vs-tensorzero")
    assert item["value"] == pytest.approx(0.96) and item["met"] is False


def test_rejection_growth_is_judged_against_the_answered_control_and_only_when_statuses_were_right():
    _, extra = full_run()
    run = extra["rss_after_rejections"]
    assert stats.rejected_extra_growth(extra) == pytest.approx(8.5)
    run["rejected"]["growth_mb"] = 206.0  # every rejected 1 MB body kept
    assert stats.BY_TARGET["rss-rejections"].value({}, extra) == pytest.approx(200.0)
    assert next(i for i in stats.evaluate({}, extra) if i["id"] == "rss-rejections")["met"] is False
    run["rejected"]["unexpected_status"] = 3  # the upstream did not reject them all: the figure means nothing
    assert stats.rejected_extra_growth(extra) is None
    assert stats.rejected_extra_growth({"rss_after_rejections": {"rejected": {"status": "failed", "reason": "x"}}}) is None


def test_rows_measured_while_other_processes_ran_are_named_and_mark_their_targets():
    rows, extra = full_run()
    rows["redis-1w"]["other_cpu_pct"] = 35.0
    rows["memory-1w"]["other_cpu_pct"] = 4.0  # below the line: ordinary background
    results = {item["id"]: item for item in stats.evaluate(rows, extra)}
    assert results["redis-vs-memory"]["noisy"] == ["redis-1w"]
    assert results["rps-vs-bare"]["noisy"] == []
    listed = [dict(row, label=row.get("label", row_id)) for row_id, row in rows.items()]
    text = stats.markdown({"rows": listed, "targets": list(results.values())})
    assert "more than 10% of a core while these rows were measured at 32 connections: redis-1w (35%)." in text
    assert "| **not met** (others used CPU during redis-1w) |" in text
    assert "(others used CPU during" not in text.split("RPS @32: coo-llm memory, 1 worker ÷ bare-proxy")[1].split("\n")[0]


def test_a_skipped_row_leaves_its_targets_unmeasured_and_says_why():
    rows = {
        "memory-1w": ok_row("memory-1w", rps=4800),
        "redis-1w": {"id": "redis-1w", "label": "redis", "status": "skipped", "reason": "no redis backend"},
    }
    results = {item["id"]: item for item in stats.evaluate(rows)}
    redis = results["redis-vs-memory"]
    assert redis["value"] is None and redis["met"] is None
    assert "no redis backend" in redis["why_missing"]
    assert "bare-proxy: not run" in results["rps-vs-bare"]["why_missing"]


def test_an_invalid_row_never_counts_as_a_result():
    rows = {
        "memory-1w": ok_row("memory-1w", rps=4800, status="invalid", reason="3 non-2xx"),
        "bare-proxy": ok_row("bare-proxy", rps=6000),
    }
    item = stats.evaluate(rows)[0]
    assert item["value"] is None and item["met"] is None


def test_added_latency_subtracts_the_rows_own_baseline():
    rows = {"direct": ok_row("direct", c1_p50=0.02), "direct-stream": ok_row("direct-stream", c1_p50=0.03, ttfb=0.025)}
    stream = ok_row("stream", c1_p50=1.03, ttfb=0.9, baseline="direct-stream", stream=True)
    added = stats.added_latency(rows, stream)
    assert added["added_p50_ms"] == pytest.approx(1.0)
    assert added["added_ttfb_p50_ms"] == pytest.approx(0.875)
    assert stats.added_latency(rows, rows["direct"]) == {}


def test_markdown_shows_every_row_and_target():
    rows = [
        ok_row("direct", rps=60000, c1_p50=0.02, peak_rss_mb=9.5, cpu_us_per_request=7.0),
        {"id": "redis-1w", "label": "coo-llm Redis, 1 worker", "status": "skipped", "reason": "no redis"},
        ok_row("memory-1w", rps=100, c1_p50=1.0, status="invalid", reason="5 failed or non-2xx responses", errors=5),
    ]
    result = {"rows": rows, "targets": stats.evaluate({r["id"]: r for r in rows}), "rss_growth": {"status": "skipped", "reason": "quick run"}}
    text = stats.markdown(result)
    lines = text.splitlines()
    assert lines[0].startswith("| row | RPS @32 |")
    assert "| direct | 60,000 | 0.020 |" in text
    assert "skipped: no redis" in text
    assert "INVALID: 5 failed or non-2xx responses" in text
    assert all(target.figure in text for target in stats.TARGETS)
    assert "RSS growth: skipped: quick run" in text
    header_cells = lines[0].count("|")
    assert all(line.count("|") == header_cells for line in lines[2:5])


def test_markdown_states_the_rejection_figure_and_its_verdict():
    rows, extra = full_run()
    result = {"rows": [], "targets": stats.evaluate(rows, extra), **extra}
    result["rss_after_rejections"]["rejected"].update(rss_mb_before=60.0, rss_mb_after=74.5)
    result["rss_after_rejections"]["answered"].update(rss_mb_before=60.2, rss_mb_after=66.2)
    text = stats.markdown(result)
    assert "over 200 requests with 1 MB prompts: rejected by the upstream (400) 60.0 → 74.5 MB (+14.5 MB); answered (200) 60.2 → 66.2 MB (+6.0 MB)" in text
    assert "Rejected beyond answered: +8.5 MB (goal ≤ 10 MB; a body kept per rejected request would add 200 MB)." in text
    assert "| +8.5 MB | <= 10 MB | met |" in text
    failed = {"requests": 20, "prompt_mb": 1, "rejected": {"status": "failed", "reason": "RuntimeError: boom"}, "answered": {"growth_mb": 1.0, "rss_mb_before": 1.0, "rss_mb_after": 2.0}}
    text = stats.markdown({"rows": [], "targets": [], "rss_after_rejections": failed})
    assert "rejected: failed: RuntimeError: boom" in text and "beyond answered" not in text


def test_markdown_summarises_the_flame_graph_or_says_why_there_is_none():
    lines = [
        "main (/repo/app/cli.py);answer (/repo/app/service.py);send (/v/lib/python3.11/site-packages/aiohttp/client.py) 6",
        "main (/repo/app/cli.py);answer (/repo/app/service.py) 3",
        "main (/repo/app/cli.py);run (/v/lib/python3.11/site-packages/sanic/app.py) 1",
    ]
    frames = flame.top_frames(flame.summarize(flame.parse(lines, "/repo")), top=10)
    assert frames["by_area"] == [["aiohttp", 6], ["coo-llm app/", 3], ["sanic", 1]]
    assert frames["ours"] == [["answer (app/service.py)", 9]]  # main is on every stack: left out
    entry = {"status": "ok", "label": "coo-llm memory, 1 worker", "connections": 32, "rate": 250, "seconds": 10, "svg": "bench/results/x.svg", **frames}
    text = stats.markdown({"rows": [], "targets": [], "flame": entry})
    assert "Flame graph of coo-llm memory, 1 worker at 32 connections: `bench/results/x.svg`" in text
    assert "| 60.0% | 6 | `aiohttp` |" in text and "| 90.0% | 9 | `answer (app/service.py)` |" in text
    text = stats.markdown({"rows": [], "targets": [], "flame": {"status": "skipped", "reason": "py-spy is not installed"}})
    assert "Flame graph: skipped: py-spy is not installed" in text


def test_markdown_shows_the_rss_reading_after_the_windows_fill():
    growth = {"status": "ok", "reason": None, "requests_at_first": 20_500, "rss_mb_at_first": 60.0,
              "requests_at_last": 201_000, "rss_mb_at_last": 64.2, "ratio": 1.07,
              "requests_at_after": 502_000, "rss_mb_at_after": 64.9, "ratio_after": 1.0109}
    text = stats.markdown({"rows": [], "targets": [], "rss_growth": growth})
    assert "60.0 MB after 20,500 requests, 64.2 MB after 201,000: ratio 1.070." in text
    assert "64.9 MB after 502,000 requests, 1.011× the 201,000 figure." in text
    del growth["ratio_after"]
    assert "502,000" not in stats.markdown({"rows": [], "targets": [], "rss_growth": growth})

# ------------------------------------------------------------------ Prometheus histogram


EXPOSITION = """# HELP coo_llm_event_loop_lag_seconds lag
# TYPE coo_llm_event_loop_lag_seconds histogram
coo_llm_event_loop_lag_seconds_bucket{le="0.0005"} 90.0
coo_llm_event_loop_lag_seconds_bucket{le="0.001"} 98.0
coo_llm_event_loop_lag_seconds_bucket{le="0.05"} 99.0
coo_llm_event_loop_lag_seconds_bucket{le="0.1"} 100.0
coo_llm_event_loop_lag_seconds_bucket{le="+Inf"} 100.0
coo_llm_event_loop_lag_seconds_count 100.0
coo_llm_request_duration_seconds_bucket{le="0.001",provider="mock"} 7.0
"""


def test_histogram_buckets_deltas_and_quantile_bounds():
    after = stats.histogram(EXPOSITION, "coo_llm_event_loop_lag_seconds")
    assert after == {0.0005: 90.0, 0.001: 98.0, 0.05: 99.0, 0.1: 100.0, math.inf: 100.0}
    before = {0.0005: 40.0, 0.001: 40.0, 0.05: 40.0, 0.1: 40.0, math.inf: 40.0}
    delta = stats.histogram_delta(after, before)
    assert delta[math.inf] == 60.0
    assert stats.bucket_quantile(delta, 0.5) == 0.0005
    summary = stats.lag_summary(delta)
    assert summary == {"samples": 60, "p50_le_ms": 0.5, "p99_le_ms": 100.0, "max_le_ms": 100.0, "over_50ms": 1}
    assert stats.lag_summary({math.inf: 0.0}) is None


# ------------------------------------------------------------------ wrk, flame, stream framing


def test_wrk_script_carries_the_body_and_headers_and_its_result_line_parses():
    script = wrk.lua_script(b'{"model":"m"}', {"Authorization": "Bearer k"})
    assert 'wrk.body = [==[{"model":"m"}]==]' in script
    assert 'wrk.headers["Authorization"] = "Bearer k"' in script
    output = (
        "Running 2s test\n"
        'BENCH {"requests":5000,"duration_us":2000000,"bytes":1,"connect":0,"read":1,"write":0,"status":2,"timeout":0,'
        '"p50_us":310,"p90_us":400,"p99_us":900,"mean_us":320.5,"max_us":4000}\n'
    )
    result = wrk.parse_output(output)
    assert result.rps == 2500.0
    assert result.errors == 3 and result.status_errors == 2
    assert result.p99_us == 900.0
    with pytest.raises(ValueError):
        wrk.parse_output("no result")


def test_flame_summary_attributes_self_time_by_area_and_function():
    lines = [
        "main (/repo/app/cli.py);chat (/repo/app/routes/chat.py);send (/v/lib/python3.11/site-packages/aiohttp/client.py) 6",
        "main (/repo/app/cli.py);http1 (/v/lib/python3.11/site-packages/sanic/http/http1.py);send (send) 3",
        "main (/repo/app/cli.py);uuid4 (/usr/lib/python3.11/uuid.py) 1",
        "garbage line",
    ]
    summary = flame.summarize(flame.parse(lines, "/repo"))
    assert summary.samples == 10
    assert summary.self_by_area == {"aiohttp": 6, "sanic": 3, "other (stdlib, ...)": 1}
    assert summary.inclusive_by_function["main (app/cli.py)"] == 10
    assert summary.self_by_function["uuid4 (uuid.py)"] == 1
    assert "60.0%" in flame.report(summary)


@pytest.mark.parametrize("split", [1, 2, 3, 5, 7, 64])
def test_body_reader_counts_chunked_data_split_anywhere(split):
    raw = b"5\r\nhello\r\n0B;ext=1\r\n world!!!!!\r\n0\r\n\r\n"
    reader = BodyReader({"transfer-encoding": "chunked"})
    seen = []
    for i in range(0, len(raw), split):
        assert not reader.done
        reader.feed(raw[i : i + split])
        seen.append(reader.data)
    assert reader.done and reader.data == 16
    assert seen == sorted(seen)


def test_body_reader_with_content_length():
    reader = BodyReader({"content-length": "10"})
    reader.feed(b"12345")
    assert reader.data == 5 and not reader.done
    reader.feed(b"67890")
    assert reader.done


# ------------------------------------------------------------------ the mock and the rows


def test_mock_bodies_are_what_the_issue_describes():
    routes = mock.routes()
    chat = orjson.loads(routes[mock.OPENAI][1])
    assert chat["object"] == "chat.completion" and chat["usage"]["total_tokens"] > 0
    frames = [f for f in routes[mock.OPENAI_STREAM][1].split(b"\n\n") if f]
    assert frames[-1] == b"data: [DONE]"
    chunks = [orjson.loads(f[len(b"data: ") :]) for f in frames[:-1]]
    assert len([c for c in chunks if c["choices"]]) == mock.STREAM_CHUNKS
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == mock.COMPLETION_TOKENS
    message = orjson.loads(routes[mock.ANTHROPIC][1])
    assert message["type"] == "message" and message["usage"]["output_tokens"] == mock.COMPLETION_TOKENS
    events = routes[mock.ANTHROPIC_STREAM][1].decode()
    assert events.count("event: content_block_delta") == mock.STREAM_CHUNKS
    assert events.rstrip().endswith('data: {"type":"message_stop"}')


def test_nginx_config_splits_bodies_into_tokens_nginx_accepts(tmp_path):
    text = mock.nginx_config(tmp_path, 8080)
    longest = max(len(token) for token in text.split("'")[1::2])
    assert longest < 4000
    assert "listen 127.0.0.1:8080" in text
    for prefix in mock.routes():
        assert f"location {prefix}/ " in text
    with pytest.raises(ValueError):
        mock.nginx_quote(b"costs $5")


def test_rows_check_answers_for_real_content():
    plain, stream = BY_ID["memory-1w"], BY_ID["stream"]
    assert plain.check_answer(200, mock.openai_chat()) is None
    assert "HTTP 401" in plain.check_answer(401, b'{"error": {}}')
    assert "not a chat.completion" in plain.check_answer(200, b"{}")
    assert stream.check_answer(200, mock.openai_stream()) is None
    assert "[DONE]" in stream.check_answer(200, mock.openai_stream()[:-20])


def test_responses_and_messages_rows_check_their_own_answer_shapes_for_the_upstreams_text():
    from adapters.responses_objects import chat_completion_to_response

    responses, messages = BY_ID["responses"], BY_ID["messages"]
    request = orjson.loads(responses.body())
    answer = chat_completion_to_response(orjson.loads(mock.openai_chat()), request=request, response_id="resp_1", created_at=1)
    assert responses.check_answer(200, orjson.dumps(answer)) is None
    assert "not a completed response" in responses.check_answer(200, mock.openai_chat())  # a chat.completion is not one
    answer["output"][0]["content"][0]["text"] = "something else"
    assert "does not carry the upstream's text" in responses.check_answer(200, orjson.dumps(answer))
    answer["status"] = "incomplete"
    assert "not a completed response" in responses.check_answer(200, orjson.dumps(answer))

    assert messages.check_answer(200, mock.anthropic_message()) is None
    assert "not an Anthropic message" in messages.check_answer(200, mock.openai_chat())
    assert "HTTP 401" in messages.check_answer(401, b'{"type":"error"}')
    empty = orjson.loads(mock.anthropic_message()) | {"content": []}
    assert "does not carry the upstream's text" in messages.check_answer(200, orjson.dumps(empty))
    assert "not a chat.completion" in BY_ID["memory-1w"].check_answer(200, mock.anthropic_message())


def test_responses_and_messages_rows_send_the_chat_rows_request_in_their_own_api():
    from adapters.messages import messages_request_to_chat
    from adapters.responses import responses_request_to_chat

    chat = orjson.loads(chat_body("gpt-bench", stream=False))
    via_responses = responses_request_to_chat(orjson.loads(BY_ID["responses"].body()), history=[])
    via_messages = messages_request_to_chat(orjson.loads(BY_ID["messages"].body()), provider_kind="openai")
    assert via_responses["messages"] == chat["messages"] == via_messages["messages"]
    assert via_responses["max_completion_tokens"] == chat["max_tokens"] == via_messages["max_completion_tokens"]
    assert orjson.loads(BY_ID["responses"].body())["store"] is False  # like chat: nothing kept per request
    assert BY_ID["messages"].headers()["x-api-key"] == CLIENT_KEY and "Authorization" not in BY_ID["messages"].headers()
    assert BY_ID["responses"].headers()["Authorization"] == f"Bearer {CLIENT_KEY}"
    assert (BY_ID["responses"].path, BY_ID["messages"].path) == ("/v1/responses", "/v1/messages")
    assert BY_ID["messages"].upstream == BY_ID["anthropic"].upstream and BY_ID["responses"].upstream == BY_ID["memory-1w"].upstream


def test_tensorzero_row_asks_its_openai_compatible_endpoint_for_a_configured_model(monkeypatch):
    row = BY_ID["tensorzero"]
    monkeypatch.delenv("TENSORZERO_MODEL", raising=False)
    assert row.path == "/openai/v1/chat/completions"
    assert orjson.loads(row.body())["model"] == "tensorzero::model_name::gpt-bench"
    monkeypatch.setenv("TENSORZERO_MODEL", "tensorzero::function_name::bench")
    assert orjson.loads(row.body())["model"] == "tensorzero::function_name::bench"
    assert row.check_answer(200, mock.openai_chat()) is None
    where = Endpoint.from_url("http://10.0.0.5:3000/")
    assert (where.host, where.port, where.url(row.path)) == ("10.0.0.5", 3000, "http://10.0.0.5:3000/openai/v1/chat/completions")
    assert Endpoint.from_url("127.0.0.1:3000/gw").url("/x") == "http://127.0.0.1:3000/gw/x"
    with pytest.raises(ValueError):
        Endpoint.from_url("https://gateway.example:443")


def test_unpinned_rows_get_every_cpu_and_pinned_ones_their_split(tmp_path):
    pinned = Run(QUICK, tmp_path, pin=True)
    assert pinned.cpus("0", BY_ID["memory-1w"]) == "0"
    assert pinned.cpus("1", BY_ID["redis-2w"]) == pinned.cpus("0", BY_ID["redis-1w-unpinned"]) == ALL_CPUS
    assert Run(QUICK, tmp_path, pin=False).cpus("0", BY_ID["memory-1w"]) is None
    # the 2-worker ratio compares rows run alike: same storage, both unpinned
    two, one = BY_ID["redis-2w"], BY_ID["redis-1w-unpinned"]
    assert (two.workers, one.workers, two.storage, one.storage, two.pinned, one.pinned) == (2, 1, "redis", "redis", False, False)
    assert len({row.id for row in ROWS}) == len(ROWS)


def test_the_flame_graph_goes_beside_the_runs_json(tmp_path):
    assert flame_path(tmp_path / "latest.json") == tmp_path / "latest-flame-memory-1w.svg"
    assert flame_path(tmp_path / "2026-11-28-issue10.json").name == "2026-11-28-issue10-flame-memory-1w.svg"


def test_gateway_configs_are_valid_and_run_as_the_issue_asks():
    from app.config import settings_from_data

    for row in BY_ID.values():
        if row.kind != "gateway":
            continue
        settings = settings_from_data(gateway_config(row, mock_url="http://127.0.0.1:9", redis_url="redis://127.0.0.1:6379/0"))
        assert settings.api_keys, "auth must be on"
        assert len(settings.llm_providers[0].api_keys) == 2, "balancing over 2 keys"
        assert settings.logging.level == "INFO"
        assert settings.storage.runtime.type == row.storage


def test_median_run_picks_the_median_pass_and_any_bad_pass_decides():
    runs = [ok_row("m", rps=r, cpu_us_per_request=c) for r, c in ((300, 30), (100, 10), (200, 20))]
    chosen = stats.median_run(runs)
    assert chosen["c32"]["rps"] == 200 and chosen["cpu_us_per_request"] == 20
    assert [p["rps"] for p in chosen["passes"]] == [300, 100, 200]
    assert stats.median_run(runs[:2])["c32"]["rps"] == 100  # even count: the lower middle
    assert "passes" not in stats.median_run(runs[:1])
    broken = {"id": "m", "status": "invalid", "reason": "2 failed or non-2xx responses"}
    assert stats.median_run(runs + [broken]) is broken
