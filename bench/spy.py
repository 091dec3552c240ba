"""Sampling a running process with py-spy while load keeps it busy: a flame graph and its sums.

``flame_graph`` records a process twice under the same load: once writing the SVG flame graph,
once writing collapsed stacks (kept beside the SVG as ``.collapsed.txt``), which ``bench.flame``
sums. ``make profile`` (``bench.profile``, any row) and ``make bench`` (``bench.run``, the memory
row after its measured phases) both record through it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from bench import flame
from bench.procs import ROOT

SETTLE_S = 2  # load runs this much longer than py-spy samples, so every sample sees full load


def py_spy() -> str | None:
    """The py-spy program (the venv's, or on PATH), or None when it is not installed."""
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if os.access(found, os.X_OK) else None


def record(pid: int, load: Callable[[int], object], *, seconds: int, rate: int, fmt: str, out: Path) -> None:
    """Sample ``pid`` for ``seconds`` into ``out`` (``fmt``: py-spy's ``flamegraph`` or ``raw``)
    while ``load(seconds + SETTLE_S)`` runs. RuntimeError when py-spy is missing or fails."""
    program = py_spy()
    if program is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy; make bench and make profile install it)")
    command = [program, "record", "--pid", str(pid), "--rate", str(rate), "--duration", str(seconds), "--format", fmt, "--output", str(out)]
    if fmt == "raw":
        command += ["--nolineno", "--full-filenames"]  # balancer/ has no __init__.py: py-spy would drop its folder
    else:
        command.append("--function")
    spy = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        load(seconds + SETTLE_S)
    finally:
        output, _ = spy.communicate(timeout=seconds + 60)
    if spy.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed ({spy.returncode}): {output.strip()[-1000:]}")


def flame_graph(pid: int, load: Callable[[int], object], *, svg: Path, seconds: int, rate: int) -> flame.Summary:
    """Write ``svg`` (the flame graph) and ``<svg stem>.collapsed.txt``; return the summed samples."""
    svg.parent.mkdir(parents=True, exist_ok=True)
    record(pid, load, seconds=seconds, rate=rate, fmt="flamegraph", out=svg)
    collapsed = svg.with_suffix(".collapsed.txt")
    record(pid, load, seconds=seconds, rate=rate, fmt="raw", out=collapsed)
    with collapsed.open() as lines:
        return flame.summarize(flame.parse(lines, str(ROOT)))
