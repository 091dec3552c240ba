"""The arithmetic of a benchmark run, kept apart from processes so it can be unit-tested.

Rows are plain dicts (the JSON written to ``bench/results``). Every ratio and difference is taken
between rows of the same run, because the machine is shared and noisy. ``TARGETS`` is the
targets table of the performance issue; ``evaluate`` judges one run against it and
``markdown`` renders the run.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Iterable

from bench import flame


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks; None if empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median_run(runs: list[dict]) -> dict:
    """One row measured in several passes, as one result: the pass with the median RPS at 32
    connections, with every pass's RPS and CPU listed under ``passes``. Any pass that is not
    ``ok`` (invalid, failed, skipped) decides the row: one bad pass invalidates it."""
    bad = [run for run in runs if run.get("status") != "ok"]
    if bad:
        return bad[0]
    ordered = sorted(runs, key=lambda run: run["c32"]["rps"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    if len(runs) > 1:
        chosen["passes"] = [
            {"rps": run["c32"]["rps"], "cpu_us_per_request": run.get("cpu_us_per_request"), "c1_p50_ms": (run.get("c1") or {}).get("p50_ms")}
            for run in runs
        ]
    return chosen


def _get(rows: dict[str, dict], row: str, *path: str) -> float | None:
    node = rows.get(row)
    if not node or node.get("status") != "ok":
        return None
    for name in path:
        if not isinstance(node, dict) or node.get(name) is None:
            return None
        node = node[name]
    return node


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def difference(value: float | None, baseline: float | None) -> float | None:
    if value is None or baseline is None:
        return None
    return value - baseline


@dataclass(frozen=True)
class Target:
    id: str
    figure: str  # what is compared with what: the rows are named, so the table says which comparison is fair
    compare: str  # ">=" or "<="
    goal: float
    unit: str
    value: Callable[[dict[str, dict], dict], float | None]  # (rows by id, run extras) -> value
    needs: tuple[str, ...]  # row ids (or extras) the value comes from


def _rps(rows: dict, row: str) -> float | None:
    return _get(rows, row, "c32", "rps")


def _rps_ratio(row: str, base: str) -> Callable[[dict, dict], float | None]:
    return lambda rows, extra: ratio(_rps(rows, row), _rps(rows, base))


REJECTION_SLACK_MB = 10.0


def rejected_extra_growth(extra: dict) -> float | None:
    """How many MB more a fresh gateway's RSS grew over N rejected requests than a fresh one's
    over the same N answered (the control: it absorbs what any request path allocates once).
    None when either pass failed or got an unexpected status (then the figure means nothing).

    The target is ``REJECTION_SLACK_MB``: with 200 rejected 1 MB prompts, a body kept per
    rejected request adds 200 MB, one kept in twenty adds 10; the two passes' growths differ by
    2-3 MB of allocator noise. (Twice the answered growth, plus slack, would scale the allowance
    with what the answered path happened to allocate, which says nothing about a leak.)"""
    run = extra.get("rss_after_rejections") or {}
    rejected, answered = run.get("rejected") or {}, run.get("answered") or {}
    if rejected.get("growth_mb") is None or answered.get("growth_mb") is None:
        return None
    if rejected.get("unexpected_status") or answered.get("unexpected_status"):
        return None
    return rejected["growth_mb"] - answered["growth_mb"]


TARGETS: tuple[Target, ...] = (
    Target(
        "rps-vs-bare", "RPS @32: coo-llm memory, 1 worker ÷ bare-proxy", ">=", 0.75, "×",
        _rps_ratio("memory-1w", "bare-proxy"), ("memory-1w", "bare-proxy"),
    ),
    Target(
        "rps-vs-tensorzero", "RPS @32: coo-llm memory, 1 worker ÷ TensorZero gateway", ">=", 1.0, "×",
        _rps_ratio("memory-1w", "tensorzero"), ("memory-1w", "tensorzero"),
    ),
    Target(
        "cpu-vs-bare", "CPU µs per request: coo-llm memory, 1 worker ÷ bare-proxy", "<=", 1.35, "×",
        lambda rows, extra: ratio(_get(rows, "memory-1w", "cpu_us_per_request"), _get(rows, "bare-proxy", "cpu_us_per_request")),
        ("memory-1w", "bare-proxy"),
    ),
    Target(
        "added-p50", "added p50 latency @1: coo-llm memory, 1 worker − direct", "<=", 0.5, "ms",
        lambda rows, extra: difference(_get(rows, "memory-1w", "c1", "p50_ms"), _get(rows, "direct", "c1", "p50_ms")),
        ("memory-1w", "direct"),
    ),
    Target(
        "added-ttft", "added time to first byte (p50): coo-llm streaming − direct, stream", "<=", 1.0, "ms",
        lambda rows, extra: difference(_get(rows, "stream", "stream_times", "ttfb_p50_ms"), _get(rows, "direct-stream", "stream_times", "ttfb_p50_ms")),
        ("stream", "direct-stream"),
    ),
    Target(
        "stream-rps-vs-bare", "stream RPS @32: coo-llm streaming ÷ bare-proxy, stream", ">=", 0.75, "×",
        _rps_ratio("stream", "bare-proxy-stream"), ("stream", "bare-proxy-stream"),
    ),
    Target(
        "redis-vs-memory", "RPS @32: coo-llm Redis, 1 worker ÷ coo-llm memory, 1 worker", ">=", 0.8, "×",
        _rps_ratio("redis-1w", "memory-1w"), ("redis-1w", "memory-1w"),
    ),
    Target(
        "workers", "RPS @32: coo-llm Redis, 2 workers ÷ 1 worker, both unpinned on all CPUs", ">=", 1.7, "×",
        _rps_ratio("redis-2w", "redis-1w-unpinned"), ("redis-2w", "redis-1w-unpinned"),
    ),
    Target(
        "anthropic-vs-openai", "RPS @32: coo-llm → Anthropic (translated) ÷ coo-llm memory, 1 worker (OpenAI pass-through)", ">=", 0.85, "×",
        _rps_ratio("anthropic", "memory-1w"), ("anthropic", "memory-1w"),
    ),
    Target(
        "responses-vs-chat", "RPS @32: /v1/responses ÷ chat, both to the OpenAI mock (coo-llm memory, 1 worker)", ">=", 0.9, "×",
        _rps_ratio("responses", "memory-1w"), ("responses", "memory-1w"),
    ),
    Target(
        "messages-vs-chat", "RPS @32: /v1/messages ÷ chat, both to the Anthropic mock (coo-llm → Anthropic)", ">=", 0.9, "×",
        _rps_ratio("messages", "anthropic"), ("messages", "anthropic"),
    ),
    Target(
        "rss-growth", "RSS after 200k requests ÷ RSS after 20k requests", "<=", 1.05, "×",
        lambda rows, extra: (extra.get("rss_growth") or {}).get("ratio"), ("rss_growth",),
    ),
    Target(
        "rss-rejections", "RSS growth over N rejected 1 MB requests − over N answered (N = 200; 20 in --quick)", "<=", REJECTION_SLACK_MB, "MB",
        lambda rows, extra: rejected_extra_growth(extra), ("rss_after_rejections",),
    ),
)
BY_TARGET = {target.id: target for target in TARGETS}
NOISY_PCT = 10.0  # other processes' CPU (% of one core) during a row's 32-connection phase that makes it suspect


def noisy_rows(rows: dict[str, dict], ids: Iterable[str] | None = None) -> list[str]:
    """The rows (of ``ids``, default all) measured while other processes used more than
    ``NOISY_PCT`` % of a core: the machine is shared, and their figures may be low."""
    return [row_id for row_id in (rows if ids is None else ids) if ((rows.get(row_id) or {}).get("other_cpu_pct") or 0) > NOISY_PCT]


def evaluate(rows: dict[str, dict], extra: dict | None = None) -> list[dict]:
    """Each target with its value in this run and whether it is met (None: not measured)."""
    extra = extra or {}
    results = []
    for target in TARGETS:
        value = target.value(rows, extra)
        met = None if value is None else (value >= target.goal if target.compare == ">=" else value <= target.goal)
        missing = [name for name in target.needs if name not in rows and name not in extra]
        skipped = [f"{name}: {rows[name].get('reason')}" for name in target.needs if name in rows and rows[name].get("status") != "ok"]
        results.append(
            {
                "id": target.id,
                "figure": target.figure,
                "target": f"{target.compare} {target.goal:g}{'' if target.unit == '×' else ' ' + target.unit}",
                "value": None if value is None else round(value, 4),
                "unit": target.unit,
                "met": met,
                "why_missing": None if value is not None else "; ".join(skipped + [f"{m}: not run" for m in missing]) or "not measured",
                "noisy": noisy_rows(rows, target.needs),
            }
        )
    return results


def added_latency(rows: dict[str, dict], row: dict) -> dict:
    """A row's added p50 at 1 connection (and added TTFB p50 for streams) against its baseline row."""
    base = row.get("baseline")
    added = {}
    if base and base != row["id"] and row.get("status") == "ok":
        added["added_p50_ms"] = difference(_get({row["id"]: row}, row["id"], "c1", "p50_ms"), _get(rows, base, "c1", "p50_ms"))
        if row.get("stream"):
            added["added_ttfb_p50_ms"] = difference(
                _get({row["id"]: row}, row["id"], "stream_times", "ttfb_p50_ms"), _get(rows, base, "stream_times", "ttfb_p50_ms")
            )
    return added


# ------------------------------------------------------------------ Prometheus histograms

_BUCKET = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)_bucket\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


def histogram(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts ``{le: count}`` of one histogram in exposition text, summed over labels."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        match = _BUCKET.match(line)
        if not match or match["name"] != name:
            continue
        le = re.search(r'le="([^"]+)"', match["labels"])
        if le:
            bound = math.inf if le[1] == "+Inf" else float(le[1])
            buckets[bound] = buckets.get(bound, 0.0) + float(match["value"])
    return buckets


def histogram_delta(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {le: count - before.get(le, 0.0) for le, count in after.items()}


def bucket_quantile(buckets: dict[float, float], q: float) -> float | None:
    """The upper bound of the bucket holding the q-quantile (0..1): "q of samples were at most this"."""
    total = buckets.get(math.inf, max(buckets.values(), default=0.0))
    if total <= 0:
        return None
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            return le
    return math.inf


def lag_summary(buckets: dict[float, float]) -> dict | None:
    """Event-loop lag of one phase from the gateway's lag histogram (delta of two scrapes)."""
    samples = buckets.get(math.inf, 0.0)
    if samples <= 0:
        return None
    def ms(value: float | None) -> float | None:
        return None if value is None or value == math.inf else round(value * 1000, 3)
    return {
        "samples": int(samples),
        "p50_le_ms": ms(bucket_quantile(buckets, 0.5)),
        "p99_le_ms": ms(bucket_quantile(buckets, 0.99)),
        "max_le_ms": ms(bucket_quantile(buckets, 1.0)),
        "over_50ms": int(samples - next((buckets[le] for le in sorted(buckets) if le >= 0.05), samples)),
    }


# ------------------------------------------------------------------ Markdown


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value == math.inf:
            return "∞"
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


COLUMNS = (
    "row", "RPS @32", "p50 @1 ms", "p99 @1 ms", "p50 @32 ms", "p99 @32 ms", "added p50 @1 ms",
    "TTFB p50 ms", "total p50 ms", "peak RSS MB", "CPU µs/req", "others' CPU %", "errors", "note",
)


def row_cells(row: dict) -> list[str]:
    if row.get("status") in ("skipped", "failed"):
        return [row["label"]] + ["—"] * (len(COLUMNS) - 3) + ["—", f"{row['status']}: {row.get('reason')}"]
    c1, c32, stream = row.get("c1") or {}, row.get("c32") or {}, row.get("stream_times") or {}
    note = "INVALID: " + row["reason"] if row.get("status") == "invalid" else (row.get("note") or "")
    return [
        row["label"],
        _fmt(c32.get("rps"), 0),
        _fmt(c1.get("p50_ms"), 3),
        _fmt(c1.get("p99_ms"), 3),
        _fmt(c32.get("p50_ms"), 3),
        _fmt(c32.get("p99_ms"), 3),
        _fmt(row.get("added_p50_ms"), 3),
        _fmt(stream.get("ttfb_p50_ms"), 3),
        _fmt(stream.get("total_p50_ms"), 3),
        _fmt(row.get("peak_rss_mb"), 1),
        _fmt(row.get("cpu_us_per_request"), 0),
        _fmt(row.get("other_cpu_pct"), 0),
        _fmt(row.get("errors", 0)),
        note,
    ]


def table(header: Iterable[str], rows: Iterable[list[str]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def markdown(result: dict) -> str:
    """The run as Markdown: the rows, the targets, RSS growth and event-loop lag."""
    parts = [table(COLUMNS, (row_cells(row) for row in result["rows"]))]
    by_id = {row["id"]: row for row in result["rows"]}
    noisy = noisy_rows(by_id)
    if noisy:
        named = ", ".join(f"{by_id[row_id]['label']} ({by_id[row_id]['other_cpu_pct']:.0f}%)" for row_id in noisy)
        parts.append(
            f"Other processes on this shared machine used more than {NOISY_PCT:g}% of a core while these rows were measured "
            f"at 32 connections: {named}. Their figures, and the targets using them (marked below), may be low."
        )
    verdict = {True: "met", False: "**not met**", None: "not measured"}
    target_rows = []
    for item in result.get("targets", []):
        value = item["value"]
        shown = "—" if value is None else {"ms": f"{value:.3f} ms", "MB": f"{value:+.1f} MB"}.get(item["unit"], f"{value:.2f}")
        note = verdict[item["met"]] + (f" ({item['why_missing']})" if item["met"] is None else "")
        if item.get("noisy") and item["met"] is not None:
            note += f" (others used CPU during {', '.join(item['noisy'])})"
        target_rows.append([item["figure"], shown, item["target"], note])
    parts.append(table(("target", "this run", "goal", "verdict"), target_rows))
    growth = result.get("rss_growth")
    if growth:
        if growth.get("status") == "ok":
            parts.append(
                f"RSS growth (memory, 1 worker): {growth['rss_mb_at_first']:.1f} MB after {growth['requests_at_first']:,} requests, "
                f"{growth['rss_mb_at_last']:.1f} MB after {growth['requests_at_last']:,}: ratio {growth['ratio']:.3f}."
                + (
                    f" Once the rate windows are full: {growth['rss_mb_at_after']:.1f} MB after {growth['requests_at_after']:,} "
                    f"requests, {growth['ratio_after']:.3f}× the {growth['requests_at_last']:,} figure."
                    if growth.get("ratio_after") is not None
                    else ""
                )
            )
        else:
            parts.append(f"RSS growth: {growth.get('status')}: {growth.get('reason')}")
    if result.get("rss_after_rejections"):
        parts.append(rejections_text(result["rss_after_rejections"]))
    if result.get("flame"):
        parts.append(flame_text(result["flame"]))
    lag_rows = []
    for row in result["rows"]:
        for phase, lag in (row.get("loop_lag") or {}).items():
            if lag:
                lag_rows.append([row["label"], phase, _fmt(lag["samples"]), _fmt(lag["p50_le_ms"]), _fmt(lag["p99_le_ms"]), _fmt(lag["max_le_ms"])])
    if lag_rows:
        parts.append(
            "Event-loop lag (timer wake-up delay sampled every 50 ms inside the gateway; bucket upper bounds):\n\n"
            + table(("row", "phase", "samples", "p50 ≤ ms", "p99 ≤ ms", "max ≤ ms"), lag_rows)
        )
    return "\n\n".join(parts) + "\n"


def rejections_text(run: dict) -> str:
    """The RSS-after-rejections figure in words: both passes and the share the target judges."""
    def one(label: str, status: int) -> str:
        reading = run.get(label) or {}
        if "growth_mb" not in reading:
            return f"{label}: {reading.get('status', 'not run')}: {reading.get('reason')}"
        wrong = f", {reading['unexpected_status']} answers not {status}" if reading.get("unexpected_status") else ""
        return f"{reading['rss_mb_before']:.1f} → {reading['rss_mb_after']:.1f} MB ({reading['growth_mb']:+.1f} MB{wrong})"

    extra_mb = rejected_extra_growth({"rss_after_rejections": run})
    sent = run.get("requests", 0) * run.get("prompt_mb", 0)
    judged = (
        f" Rejected beyond answered: {extra_mb:+.1f} MB (goal ≤ {REJECTION_SLACK_MB:g} MB; a body kept per rejected request would add {sent} MB)."
        if extra_mb is not None
        else ""
    )
    return (
        f"RSS of a fresh memory gateway over {run.get('requests')} requests with {run.get('prompt_mb')} MB prompts: "
        f"rejected by the upstream (400) {one('rejected', 400)}; answered (200) {one('answered', 200)}.{judged}"
    )


def flame_text(result: dict) -> str:
    """Where the flame graph is and its top frames, or why there is none."""
    if result.get("status") != "ok":
        return f"Flame graph: {result.get('status')}: {result.get('reason')}"
    return (
        f"Flame graph of {result['label']} at {result['connections']} connections: `{result['svg']}` (py-spy at "
        f"{result['rate']} Hz, {result['seconds']} s per pass, right after the row's measured phases: same process, same load).\n\n"
        + flame.render(result, heading="####")
    )
