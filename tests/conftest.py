"""Shared fixtures: a fake upstream on loopback, real gateway processes, and the OpenAI SDK."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakeupstream import FakeUpstream  # noqa: E402
from gateway import Gateway  # noqa: E402

# ../shared beside the repo (read-only, present in CI); COO_SHARED_DIR points elsewhere (worktrees).
SHARED = Path(os.environ.get("COO_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")


@pytest.fixture(scope="session")
def upstream():
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def fake(upstream):
    """The shared fake upstream, with scripts and counters cleared for this test."""
    upstream.reset()
    yield upstream
    upstream.reset()


@pytest.fixture(scope="module")
def start_gateway(tmp_path_factory):
    """Start gateways for a module; all are stopped when the module ends."""
    started: list[Gateway] = []
    workdir = tmp_path_factory.mktemp("gw")

    def start(config: dict, **kwargs) -> Gateway:
        gateway = Gateway(config, workdir, **kwargs).start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


def openai_client(gateway: Gateway, key: str = "client-key", **kwargs):
    import openai

    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=kwargs.pop("timeout", 20), **kwargs)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


@pytest.fixture(scope="session")
def schemas_if_present():
    """OpenAI's schemas when ``shared/spec`` is present, else None: tests that are about more than
    the schema still run without it and validate only when they can."""
    from openai_schema import OpenAISchemas

    spec = SHARED / "spec" / "openai-openapi.yaml"
    return OpenAISchemas(spec) if spec.is_file() else None


@pytest.fixture(scope="session")
def openai_schemas(shared_dir: Path, schemas_if_present):
    """Validators for OpenAI's response schemas, from ``shared/spec/openai-openapi.yaml`` (or skip)."""
    if schemas_if_present is None:
        pytest.skip("shared/spec/openai-openapi.yaml is not present")
    return schemas_if_present


@pytest.fixture
def warnings_logged():
    """Loguru records at WARNING and above, while the test runs."""
    from loguru import logger

    records: list[dict] = []
    handle = logger.add(lambda message: records.append(message.record), level="WARNING")
    yield records
    logger.remove(handle)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One real redis-server for the whole session (tests use their own key names or flush)."""
    from servers import RedisServer, binary

    if binary("redis-server") is None:
        pytest.fail("redis-server is not installed (make test installs it: scripts/ensure-debs.sh)")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    """A redis-server of this test module's own, for tests that stop it or watch all its keys
    (a module may define its own ``redis``, e.g. a persistent one)."""
    from servers import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("module-redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def webdis_server(redis_server, tmp_path_factory):
    """A real webdis in front of the session's redis-server."""
    from servers import WebdisServer, binary

    if binary("webdis") is None:
        pytest.fail("webdis is not installed (make test installs it: scripts/ensure-debs.sh)")
    server = WebdisServer(tmp_path_factory.mktemp("webdis"), redis_server.port).start()
    yield server
    server.stop()
