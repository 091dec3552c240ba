"""Child processes of a benchmark run: started pinned to CPUs, watched through ``/proc``, stopped.

``Service`` starts a command under ``taskset -c <cpus>`` with its output in a log file, waits
until a readiness check passes, and reads the CPU time (utime + stime) and peak RSS (VmHWM) of
its whole process tree, so a gateway with ``--workers 2`` counts its spawned workers too.
"""

from __future__ import annotations

import http.client
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_program(name: str) -> str | None:
    """A Debian program, also where ``/usr/sbin`` is not on PATH (nginx)."""
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)


def http_request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 5.0, *, host: str = "127.0.0.1"
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, lower-cased headers, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def http_ok(port: int, path: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return http_request(port, "GET", path, timeout=1.0)[0] == 200
        except OSError:
            return False

    return check


def tcp_open(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    return check


# ------------------------------------------------------------------ /proc readings


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from "state" on; comm may hold spaces


def children_map() -> dict[int, list[int]]:
    """ppid -> pids, for every process visible now."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def process_tree(root: int) -> list[int]:
    tree = children_map()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, ()))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 if it is gone)."""
    fields = _stat_fields(pid)
    if not fields:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time the machine's CPUs spent running processes so far, plus time the hypervisor gave
    to other guests (``/proc/stat``: user, nice, system, steal). Interrupt time is left out: the
    kernel may account the bench's own loopback traffic there, not to any process."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + steal) / CLOCK_TICKS


def own_seconds() -> float:
    """CPU time of this process and of its children that have ended (wrk runs, for the harness)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def memory_kb(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) in kB."""
    found = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
    except OSError:
        pass
    return found


# ------------------------------------------------------------------ services


class Service:
    """One benchmarked process (and its children), pinned with ``taskset``."""

    def __init__(self, name: str, command: list[str], *, cpus: str | None, log_path: Path, env: dict[str, str | None] | None = None, cwd: Path = ROOT):
        self.name = name
        self.command = (["taskset", "-c", cpus] if cpus else []) + command
        self.cpus = cpus
        self.log_path = log_path
        # env values of None remove the variable (prometheus_client acts on its mere presence)
        self.env = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
        self.cwd = cwd
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid  # taskset execs the command: same pid

    def start(self, ready: Callable[[], bool], timeout: float = 60.0) -> "Service":
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(self.command, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.log_tail()}")
            if ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} (pid {self.pid}) was not ready after {timeout:.0f}s; log: {self.log_tail() or '(empty)'}")

    def pids(self) -> list[int]:
        return process_tree(self.pid) if self.process and self.process.poll() is None else []

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def peak_rss_mb(self) -> float:
        """The largest peak RSS among this service's processes, in MB."""
        return max((memory_kb(pid).get("VmHWM", 0) for pid in self.pids()), default=0) / 1024

    def rss_mb(self) -> float:
        """The largest current RSS among this service's processes, in MB."""
        return max((memory_kb(pid).get("VmRSS", 0) for pid in self.pids()), default=0) / 1024

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: the workers go too
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
