"""Reading py-spy's collapsed stacks (``--format raw``): where the samples went.

Each line is ``frame;frame;...;frame COUNT`` from the outermost frame in, a frame being
``function (/full/path/to/file.py)`` (py-spy's ``--full-filenames``; with ``:line`` unless it ran
with ``--nolineno``), shortened here to package paths such as ``sanic/app.py``. ``self``
time belongs to the innermost frame of a stack; ``inclusive`` time to every distinct function
on it. ``area`` folds a file path into the part of the system it belongs to, so the summary
says how much goes to our code, to Sanic, aiohttp, loguru, prometheus_client and asyncio.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")

# (path prefix after shortening, area); the first match wins.
AREAS: tuple[tuple[str, str], ...] = (
    ("app/", "coo-llm app/"),
    ("adapters/", "coo-llm adapters/"),
    ("balancer/", "coo-llm balancer/"),
    ("storage/", "coo-llm storage/"),
    ("sanic", "sanic"),
    ("httptools", "sanic"),
    ("aiohttp/", "aiohttp"),
    ("yarl/", "aiohttp"),
    ("multidict/", "aiohttp"),
    ("loguru/", "loguru"),
    ("prometheus_client/", "prometheus_client"),
    ("uvloop/", "event loop"),
    ("asyncio/", "event loop"),
    ("selectors.py", "event loop"),
    ("orjson", "orjson"),
)


def shorten(path: str, root: str = "") -> str:
    """A full file name as a package path: ``sanic/app.py``, ``app/dispatch.py``, ``uuid.py``."""
    for marker in ("site-packages/", "dist-packages/"):  # first: the venv may sit inside root
        if marker in path:
            return path.split(marker, 1)[1]
    if root and path.startswith(root.rstrip("/") + "/"):
        return path[len(root.rstrip("/")) + 1 :]
    match = re.search(r"/lib/python3\.\d+/(.*)$", path)
    return match[1] if match else path


def area(path: str) -> str:
    """The part of the system a (shortened) file belongs to."""
    for prefix, name in AREAS:
        if path.startswith(prefix):
            return name
    return "other (stdlib, ...)"


@dataclass(frozen=True, slots=True)
class Frame:
    function: str
    file: str

    @property
    def name(self) -> str:
        return f"{self.function} ({self.file})"


def parse_frame(text: str, root: str = "") -> Frame:
    match = _FRAME.match(text.strip())
    if not match:
        return Frame(text.strip(), "")
    return Frame(match["function"], shorten(match["file"], root))


def parse(lines, root: str = "") -> list[tuple[list[Frame], int]]:
    """Collapsed stacks as (frames outermost first, sample count); files shortened against ``root``."""
    stacks = []
    for line in lines:
        line = line.rstrip("\n")
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append(([parse_frame(part, root) for part in stack.split(";")], int(count)))
    return stacks


@dataclass
class Summary:
    samples: int
    self_by_function: Counter
    inclusive_by_function: Counter
    self_by_area: Counter


def _known_file(frames: list[Frame]) -> str:
    """The innermost real file of a stack. py-spy names some frames only by their function
    (``send (send)`` inside Sanic's ``http1``); their time belongs to the caller's area."""
    for frame in reversed(frames):
        if frame.file.endswith(".py"):
            return frame.file
    return frames[-1].file


def summarize(stacks: list[tuple[list[Frame], int]]) -> Summary:
    total = 0
    own: Counter = Counter()
    inclusive: Counter = Counter()
    areas: Counter = Counter()
    for frames, count in stacks:
        if not frames:
            continue
        total += count
        innermost = frames[-1]
        own[innermost.name] += count
        areas[area(_known_file(frames))] += count
        for name in {frame.name for frame in frames}:
            inclusive[name] += count
    return Summary(total, own, inclusive, areas)


def top_frames(summary: Summary, *, top: int = 25) -> dict:
    """The summary as JSON-able ``[name, samples]`` lists: ``by_area`` (self time, every area),
    ``self`` (the top functions by self time) and ``ours`` (coo-llm's own functions by inclusive
    time, entry frames on every stack, such as the CLI, left out)."""
    ours = [
        (name, count)
        for name, count in summary.inclusive_by_function.most_common()
        if area(name.rpartition(" (")[2].rstrip(")")).startswith("coo-llm") and count < 0.95 * summary.samples
    ][:top]
    return {
        "samples": summary.samples,
        "by_area": [[name, count] for name, count in summary.self_by_area.most_common()],
        "self": [[name, count] for name, count in summary.self_by_function.most_common(top)],
        "ours": [[name, count] for name, count in ours],
    }


def render(frames: dict, *, heading: str = "###") -> str:
    """Markdown of ``top_frames``: a table per list, shares of all samples."""
    total = frames["samples"] or 1

    def rows(items) -> str:
        lines = ["| share | samples | where |", "|---|---|---|"]
        for name, count in items:
            lines.append(f"| {100 * count / total:.1f}% | {count} | `{name}` |")
        return "\n".join(lines)

    return (
        f"{frames['samples']} samples (CPU only: py-spy leaves out a loop idle in epoll)\n\n"
        f"{heading} Self time by area\n\n{rows(frames['by_area'])}\n\n"
        f"{heading} Top functions by self time\n\n{rows(frames['self'])}\n\n"
        f"{heading} coo-llm functions by inclusive time\n\n{rows(frames['ours'])}\n"
    )


def report(summary: Summary, *, top: int = 25) -> str:
    """Markdown: self time by area, the top functions by self time, and coo-llm's own functions by
    inclusive time."""
    return render(top_frames(summary, top=top))
