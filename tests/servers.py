"""Real Redis, Redis Cluster and webdis servers for tests: free loopback ports, temp dirs, stopped after.

Each helper starts the Debian binary (``redis-server``, ``webdis``) as a child process and waits
until it answers. ``RedisServer.stop()`` / ``start()`` keep the port, so a test can take Redis
away mid-load and bring it back.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def binary(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}") if Path(p).exists()), None)


def stop_process(process: subprocess.Popen | None, grace: float = 10.0) -> None:
    """Ask ``process`` to stop (SIGTERM); kill it if it is still running after ``grace`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _wait(check, what: str, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up in {timeout}s")


def redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def redis_command(port: int, *args: str) -> bytes:
    """Send one command in RESP and return the raw reply (enough for tests' own checks)."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(payload)
        time.sleep(0.05)
        return sock.recv(1 << 16)


class RedisServer:
    """``persistent=True`` keeps data across ``stop()``/``start()`` (append-only file), like a real deployment."""

    def __init__(self, workdir: Path, *, port: int | None = None, extra: list[str] | None = None, persistent: bool = False) -> None:
        self.port = port or free_port()
        self.workdir = Path(workdir) / f"redis-{self.port}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.extra = (extra or []) + (["--appendonly", "yes", "--appendfsync", "always"] if persistent else [])
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        command = [
            binary("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no",
            "--logfile", str(self.workdir / "redis.log"), *self.extra,
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: redis_ping(self.port), f"redis-server on {self.port}")
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def flush(self) -> None:
        redis_command(self.port, "FLUSHALL")

    def info_memory(self) -> int:
        raw = redis_command(self.port, "INFO", "memory").decode(errors="replace")
        for line in raw.splitlines():
            if line.startswith("used_memory:"):
                return int(line.split(":")[1])
        raise RuntimeError("no used_memory in INFO")


class RedisCluster:
    """Three masters, no replicas: the smallest real Redis Cluster."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.nodes: list[RedisServer] = []
        ports: list[int] = []
        while len(ports) < size:
            port = random.randint(20000, 29999)  # the cluster bus listens on port + 10000
            if port not in ports and _port_free(port) and _port_free(port + 10000):
                ports.append(port)
        for port in ports:
            node_dir = Path(workdir) / f"cluster-{port}"
            self.nodes.append(RedisServer(node_dir, port=port, extra=["--cluster-enabled", "yes", "--cluster-config-file", str(node_dir / "nodes.conf")]))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> "RedisCluster":
        for node in self.nodes:
            node.workdir.mkdir(parents=True, exist_ok=True)
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            [binary("redis-cli") or "redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
        )
        _wait(lambda: all(b"cluster_state:ok" in redis_command(n.port, "CLUSTER", "INFO") for n in self.nodes), "redis cluster", 20)
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class WebdisServer:
    def __init__(self, workdir: Path, redis_port: int, *, basic_auth: str | None = None) -> None:
        self.port = free_port()
        self.redis_port = redis_port
        self.basic_auth = basic_auth  # "user:password": every command then needs HTTP Basic auth
        self.workdir = Path(workdir) / f"webdis-{self.port}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "WebdisServer":
        config = {
            "redis_host": "127.0.0.1",
            "redis_port": self.redis_port,
            "redis_auth": None,
            "http_host": "127.0.0.1",
            "http_port": self.port,
            "threads": 2,
            "pool_size": 8,
            "daemonize": False,
            "database": 0,
            "acl": [{"disabled": ["DEBUG", "FLUSHALL", "FLUSHDB"]}] if not self.basic_auth else [
                {"disabled": ["*"]},
                {"http_basic_auth": self.basic_auth, "enabled": ["*"]},
                {"http_basic_auth": self.basic_auth, "disabled": ["DEBUG", "FLUSHALL", "FLUSHDB"]},
            ],
            "verbosity": 1,
            "logfile": str(self.workdir / "webdis.log"),
        }
        path = self.workdir / "webdis.json"
        path.write_text(json.dumps(config))
        self.process = subprocess.Popen([binary("webdis") or "webdis", str(path)], cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        auth = tuple(self.basic_auth.split(":", 1)) if self.basic_auth else None
        _wait(lambda: httpx.get(self.url + "/PING", timeout=0.5, auth=auth).status_code == 200, f"webdis on {self.port}")
        return self

    def stop(self) -> None:
        stop_process(self.process)
