"""Running a real ``coo-llm serve`` process for tests, and writing its config."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from servers import free_port, stop_process

ROOT = Path(__file__).resolve().parent.parent


class Gateway:
    """A gateway subprocess on 127.0.0.1:<port>, its config and its log file."""

    def __init__(self, config: dict, workdir: Path, *, workers: int = 1, env: dict | None = None, args: list[str] | None = None):
        self.config = config
        self.port = free_port()
        self.workdir = workdir
        self.config_path = workdir / f"gateway-{self.port}.yaml"
        self.log_path = workdir / f"gateway-{self.port}.log"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.workers = workers
        self.env = {**os.environ, **(env or {})}
        self.args = args or []
        self.process: subprocess.Popen | None = None
        self.starts = 0  # start() may be called again after stop(): the log keeps every start's lines

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "Gateway":
        self.starts += 1
        log = open(self.log_path, "ab")
        command = [sys.executable, "-m", "app.cli", "serve", "--config", str(self.config_path), "--host", "127.0.0.1", "--port", str(self.port)]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        self.process = subprocess.Popen(command + self.args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.logs()}")
            try:
                # every web process has started (one answering /health/live is not all of them)
                if httpx.get(self.url + "/health/live", timeout=0.5).status_code == 200 and self.logs().count('"web process ready"') >= self.workers * self.starts:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway did not start:\n{self.logs()}")

    def stop(self) -> None:
        stop_process(self.process)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def provider(pid: str, base_url: str, keys: list[str], *, type: str = "openai", models=("gpt-test",), **extra) -> dict:
    entry = {"id": pid, "type": type, "api_keys": list(keys), "base_url": base_url, "models": list(models)}
    entry.update(extra)
    return entry


def config(providers: list[dict], *, client_keys: list[dict] | None = None, policy: dict | None = None, **extra) -> dict:
    data = {
        "version": "1.0",
        "server": {"listen": ":2906", "admin_api_key": "admin-secret-key"},
        "logging": {"level": "INFO", "json": True},
        "llm_providers": providers,
        "api_keys": client_keys if client_keys is not None else [{"key": "client-key", "allowed_providers": ["*"]}],
        "policy": {"algorithm": "round_robin", "retry": {"max_attempts": 3, "timeout": "10s"}, **(policy or {})},
    }
    data.update(extra)
    return data


class WorkerProcess:
    """A ``coo-llm worker`` subprocess on a config file, with its log; ``kill()`` is SIGKILL."""

    def __init__(self, config_path: Path, workdir: Path, *, env: dict | None = None) -> None:
        self.config_path = config_path
        self.log_path = workdir / f"worker-{id(self)}.log"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self, ready=None, timeout: float = 20.0) -> "WorkerProcess":
        """Start; ``ready()`` (e.g. "arq wrote its health-check key") says when it is polling."""
        log = open(self.log_path, "ab")
        command = [sys.executable, "-m", "app.cli", "worker", "--config", str(self.config_path)]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.time() + timeout
        while ready is not None and time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.logs()}")
            if ready():
                return self
            time.sleep(0.1)
        if ready is not None:
            raise RuntimeError(f"worker did not become ready:\n{self.logs()}")
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def stop(self) -> None:
        stop_process(self.process, grace=15)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
