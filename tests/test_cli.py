"""The ``coo-llm`` command as a new user meets it: real ``python -m app.cli`` subprocesses, and
real ``serve`` start attempts for what it must refuse. Whatever would stop ``serve`` is caught
by ``check`` first, with the same line, and ``serve`` itself says it in one line instead of a
traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from conftest import openai_client
from gateway import ROOT, Gateway, config, provider
from servers import free_port, stop_process


def cli(*args: str, env: dict | None = None, drop: tuple[str, ...] = (), timeout: float = 60) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in drop}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True, env={**environ, **(env or {})}, timeout=timeout)


def write(tmp_path: Path, data: dict, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def minimal(port: int | None = None, **extra) -> dict:
    data = {
        "server": {"listen": f"127.0.0.1:{port or free_port()}"},
        "llm_providers": [{"id": "oa", "type": "openai", "api_keys": ["sk-test"], "model": "m", "base_url": "http://127.0.0.1:9/v1"}],
        "api_keys": [{"key": "client-key"}],
    }
    data.update(extra)
    return data


def refused_start(cfg: dict, workdir: Path, **kwargs) -> Gateway:
    """Start ``serve`` on ``cfg`` as the other tests do and expect it to exit by itself."""
    gateway = Gateway(cfg, workdir, **kwargs)
    with pytest.raises(RuntimeError, match="gateway exited with"):
        gateway.start(timeout=20)
    return gateway


def listening_ipv4(port: int) -> set[str]:
    """The IPv4 addresses something listens on at ``port``, read from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


needs_proc = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads listening sockets from /proc/net/tcp (Linux)")


# ---------------------------------------------------------------------------------- check: variables


def test_check_names_an_unset_provider_key_variable_and_strict_fails_on_it(tmp_path):
    secret = "sk-set-value-that-must-not-show-4242"
    data = minimal()
    data["llm_providers"][0]["api_keys"] = ["${COO_TEST_UNSET_KEY}", "${COO_TEST_SET_KEY}", "${COO_TEST_OPTIONAL:-}"]
    path = write(tmp_path, data)
    env = {"COO_TEST_SET_KEY": secret}
    drop = ("COO_TEST_UNSET_KEY", "COO_TEST_OPTIONAL")

    relaxed = cli("check", "--config", str(path), env=env, drop=drop)
    assert relaxed.returncode == 0, relaxed.stderr
    assert "llm_providers[0].api_keys[0]: ${COO_TEST_UNSET_KEY} is not set, so provider oa has one key fewer" in relaxed.stderr
    assert "COO_TEST_OPTIONAL" not in relaxed.stderr  # an explicit empty default is meant
    assert "1 provider key(s)" in relaxed.stdout

    strict = cli("check", "--strict", "--config", str(path), env=env, drop=drop)
    assert strict.returncode == 1
    assert "invalid (--strict" in strict.stderr and "${COO_TEST_UNSET_KEY} is not set" in strict.stderr
    for result in (relaxed, strict):
        assert secret not in result.stdout + result.stderr

    both_set = cli("check", "--strict", "--config", str(path), env={**env, "COO_TEST_UNSET_KEY": "sk-other"}, drop=("COO_TEST_OPTIONAL",))
    assert both_set.returncode == 0, both_set.stderr
    assert "warning" not in both_set.stderr and "2 provider key(s)" in both_set.stdout


def test_a_provider_left_without_keys_is_named_as_such(tmp_path):
    data = minimal()
    data["llm_providers"][0]["api_keys"] = ["${COO_TEST_UNSET_KEY}"]
    result = cli("check", "--config", str(write(tmp_path, data)), drop=("COO_TEST_UNSET_KEY",))
    assert result.returncode == 0
    assert "${COO_TEST_UNSET_KEY} is not set, so provider oa has no API keys (its requests fail with 503)" in result.stderr


# ---------------------------------------------------------------------------------- open access


OPEN_ACCESS = "server.allow_open_access: no api_keys are configured and the gateway would listen on 0.0.0.0:"


def test_open_access_is_refused_on_a_public_address_by_check_and_serve(tmp_path, upstream):
    cfg = config([provider("oa", upstream.url, ["k"], models=["m"])], client_keys=[])
    path = write(tmp_path, cfg)

    assert cli("check", "--config", str(path), "--host", "127.0.0.1", "--port", str(free_port())).returncode == 0  # loopback: fine
    checked = cli("check", "--config", str(path), "--host", "0.0.0.0", "--port", str(free_port()))
    assert checked.returncode == 1 and OPEN_ACCESS in checked.stderr

    # serve with the Procfile's kind of address: an explicit --host 0.0.0.0 is held to the same rule
    gateway = refused_start(cfg, tmp_path, args=["--host", "0.0.0.0"])
    assert gateway.process.returncode == 1
    assert OPEN_ACCESS in gateway.logs() and "Traceback" not in gateway.logs()
    with pytest.raises(httpx.HTTPError):
        httpx.get(gateway.url + "/health/live", timeout=1)


def test_open_access_on_a_public_address_starts_when_allowed(tmp_path, upstream, fake):
    cfg = config([provider("oa", upstream.url, ["k"], models=["m"])], client_keys=[])
    cfg["server"]["allow_open_access"] = True
    assert cli("check", "--config", str(write(tmp_path, cfg)), "--host", "0.0.0.0", "--port", str(free_port())).returncode == 0
    gateway = Gateway(cfg, tmp_path, args=["--host", "0.0.0.0"]).start()
    try:
        answer = openai_client(gateway, key="anyone").chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "echo: hi"
    finally:
        gateway.stop()


def test_client_keys_make_a_public_address_fine(tmp_path):
    result = cli("check", "--config", str(write(tmp_path, minimal())), "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode == 0, result.stderr


@needs_proc
def test_the_default_listen_address_is_loopback_and_open_access_is_fine_there(tmp_path, upstream, fake):
    port = free_port()
    cfg = {"llm_providers": [provider("oa", upstream.url, ["k"], models=["m"])]}  # no server section, no api_keys
    path = write(tmp_path, cfg)
    assert cli("check", "--config", str(path), "--port", str(port)).returncode == 0
    log = open(tmp_path / "serve.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--config", str(path), "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        while time.time() < deadline and process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        assert listening_ipv4(port) == {"127.0.0.1"}
    finally:
        stop_process(process)
        log.close()


# ---------------------------------------------------------------------------------- what would stop serve


def _not_a_folder(tmp_path: Path) -> dict:
    (tmp_path / "plain-file").write_text("x")
    return minimal(logging={"file": str(tmp_path / "plain-file" / "logs" / "gateway.log")})


def _not_sqlite(tmp_path: Path) -> dict:
    (tmp_path / "state.sqlite3").write_text("this is not a database, just text that is long enough")
    return minimal(storage={"runtime": {"type": "file", "path": str(tmp_path / "state.sqlite3")}})


def _a_folder(tmp_path: Path) -> dict:
    (tmp_path / "state-dir").mkdir()
    return minimal(storage={"runtime": {"type": "file", "path": str(tmp_path / "state-dir")}})


def _foreign_address(tmp_path: Path) -> dict:
    return minimal(server={"listen": "192.0.2.1:2906"})  # TEST-NET-1: on no machine


def _redis_url_of_another_scheme(tmp_path: Path) -> dict:
    return minimal(storage={"runtime": {"type": "redis", "url": "http://127.0.0.1:6379"}})


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_not_a_folder, "logging.file: cannot create "),
        (_not_sqlite, "exists and is not a SQLite database"),
        (_a_folder, "is a folder, not a file"),
        (_foreign_address, "192.0.2.1:2906: not an address of this machine"),
        (_redis_url_of_another_scheme, "storage.runtime: type redis needs a redis://, rediss:// or unix:// url"),
    ],
    ids=["log-folder-under-a-file", "not-sqlite", "sqlite-path-is-a-folder", "foreign-address", "redis-url-scheme"],
)
def test_check_catches_what_would_stop_serve_and_serve_says_it_in_one_line(tmp_path, make, expected):
    path = write(tmp_path, make(tmp_path))
    checked = cli("check", "--config", str(path))
    assert checked.returncode == 1 and expected in checked.stderr, checked.stderr
    served = cli("serve", "--config", str(path), timeout=30)  # on server.listen as written
    assert served.returncode == 1 and expected in served.stderr, served.stderr
    assert "Traceback" not in served.stderr


def test_serve_creates_a_missing_log_folder(tmp_path, upstream, fake):
    log_file = tmp_path / "not" / "yet" / "there" / "gateway.log"
    cfg = config([provider("oa", upstream.url, ["k"], models=["m"])], logging={"level": "INFO", "json": True, "file": str(log_file)})
    assert cli("check", "--config", str(write(tmp_path, cfg)), "--port", str(free_port())).returncode == 0
    assert not log_file.parent.exists()  # check created nothing
    gateway = Gateway(cfg, tmp_path).start()
    try:
        openai_client(gateway).chat.completions.create(model="m", messages=[{"role": "user", "content": "logged"}])
        deadline = time.time() + 5
        while time.time() < deadline and '"status":200' not in (log_file.read_text() if log_file.exists() else ""):
            time.sleep(0.1)
        lines = [json.loads(line) for line in log_file.read_text().splitlines()]
        assert any(line.get("status") == 200 and line.get("model") == "m" for line in lines)
    finally:
        gateway.stop()


def test_a_port_in_use_is_a_warning_for_check_and_an_error_for_serve(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        path = write(tmp_path, minimal(port))
        checked = cli("check", "--config", str(path))
        assert checked.returncode == 0 and f"127.0.0.1:{port}: the port is in use" in checked.stderr
        assert cli("check", "--strict", "--config", str(path)).returncode == 1
        served = cli("serve", "--config", str(path))
        assert served.returncode == 1 and f"127.0.0.1:{port}: the port is in use" in served.stderr
        assert "Traceback" not in served.stderr


# ---------------------------------------------------------------------------------- warm


def test_warm_refuses_memory_storage_and_calls_no_upstream(tmp_path, upstream, fake):
    cfg = config([provider("w", upstream.url, ["W1"], models=["warm-model"])], client_keys=[], policy={"cache": {"enabled": True}})
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps({"model": "warm-model", "messages": [{"role": "user", "content": "hi"}]}) + "\n")
    done = cli("warm", str(requests), "--config", str(write(tmp_path, cfg)))
    assert done.returncode == 2
    assert "storage.runtime.type is memory" in done.stderr and "vanish when it exits" in done.stderr
    assert "warmed" not in done.stdout and fake.count("W1") == 0


def test_warm_with_file_storage_fills_the_cache_a_running_gateway_reads(tmp_path, upstream, fake):
    state = tmp_path / "state" / "coo-llm.sqlite3"
    cfg = config(
        [provider("w", upstream.url, ["W1"], models=["warm-model"])],
        policy={"cache": {"enabled": True, "ttl_seconds": 300}},
        storage={"runtime": {"type": "file", "path": str(state)}},
        client_keys=[{"key": "tenant-key", "cache_namespace": "tenant-x"}],
    )
    gateway = Gateway(cfg, tmp_path).start()
    try:
        prompt = uuid.uuid4().hex
        requests = tmp_path / "requests.jsonl"
        requests.write_text(json.dumps({"model": "warm-model", "messages": [{"role": "user", "content": prompt}]}) + "\n")
        done = cli("warm", str(requests), "--config", str(gateway.config_path), "--namespace", "tenant-x")
        assert done.returncode == 0, done.stderr
        assert "warmed 1, failed 0" in done.stdout and f"writing into {state}" in done.stderr
        assert fake.count("W1") == 1
        raw = openai_client(gateway, "tenant-key").chat.completions.with_raw_response.create(model="warm-model", messages=[{"role": "user", "content": prompt}])
        assert raw.headers.get("x-coo-llm-cache") == "hit"  # the running gateway read what warm wrote
        assert fake.count("W1") == 1
    finally:
        gateway.stop()


# ---------------------------------------------------------------------------------- worker metrics


def _worker(cfg_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--config", str(cfg_path), *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for_metrics(port: int, process: subprocess.Popen) -> None:
    deadline = time.time() + 20
    while time.time() < deadline:
        assert process.poll() is None, "the worker exited"
        try:
            if "coo_llm" in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=0.5).text:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("worker metrics never answered")


@needs_proc
@pytest.mark.parametrize(("args", "expected"), [((), "127.0.0.1"), (("--metrics-host", "0.0.0.0"), "0.0.0.0")], ids=["default", "every-interface"])
def test_worker_metrics_listen_on_loopback_unless_told(tmp_path, redis_server, args, expected):
    path = write(tmp_path, minimal(storage={"runtime": {"type": "redis", "url": redis_server.url}}))
    port = free_port()
    process = _worker(path, "--metrics-port", str(port), *args)
    try:
        _wait_for_metrics(port, process)
        assert listening_ipv4(port) == {expected}
    finally:
        stop_process(process, grace=15)


def test_worker_says_plainly_that_its_metrics_port_is_taken(tmp_path):
    path = write(tmp_path, minimal(storage={"runtime": {"type": "redis", "url": "redis://127.0.0.1:9/0"}}))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = cli("worker", "--config", str(path), "--metrics-port", str(port))
    assert done.returncode == 1
    assert f"--metrics-host/--metrics-port: 127.0.0.1:{port}: the port is in use" in done.stderr and "Traceback" not in done.stderr
