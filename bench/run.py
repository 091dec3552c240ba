"""``make bench``: measure every row in one run, print a Markdown table, write JSON.

    python -m bench.run [--quick] [--rows direct,bare-proxy,memory-1w] [--save SHORT-DESC]

One run, rows one after another (``bench.rows.ROWS``). The harness pins itself, the nginx mock,
wrk and Redis to CPU 1 and each gateway (or the bare proxy) to CPU 0, so each figure is per core.
Rows with ``pinned=False`` (the two compared for ``--workers 2``) run as a 2-core server would:
the gateway, its Redis, the mock and wrk may each run on both CPUs. Per row:

1. start the process under test (and a fresh redis-server if the row needs one); an external row
   (TensorZero) is measured at the URL its environment variable names, or skipped saying why;
2. check one answer for real content (a wrong answer invalidates the row, whatever its speed);
3. warm up at 32 connections, then measure at 1 connection and at 32 connections with wrk,
   reading the process tree's CPU time around the 32-connection phase and, for the gateway,
   its event-loop lag histogram around each phase;
4. for streams, time first byte and whole answer with ``bench.streamclient``;
5. for the memory row, record a py-spy flame graph under the same 32-connection load
   (``bench.spy``; after the measured phases, so sampling does not slow what is measured);
6. read the peak RSS and stop everything.

Then the RSS figures (a fresh memory gateway: RSS after 20k, 200k and 500k requests; RSS after
rejected and after answered 1 MB requests) and the targets (``bench.stats.TARGETS``). The table
goes to stdout, progress to stderr, the JSON to ``bench/results/latest.json`` and the flame graph
to ``bench/results/latest-flame-memory-1w.svg`` (with ``--save``, also
``bench/results/<date>-<desc>.json`` and ``<date>-<desc>-flame-memory-1w.svg``/``.md``, committed
history points).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import yaml

from bench import flame, mock, procs, spy, stats, wrk
from bench.procs import ROOT, Service, find_program, free_port, http_ok, http_request, tcp_open
from bench.rows import BY_ID, ROWS, TENSORZERO_MISSING, Row, gateway_config, missing_feature, request_headers
from bench.streamclient import time_streams

RESULTS = ROOT / "bench" / "results"
LAG_METRIC = "coo_llm_event_loop_lag_seconds"
CONNECTIONS = 32
GATEWAY_CPU = "0"
LOAD_CPU = "1"
ALL_CPUS = f"0-{(os.cpu_count() or 1) - 1}"
FLAME_ROW = "memory-1w"
FLAME_RATE = 250  # py-spy samples per second


def flame_path(json_path: Path) -> Path:
    """Where the flame graph of a run goes: beside its JSON (``latest.json``: ``latest-flame-memory-1w.svg``)."""
    return json_path.with_name(f"{json_path.stem}-flame-{FLAME_ROW}.svg")


@dataclass(frozen=True)
class Endpoint:
    """Where a row's process under test answers."""

    host: str
    port: int
    prefix: str = ""  # a path prefix of an external gateway's URL

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{self.prefix}{path}"

    @classmethod
    def local(cls, port: int) -> "Endpoint":
        return cls("127.0.0.1", port)

    @classmethod
    def from_url(cls, url: str) -> "Endpoint":
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected an http://host:port URL, got {url!r}")
        return cls(parts.hostname, parts.port or 80, parts.path.rstrip("/"))


@dataclass(frozen=True)
class Phases:
    name: str  # "full" or "quick"
    warmup_s: int
    c1_s: int
    c32_s: int
    streams: int  # sequential requests timed by the stream client
    rss_growth: bool
    flame_s: int  # seconds of each of the two py-spy passes over the memory row (0: no flame graph)
    # RSS is read at each: the target compares the first two; the third, once the 60 s rate
    # windows are full, shows whether memory keeps growing after that (a leak) or levels off.
    rss_checkpoints: tuple[int, ...] = (20_000, 200_000, 500_000)


FULL = Phases("full", warmup_s=3, c1_s=10, c32_s=15, streams=500, rss_growth=True, flame_s=10)
QUICK = Phases("quick", warmup_s=1, c1_s=1, c32_s=2, streams=30, rss_growth=False, flame_s=2)


class RowSkipped(Exception):
    """A row this machine or build cannot run; the message says why."""


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _ms(us: float) -> float:
    return round(us / 1000.0, 4)


def phase_figures(result: wrk.WrkResult) -> dict:
    return {
        "rps": round(result.rps, 1),
        "requests": result.requests,
        "p50_ms": _ms(result.p50_us),
        "p90_ms": _ms(result.p90_us),
        "p99_ms": _ms(result.p99_us),
        "mean_ms": _ms(result.mean_us),
        "max_ms": _ms(result.max_us),
        "errors": result.errors,
    }


class Run:
    def __init__(self, phases: Phases, workdir: Path, *, pin: bool, mock_port: int = 0, flame_svg: Path | None = None):
        self.phases = phases
        self.workdir = workdir
        self.pin = pin
        self.wrk = find_program("wrk")
        self.nginx = find_program("nginx")
        self.redis = find_program("redis-server")
        self.mock: Service | None = None
        self.mock_port = mock_port  # 0: any free port
        self.flame_svg = flame_svg or flame_path(RESULTS / "latest.json")
        self.flame: dict | None = None  # the flame graph's summary, once recorded
        self.watched: list[Service] = []  # the processes of the row being measured (with the mock)

    def cpus(self, which: str, row: Row | None = None) -> str | None:
        """The CPUs for a process of ``row`` that pinned runs would put on ``which`` (None: inherit)."""
        if not self.pin:
            return None
        return ALL_CPUS if row is not None and not row.pinned else which

    # ------------------------------------------------------------------ services

    def start_mock(self) -> None:
        self.mock_port = self.mock_port or free_port()
        config = mock.write_config(self.workdir, self.mock_port)
        self.mock = Service("nginx", [self.nginx, "-p", str(self.workdir), "-c", str(config)], cpus=self.cpus(LOAD_CPU), log_path=self.workdir / "nginx.log")
        self.mock.start(tcp_open(self.mock_port))
        say(f"nginx mock on 127.0.0.1:{self.mock_port} (pid {self.mock.pid})")

    @contextmanager
    def mock_placed_for(self, row: Row):
        """The mock on every CPU while an unpinned row runs, back on the load CPU after."""
        widen = self.pin and not row.pinned and self.mock is not None
        if widen:
            os.sched_setaffinity(self.mock.pid, range(os.cpu_count() or 1))
        try:
            yield
        finally:
            if widen and self.mock.process.poll() is None:
                os.sched_setaffinity(self.mock.pid, {int(LOAD_CPU)})

    @property
    def mock_url(self) -> str:
        return f"http://127.0.0.1:{self.mock_port}"

    def row_config(self, row: Row) -> tuple[dict | None, Service | None]:
        """The gateway config of ``row`` (None for the mock and the bare proxy) and the
        redis-server started for it, if any. ``RowSkipped`` when this machine or build cannot
        run the row (nothing is left running then)."""
        if row.kind != "gateway":
            return None, None
        redis = redis_url = None
        if row.storage == "redis":
            if not self.redis:
                raise RowSkipped("redis-server is not installed")
            redis, redis_url = self.start_redis(row.id, row)
        config = gateway_config(row, mock_url=self.mock_url, redis_url=redis_url)
        lacking = missing_feature(config)
        if lacking:
            if redis is not None:
                redis.stop()
            raise RowSkipped(lacking)
        return config, redis

    def start_redis(self, name: str, row: Row | None = None) -> tuple[Service, str]:
        port = free_port()
        data = self.workdir / f"redis-{name}"
        data.mkdir(exist_ok=True)
        command = [self.redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(data)]
        service = Service(f"redis-{name}", command, cpus=self.cpus(LOAD_CPU, row), log_path=self.workdir / f"redis-{name}.log")
        return service.start(tcp_open(port)), f"redis://127.0.0.1:{port}/0"

    def start_target(self, row: Row, config: dict | None, tag: str = "") -> tuple[Service, Endpoint]:
        """The process under test for ``row`` (the mock itself for direct rows)."""
        if row.kind == "direct":
            return self.mock, Endpoint.local(self.mock_port)
        port = free_port()
        log = self.workdir / f"{row.id}{tag}.log"
        if row.kind == "bare-proxy":
            command = [sys.executable, str(ROOT / "bench" / "bare_proxy.py"), self.mock_url + row.upstream, str(port)]
            return Service(row.id, command, cpus=self.cpus(GATEWAY_CPU, row), log_path=log).start(tcp_open(port)), Endpoint.local(port)
        path = self.workdir / f"{row.id}{tag}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        command = [sys.executable, "-m", "app.cli", "serve", "--config", str(path), "--host", "127.0.0.1", "--port", str(port), "--workers", str(row.workers)]
        cpus = GATEWAY_CPU if row.workers == 1 else ALL_CPUS
        env = {"PROMETHEUS_MULTIPROC_DIR": None}  # cli makes its own for --workers > 1
        service = Service(f"coo-llm {row.id}", command, cpus=self.cpus(cpus, row), log_path=log, env=env)
        return service.start(http_ok(port, "/health/live")), Endpoint.local(port)

    # ------------------------------------------------------------------ measuring

    def load(self, row: Row, where: Endpoint, script: Path, connections: int, seconds: int) -> wrk.WrkResult:
        # wrk inherits the harness's CPU 1 unless the row runs unpinned
        cpus = ALL_CPUS if self.pin and not row.pinned else None
        return wrk.run(where.url(row.path), script, connections=connections, seconds=seconds, wrk=self.wrk, cpus=cpus)

    def lag_snapshot(self, where: Endpoint) -> dict[float, float]:
        status, _, body = http_request(where.port, "GET", "/metrics", host=where.host)
        return stats.histogram(body.decode(), LAG_METRIC) if status == 200 else {}

    def preflight(self, row: Row, where: Endpoint) -> tuple[str | None, list[str]]:
        """Check real answers; return (problem or None, masked provider keys that served them)."""
        keys = []
        for _ in range(4):
            status, headers, body = http_request(where.port, "POST", where.prefix + row.path, row.body(), row.headers(), timeout=10, host=where.host)
            problem = row.check_answer(status, body)
            if problem:
                return problem, keys
            if "x-coo-llm-key" in headers:
                keys.append(headers["x-coo-llm-key"])
        return None, sorted(set(keys))

    def measure_row(self, row: Row) -> dict:
        result = {
            "id": row.id, "label": row.label, "kind": row.kind, "api": row.api, "stream": row.stream,
            "baseline": row.baseline, "workers": row.workers, "pinned": self.pin and row.pinned,
        }
        started: list[Service] = []
        try:
            if row.kind == "external":
                return {**result, **self.measure_external(row)}
            try:
                config, redis = self.row_config(row)
            except RowSkipped as skipped:
                return {**result, "status": "skipped", "reason": str(skipped)}
            if redis is not None:
                started.append(redis)
            note = None
            try:
                target, where = self.start_target(row, config)
            except RuntimeError as error:  # seen once in a long run on this shared machine: retry once, say so
                note = f"started on the second try (first: {error})"[:300]
                say(f"row {row.id}: {note}")
                target, where = self.start_target(row, config, tag="-retry")
            if target is not self.mock:
                started.append(target)
            self.watched = [self.mock, *started]
            with self.mock_placed_for(row):
                measured = self._measure(row, target, where)
            if note:
                measured["note"] = note
            return {**result, **measured}
        except Exception as error:  # noqa: BLE001 - one broken row must not lose the others
            return {**result, "status": "failed", "reason": f"{type(error).__name__}: {error}"[:600]}
        finally:
            for service in reversed(started):
                service.stop()

    def watched_seconds(self) -> float:
        """CPU time so far of everything this run has running for the row: its processes, the
        mock, the harness and the wrk runs that have ended."""
        return sum(service.cpu_seconds() for service in self.watched) + procs.own_seconds()

    def measure_external(self, row: Row) -> dict:
        """A gateway this run did not start (TensorZero), at the URL in ``row.url_env``: measured
        like the others, but neither pinned nor watched (its CPU time and RSS are not ours to read)."""
        url = os.environ.get(row.url_env, "").strip()
        if not url:
            return {"status": "skipped", "reason": TENSORZERO_MISSING}
        measured = self._measure(row, None, Endpoint.from_url(url))
        if measured["status"] == "invalid" and "bad answer" in measured.get("reason", ""):
            measured["reason"] += f" (is {row.url_env} a gateway serving the mock at {self.mock_url}{mock.OPENAI}/v1? see --mock-port)"
        measured["note"] = f"at {row.url_env}; an external process: not pinned by the bench, CPU and RSS not read"
        return measured

    def record_flame(self, row: Row, target: Service, where: Endpoint, script: Path) -> dict:
        """The flame graph of ``row`` under the 32-connection load (``self.flame_svg``) and its
        top frames, or why there is none."""
        if self.phases.flame_s <= 0:
            return {"status": "skipped", "reason": "--no-flame"}
        if spy.py_spy() is None:
            return {"status": "skipped", "reason": "py-spy is not installed (make bench installs it with the test extras)"}
        say(f"row {row.id}: py-spy flame graph at {CONNECTIONS} connections, 2 × {self.phases.flame_s} s")
        load = lambda seconds: self.load(row, where, script, CONNECTIONS, seconds)  # noqa: E731
        try:
            summary = spy.flame_graph(target.pid, load, svg=self.flame_svg, seconds=self.phases.flame_s, rate=FLAME_RATE)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
            return {"status": "failed", "reason": f"{type(error).__name__}: {error}"[:600]}
        shown = self.flame_svg.relative_to(ROOT) if self.flame_svg.is_relative_to(ROOT) else self.flame_svg
        return {
            "status": "ok", "row": row.id, "label": row.label, "connections": CONNECTIONS, "seconds": self.phases.flame_s,
            "rate": FLAME_RATE, "svg": str(shown), **flame.top_frames(summary, top=10),
        }

    def _measure(self, row: Row, target: Service | None, where: Endpoint) -> dict:
        phases = self.phases
        out: dict = {"status": "ok"}
        problem, keys = self.preflight(row, where)
        if problem:
            return {"status": "invalid", "reason": f"bad answer: {problem}"}
        if keys:
            out["provider_keys_seen"] = keys
        script = self.workdir / f"{row.id}.lua"
        script.write_text(wrk.lua_script(row.body(), row.headers()))
        gateway = row.kind == "gateway"
        warm = self.load(row, where, script, CONNECTIONS, phases.warmup_s)
        lag0 = self.lag_snapshot(where) if gateway else {}
        c1 = self.load(row, where, script, 1, phases.c1_s)
        lag1 = self.lag_snapshot(where) if gateway else {}
        cpu_before = target.cpu_seconds() if target else 0.0
        busy_before, ours_before, wall_before = procs.machine_busy_seconds(), self.watched_seconds(), time.monotonic()
        c32 = self.load(row, where, script, CONNECTIONS, phases.c32_s)
        cpu_used = target.cpu_seconds() - cpu_before if target else None
        others = procs.machine_busy_seconds() - busy_before - (self.watched_seconds() - ours_before)
        # other processes' share of the machine while the row was measured (an external gateway is one of them)
        out["other_cpu_pct"] = round(100 * max(0.0, others) / (time.monotonic() - wall_before), 1) if target else None
        lag2 = self.lag_snapshot(where) if gateway else {}
        out["c1"] = phase_figures(c1)
        out["c32"] = phase_figures(c32)
        out["cpu_us_per_request"] = round(cpu_used / c32.requests * 1e6, 1) if c32.requests and cpu_used is not None else None
        out["errors"] = warm.errors + c1.errors + c32.errors
        if gateway:
            out["loop_lag"] = {
                "1 connection": stats.lag_summary(stats.histogram_delta(lag1, lag0)),
                "32 connections": stats.lag_summary(stats.histogram_delta(lag2, lag1)),
            }
        if row.stream:
            times = time_streams(where.port, row.path, row.body(), row.headers(), count=phases.streams)
            out["stream_times"] = {
                "count": len(times.ttfb_ms),
                "ttfb_p50_ms": _round(stats.percentile(times.ttfb_ms, 50)),
                "ttfb_p99_ms": _round(stats.percentile(times.ttfb_ms, 99)),
                "total_p50_ms": _round(stats.percentile(times.total_ms, 50)),
                "total_p99_ms": _round(stats.percentile(times.total_ms, 99)),
                "errors": times.errors,
            }
            out["errors"] += times.errors
        if row.id == FLAME_ROW and self.flame is None and not out["errors"]:
            self.flame = self.record_flame(row, target, where, script)
        if target is not None:
            out["peak_rss_mb"] = round(target.peak_rss_mb(), 1)
            out["processes"] = len(target.pids())
        if out["errors"]:
            out["status"] = "invalid"
            out["reason"] = f"{out['errors']} failed or non-2xx responses"
        return out

    def rss_after_rejections(self, *, requests: int = 200, prompt_mb: int = 1) -> dict:
        """RSS growth of a fresh memory gateway over ``requests`` chat requests with ``prompt_mb``
        MB prompts that the upstream rejects (400), beside the same requests answered (200): the
        error path must free a request's body as the answered path does."""
        prompt = "x" * (prompt_mb << 20)
        body = orjson.dumps({"model": "gpt-bench", "messages": [{"role": "user", "content": prompt}]})
        headers = {**request_headers(), "content-type": "application/json"}
        out: dict = {"requests": requests, "prompt_mb": prompt_mb}
        for label, upstream, expect in (("rejected", mock.REJECTING, 400), ("answered", mock.OPENAI, 200)):
            row = replace(BY_ID["memory-1w"], upstream=upstream)
            service = None
            try:
                service, where = self.start_target(row, gateway_config(row, mock_url=self.mock_url, redis_url=None), tag=f"-{label}")
                http_request(where.port, "POST", row.path, body=body, headers=headers, timeout=30)  # warm: first-use allocations
                before = service.rss_mb()
                statuses = [http_request(where.port, "POST", row.path, body=body, headers=headers, timeout=30)[0] for _ in range(requests)]
                time.sleep(0.5)
                after = service.rss_mb()
                wrong = sum(1 for status in statuses if status != expect)
                out[label] = {"rss_mb_before": round(before, 1), "rss_mb_after": round(after, 1), "growth_mb": round(after - before, 1), "unexpected_status": wrong}
            except Exception as error:  # noqa: BLE001
                out[label] = {"status": "failed", "reason": f"{type(error).__name__}: {error}"[:600]}
            finally:
                if service is not None:
                    service.stop()
        say(f"RSS after {requests} rejected {prompt_mb} MB prompts: {out.get('rejected')}; answered: {out.get('answered')}")
        return out

    def rss_growth(self, rps_hint: float | None) -> dict:
        """RSS of a fresh memory gateway at each of ``rss_checkpoints`` requests (32 connections)."""
        row = BY_ID["memory-1w"]
        service = None
        try:
            service, where = self.start_target(row, gateway_config(row, mock_url=self.mock_url, redis_url=None), tag="-rss")
            script = self.workdir / "rss.lua"
            script.write_text(wrk.lua_script(row.body(), row.headers()))
            total = errors = 0
            rate = rps_hint or 2000.0
            readings = []
            for goal in self.phases.rss_checkpoints:
                while total < goal:
                    seconds = max(1, min(20, math.ceil((goal - total) / rate)))
                    result = self.load(row, where, script, CONNECTIONS, seconds)
                    total += result.requests
                    errors += result.errors
                    rate = max(result.rps, 1.0)
                time.sleep(0.5)  # let the last responses and log writes settle
                readings.append((total, service.rss_mb()))
                say(f"RSS {readings[-1][1]:.1f} MB after {total:,} requests")
            (n1, rss1), (n2, rss2) = readings[:2]
            growth = {
                "status": "ok" if not errors else "invalid",
                "reason": f"{errors} failed responses" if errors else None,
                "requests_at_first": n1,
                "rss_mb_at_first": round(rss1, 2),
                "requests_at_last": n2,
                "rss_mb_at_last": round(rss2, 2),
                "ratio": round(rss2 / rss1, 4) if rss1 else None,
            }
            if len(readings) > 2:  # after the windows filled: does it keep growing?
                n3, rss3 = readings[2]
                growth.update(requests_at_after=n3, rss_mb_at_after=round(rss3, 2), ratio_after=round(rss3 / rss2, 4) if rss2 else None)
            return growth
        except Exception as error:  # noqa: BLE001
            return {"status": "failed", "reason": f"{type(error).__name__}: {error}"[:600]}
        finally:
            if service is not None:
                service.stop()


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else "unknown"


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = _version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip())
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "nginx": _version([find_program("nginx") or "nginx", "-v"]),
        "wrk": _version([find_program("wrk") or "wrk", "-v"]),
        "redis": _version([find_program("redis-server") or "redis-server", "--version"]),
        "commit": commit + ("-dirty" if dirty else ""),
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def run(rows: list[Row], phases: Phases, workdir: Path, *, pin: bool, repeat: int = 1, mock_port: int = 0, flame_svg: Path | None = None) -> dict:
    bench = Run(phases, workdir, pin=pin, mock_port=mock_port, flame_svg=flame_svg)
    missing = [name for name, path in (("nginx", bench.nginx), ("wrk", bench.wrk)) if not path]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run `make bench` (it installs them) or apt-get install {' '.join(missing)}")
    started = dt.datetime.now(dt.timezone.utc)
    runs: dict[str, list[dict]] = {row.id: [] for row in rows}
    bench.start_mock()
    try:
        for number in range(1, repeat + 1):
            for row in rows:
                if runs[row.id] and runs[row.id][-1]["status"] == "skipped":
                    continue
                say(f"row {row.id}: {row.label}" + (f" (pass {number}/{repeat})" if repeat > 1 else ""))
                result = bench.measure_row(row)
                runs[row.id].append(result)
                rps = (result.get("c32") or {}).get("rps")
                say(f"row {row.id}: {result['status']}" + (f", {rps:,.0f} RPS at {CONNECTIONS} connections" if rps else f" ({result.get('reason')})"))
        results = {row_id: stats.median_run(row_runs) for row_id, row_runs in runs.items()}
        for result in results.values():
            result.update(stats.added_latency(results, result))
        extra = {}
        if phases.rss_growth and "memory-1w" in [r.id for r in rows]:
            say("RSS growth: a fresh memory gateway, 20k then 200k requests")
            extra["rss_growth"] = bench.rss_growth((results.get("memory-1w", {}).get("c32") or {}).get("rps"))
        elif "memory-1w" in [r.id for r in rows]:
            extra["rss_growth"] = {"status": "skipped", "reason": "quick run" if phases.name == "quick" else "--no-rss"}
        if "memory-1w" in [r.id for r in rows]:
            extra["rss_after_rejections"] = bench.rss_after_rejections(requests=200 if phases.rss_growth else 20)
        if bench.flame is not None:
            extra["flame"] = bench.flame
    finally:
        if bench.mock is not None:
            bench.mock.stop()
    return {
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round((dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 1),
        "machine": machine(),
        "setup": {
            "pinned": pin,
            "gateway_cpu": GATEWAY_CPU if pin else None,
            "load_cpu": LOAD_CPU if pin else None,
            "unpinned_rows": [row.id for row in rows if pin and not row.pinned],  # gateway, mock, wrk, Redis on every CPU
            "mock_port": bench.mock_port,
            "connections": CONNECTIONS,
            "phases": phases.__dict__ | {"rss_checkpoints": list(phases.rss_checkpoints)},
            "repeat": repeat,
            "gateway": "auth on, metrics on, JSON request log on, hybrid balancing over 2 keys",
            "python_unbuffered": bool(os.environ.get("PYTHONUNBUFFERED")),  # unbuffered stderr: a write per log line
        },
        "rows": list(results.values()),
        **extra,
        "targets": stats.evaluate(results, extra),
    }


def flame_markdown(flame_result: dict) -> str:
    """The flame graph's summary as its own Markdown file, beside the SVG."""
    return f"# py-spy profile of {flame_result['label']} at {flame_result['connections']} connections\n\n" + flame.render(flame_result)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases, no RSS growth: a smoke run (~1 minute)")
    parser.add_argument("--rows", default="", help=f"comma-separated row ids (default all): {', '.join(r.id for r in ROWS)}")
    parser.add_argument("--out", default=str(RESULTS / "latest.json"), help="where to write the JSON (default bench/results/latest.json)")
    parser.add_argument("--save", default="", metavar="SHORT-DESC", help="also write bench/results/<date>-<SHORT-DESC>.json")
    parser.add_argument("--repeat", type=int, default=1, help="measure every row N times, interleaved; report each row's median pass")
    parser.add_argument("--seconds", type=int, default=0, help="seconds of each measured phase (default 10 at 1 connection, 15 at 32)")
    parser.add_argument("--no-rss", action="store_true", help="skip the RSS growth figure (a minute or more of load)")
    parser.add_argument("--keep-work", action="store_true", help="keep configs and logs under bench/.work/")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--no-flame", action="store_true", help="skip the py-spy flame graph of the memory row")
    parser.add_argument(
        "--mock-port", type=int, default=int(os.environ.get("BENCH_MOCK_PORT") or 0),
        help="the nginx mock's port (default: a free one; BENCH_MOCK_PORT) for an external gateway configured to call it",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = [name.strip() for name in args.rows.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in BY_ID]
    if unknown:
        raise SystemExit(f"unknown row(s): {', '.join(unknown)}; known: {', '.join(BY_ID)}")
    rows = [BY_ID[name] for name in wanted] if wanted else list(ROWS)
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    if pin:
        os.sched_setaffinity(0, {int(LOAD_CPU)})  # the harness, nginx, wrk and redis share CPU 1
    workdir = ROOT / "bench" / ".work" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        phases = QUICK if args.quick else FULL
        if args.seconds > 0:
            phases = replace(phases, c1_s=args.seconds, c32_s=args.seconds)
        if args.no_rss:
            phases = replace(phases, rss_growth=False)
        if args.no_flame:
            phases = replace(phases, flame_s=0)
        out = Path(args.out).resolve()
        result = run(rows, phases, workdir, pin=pin, repeat=max(1, args.repeat), mock_port=args.mock_port, flame_svg=flame_path(out))
    finally:
        if not args.keep_work:
            shutil.rmtree(workdir, ignore_errors=True)
    result["quick"] = args.quick
    flame_result = result.get("flame") or {}
    if flame_result.get("status") == "ok":
        flame_path(out).with_suffix(".md").write_text(flame_markdown(flame_result))
    saved = RESULTS / f"{dt.date.today().isoformat()}-{args.save}.json"
    if args.save and flame_result.get("status") == "ok":  # the flame graph too, as a committed history point
        saved_svg = flame_path(saved)
        shutil.copyfile(flame_path(out), saved_svg)
        flame_result["svg"] = str(saved_svg.relative_to(ROOT))
        saved_svg.with_suffix(".md").write_text(flame_markdown(flame_result))
    text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    if args.save:
        saved.write_text(text)
        say(f"saved {saved.relative_to(ROOT)}")
    print(stats.markdown(result))
    print(f"Machine: {result['machine']['cpu']}, {result['machine']['cpus']} CPUs, {result['machine']['os']}, Python {result['machine']['python']}; "
          f"commit {result['machine']['commit']}; {'quick' if args.quick else 'full'} run of {result['duration_s']} s. JSON: {out}")
    return 0 if all(r["status"] in ("ok", "skipped") for r in result["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
