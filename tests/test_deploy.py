"""Deploy files: the Procfile really runs (with honcho, against a real Redis); the Dockerfile,
docker-compose.yml, nginx, Prometheus and Grafana files are read and cross-checked (Docker itself
does not run here)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
import yaml

from conftest import openai_client
from gateway import ROOT, config, provider
from servers import free_port

ADMIN = {"authorization": "Bearer admin-secret-key"}


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


class _Url:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"


def test_procfile_has_exactly_web_and_worker():
    entries = procfile()
    assert set(entries) == {"web", "worker"}
    assert entries["web"].startswith("coo-llm serve ") and "${PORT" in entries["web"]
    assert entries["worker"] == "coo-llm worker"  # the config comes from $COO_CONFIG


def test_honcho_runs_the_procfile_against_redis(redis_server, upstream, fake, tmp_path):
    redis_server.flush()
    cfg = config(
        [provider("p", upstream.url, ["P1"], models=["gpt-test"])],
        policy={"retry": {"max_attempts": 2, "timeout": "10s", "queue": True}},
        storage={"runtime": {"type": "redis", "url": redis_server.url, "timeout": "1s"}},
        workers={"rollup_every": "1s"},
    )
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    honcho = shutil.which("honcho", path=bin_dir) or shutil.which("honcho")
    assert honcho, "honcho is in the test extras"
    env = {**os.environ, "COO_CONFIG": str(config_path), "WEB_CONCURRENCY": "2", "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    log = open(tmp_path / "honcho.log", "wb")
    process = subprocess.Popen([honcho, "start", "-d", str(ROOT), "-f", str(ROOT / "Procfile"), "-p", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    gateway = _Url(port)  # honcho gives `web` the first port as $PORT
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(gateway.url + "/health/ready", timeout=0.5).json()["status"] == "ready":
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (tmp_path / "honcho.log").read_text()
            time.sleep(0.2)
        client = openai_client(gateway)
        answers = [client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": f"procfile {i}"}]) for i in range(6)]
        assert [a.choices[0].message.content for a in answers] == [f"echo: procfile {i}" for i in range(6)]
        assert fake.count("P1") == 6
        # The worker process folds the usage the two web processes recorded.
        deadline = time.time() + 20
        total = {}
        while time.time() < deadline and total.get("ok") != 6:
            total = httpx.get(gateway.url + "/admin/v1/usage", headers=ADMIN).json()["total"]
            time.sleep(0.3)
        assert total["ok"] == 6
        snapshot = httpx.get(gateway.url + "/admin/v1/queue", headers=ADMIN).json()
        assert snapshot["backend"] == "arq" and snapshot["outcomes"]["rollup_usage"]["success"] >= 1
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # honcho passes it on to web and worker
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        log.close()
    output = (tmp_path / "honcho.log").read_text(errors="replace")
    assert re.search(r"web\.1\s+\|", output) and re.search(r"worker\.1\s+\|", output)
    with pytest.raises(httpx.HTTPError):
        httpx.get(gateway.url + "/health/live", timeout=1)


# ---------------------------------------------------------------------------------- static files


def load_yaml(relative: str):
    return yaml.safe_load((ROOT / relative).read_text())


def test_compose_runs_redis_two_gateways_a_balancer_a_worker_prometheus_and_grafana():
    compose = load_yaml("docker-compose.yml")
    services = compose["services"]
    assert set(services) == {"redis", "web-1", "web-2", "worker", "lb", "prometheus", "grafana"}
    for name in ("web-1", "web-2", "worker"):
        service = services[name]
        assert service["build"] == "." and service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["environment"]["COO_CONFIG"] == "/app/configs/redis.yaml"
        assert service["environment"]["REDIS_URL"].startswith("redis://redis:6379")
    assert "command" not in services["web-1"]  # the image's CMD: the Procfile's web line
    worker_command = services["worker"]["command"]
    assert worker_command[:2] == ["coo-llm", "worker"] and worker_command[worker_command.index("--metrics-port") + 1] == "9100"
    # Prometheus is another container: the worker's metrics (loopback by default) must listen on every interface.
    assert worker_command[worker_command.index("--metrics-host") + 1] == "0.0.0.0"
    assert services["redis"]["healthcheck"]["test"][-1] == "ping"
    # Every file mounted from the repo exists.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    assert "2906:2906" in services["lb"]["ports"]


def test_the_balancer_prometheus_and_grafana_point_at_the_compose_services():
    compose = load_yaml("docker-compose.yml")
    nginx = (ROOT / "configs/nginx.conf").read_text()
    assert sorted(re.findall(r"server (web-\d):2906", nginx)) == ["web-1", "web-2"]
    assert "proxy_buffering off" in nginx  # SSE streams pass through unbuffered
    prometheus = load_yaml("configs/prometheus.yml")
    targets = {t for job in prometheus["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    assert targets == {"web-1:2906", "web-2:2906", "worker:9100"}
    assert all(t.split(":")[0] in compose["services"] for t in targets)
    datasource = load_yaml("configs/grafana/provisioning/datasources/prometheus.yml")["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    provider_ = load_yaml("configs/grafana/provisioning/dashboards/coo-llm.yml")["providers"][0]
    grafana_volumes = compose["services"]["grafana"]["volumes"]
    assert any(v.endswith(":" + provider_["options"]["path"] + ":ro") for v in grafana_volumes)


def test_the_dashboard_only_queries_metrics_the_gateway_exports():
    from prometheus_client.metrics import MetricWrapperBase

    from app import metrics

    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    exported = {
        metric._name + suffix
        for metric in vars(metrics).values()
        if isinstance(metric, MetricWrapperBase)
        for suffix in suffixes[metric._type]
    }
    dashboard = json.loads((ROOT / "configs/grafana/dashboards/coo-llm.json").read_text())
    datasource_uid = load_yaml("configs/grafana/provisioning/datasources/prometheus.yml")["datasources"][0]["uid"]
    queried = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource_uid
        for target in panel["targets"]:
            queried.update(re.findall(r"\bcoo_llm_[a-z_]+", target["expr"]))
    assert queried and queried <= exported, queried - exported
    for needed in ("coo_llm_queue_depth", "coo_llm_jobs_total", "coo_llm_job_duration_seconds_bucket", "coo_llm_store_degraded", "coo_llm_cache_requests_total"):
        assert needed in queried


def test_dockerfile_is_slim_non_root_with_a_healthcheck_and_the_procfile_entry_points():
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)  # continuation lines make one instruction
    instructions = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    stages = [line for line in instructions if line.startswith("FROM ")]
    assert stages and all("-slim" in stage for stage in stages)
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK ") for line in instructions) and "/health/live" in text
    command = json.loads(next(line for line in instructions if line.startswith("CMD "))[4:])
    web = procfile()["web"]
    assert command[:2] == ["sh", "-c"] and command[2] == "exec " + web
    copied = re.findall(r"^COPY (?!--from)(?:--\S+ )*(\S+) ", text, re.MULTILINE)  # from the build context
    for source in copied:
        assert (ROOT / source).exists(), source
    assert "tests" in (ROOT / ".dockerignore").read_text().split()


def test_the_build_stage_context_is_enough_to_build_the_wheel(tmp_path):
    """What the Dockerfile's build stage copies, and nothing else, builds the package (as ``pip
    wheel .`` does there): a file pyproject.toml needs (readme, license) must be copied too."""
    text = (ROOT / "Dockerfile").read_text()
    build_stage = re.split(r"^FROM ", text, flags=re.MULTILINE)[1]  # [0] is the header comment
    context = tmp_path / "context"
    context.mkdir()
    for line in re.findall(r"^COPY (?!--from)(.+)$", build_stage, re.MULTILINE):
        *sources, destination = [word for word in line.split() if not word.startswith("--")]
        for source in sources:  # the build stage's WORKDIR is the context root
            target = context / Path(source).name if destination.endswith("/") else context / destination
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(ROOT / source, target)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path / "wheels"), str(context)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [wheel] = (tmp_path / "wheels").glob("coo_llm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("license-files", [])
    for license_file in declared:  # setuptools only warns when one is missing from the context
        assert any(name.endswith(f".dist-info/licenses/{license_file}") for name in names), license_file
    assert "app/cli.py" in names
    # The dashboard's page ships inside the package (no build step, nothing fetched at run time).
    assets = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "app/dashboard/static").iterdir() if path.is_file())
    assert assets and set(assets) <= set(names), set(assets) - set(names)

def test_the_scale_out_example_config_is_valid():
    env = {**os.environ, "COO_CLIENT_KEY": "client"}
    done = subprocess.run([sys.executable, "-m", "app.cli", "check", "--config", str(ROOT / "configs/redis.yaml")], cwd=ROOT, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr


def _check_on_the_procfile_address(config: str, **env: str) -> subprocess.CompletedProcess:
    """``check`` of ``config`` on the address the Procfile's (and the image's) web line binds."""
    web = procfile()["web"]
    assert "--host 0.0.0.0" in web and "--host 0.0.0.0" in (ROOT / "Dockerfile").read_text()
    command = [sys.executable, "-m", "app.cli", "check", "--config", str(ROOT / config), "--host", "0.0.0.0", "--port", str(free_port())]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **env})


def test_the_deployed_web_line_starts_with_client_keys_and_refuses_open_access_unless_allowed():
    assert _check_on_the_procfile_address("configs/redis.yaml", COO_CLIENT_KEY="client").returncode == 0  # compose's config
    # The image's default config has no client keys: on 0.0.0.0 it refuses, unless told open access is meant.
    refused = _check_on_the_procfile_address("configs/config.yaml", COO_ALLOW_OPEN_ACCESS="")
    assert refused.returncode == 1 and "server.allow_open_access: no api_keys are configured" in refused.stderr
    assert _check_on_the_procfile_address("configs/config.yaml", COO_ALLOW_OPEN_ACCESS="true").returncode == 0
    assert "COO_ALLOW_OPEN_ACCESS=true" in (ROOT / "Dockerfile").read_text()  # and the image says how
