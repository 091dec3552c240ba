"""``make profile``: the gateway under the benchmark load, sampled by py-spy.

    python -m bench.profile [--row memory-1w] [--seconds 15] [--quick]

Starts the nginx mock (and a fresh redis-server for Redis rows) and one gateway row (or the bare
proxy, for comparison) exactly as ``bench.run`` does (same config, same pinning), warms it up,
then samples it with py-spy (``bench.spy``) while wrk keeps 32 connections busy: the flame graph
SVG (``bench/results/profile-<row>.svg``) and the Markdown summary printed on stdout (self time
by area, top functions by self and inclusive time; also saved beside the SVG as ``.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
from pathlib import Path

from bench import flame, spy, wrk
from bench.procs import ROOT
from bench.rows import BY_ID
from bench.run import CONNECTIONS, FULL, LOAD_CPU, RESULTS, Run, RowSkipped, say


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description="Profile one gateway row under load with py-spy.")
    parser.add_argument("--row", default="memory-1w", help="a gateway row id (default memory-1w)")
    parser.add_argument("--seconds", type=int, default=15, help="seconds sampled per pass (default 15)")
    parser.add_argument("--rate", type=int, default=250, help="samples per second (default 250)")
    parser.add_argument("--quick", action="store_true", help="3-second passes")
    parser.add_argument("--out", default="", help="SVG path (default bench/results/profile-<row>.svg)")
    args = parser.parse_args(argv)
    row = BY_ID.get(args.row)
    if row is None or row.kind not in ("bare-proxy", "gateway"):
        raise SystemExit(f"--row must be a bare-proxy or gateway row: {', '.join(r.id for r in BY_ID.values() if r.kind in ('bare-proxy', 'gateway'))}")
    seconds = 3 if args.quick else args.seconds
    svg = Path(args.out) if args.out else RESULTS / f"profile-{row.id}.svg"
    svg.parent.mkdir(parents=True, exist_ok=True)
    pin = (os.cpu_count() or 1) >= 2
    if pin:
        os.sched_setaffinity(0, {int(LOAD_CPU)})  # py-spy samples from the load CPU, not the gateway's
    workdir = ROOT / "bench" / ".work" / ("profile-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    workdir.mkdir(parents=True, exist_ok=True)
    bench = Run(FULL, workdir, pin=pin)
    if not (bench.nginx and bench.wrk):
        raise SystemExit("nginx and wrk are needed: run `make profile` (it installs them)")
    if spy.py_spy() is None:
        raise SystemExit("py-spy is not installed: `make profile` installs it (pip install py-spy)")
    gateway = redis = None
    bench.start_mock()
    try:
        try:
            config, redis = bench.row_config(row)
        except RowSkipped as skipped:
            raise SystemExit(f"row {row.id} cannot run here: {skipped}") from None
        gateway, where = bench.start_target(row, config)
        problem, _ = bench.preflight(row, where)
        if problem:
            raise SystemExit(f"row {row.id} answers wrongly: {problem}")
        script = workdir / "profile.lua"
        script.write_text(wrk.lua_script(row.body(), row.headers()))
        load = lambda seconds: bench.load(row, where, script, CONNECTIONS, seconds)  # noqa: E731
        with bench.mock_placed_for(row):
            load(2)
            say(f"sampling {row.id} (pid {gateway.pid}) for {seconds}s twice: flame graph, then collapsed stacks")
            summary = flame.report(spy.flame_graph(gateway.pid, load, svg=svg, seconds=seconds, rate=args.rate))
    finally:
        if gateway is not None:
            gateway.stop()
        if redis is not None:
            redis.stop()
        bench.mock.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    text = f"# py-spy profile of {row.label} at {CONNECTIONS} connections\n\n{summary}"
    svg.with_suffix(".md").write_text(text)
    print(text)
    print(f"Flame graph: {svg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
