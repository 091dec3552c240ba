"""The http backend against a webdis that requires HTTP Basic auth (its ACL): credentials go in
``storage.runtime.url`` (``http://user:password@host:port``), are sent as Basic auth, and never
appear in errors or in ``/admin/v1/config``."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.config import RuntimeStorage, masked_dump, settings_from_data
from storage import Reservation, StoreUnavailable, WindowLimits, open_store

T0 = 1_800_000_000.0
SECRET = "w3bd1s-s3cret"


@pytest.fixture(scope="module")
def guarded_webdis(redis_server, tmp_path_factory):
    from servers import WebdisServer, binary

    if binary("webdis") is None:
        pytest.fail("webdis is not installed (make test installs it: scripts/ensure-debs.sh)")
    server = WebdisServer(tmp_path_factory.mktemp("webdis-auth"), redis_server.port, basic_auth=f"coo:{SECRET}").start()
    yield server
    server.stop()


def with_credentials(url: str, credentials: str) -> str:
    return url.replace("http://", f"http://{credentials}@", 1)


def test_webdis_refuses_commands_without_the_credentials(guarded_webdis):
    assert httpx.get(guarded_webdis.url + "/PING", timeout=5).status_code in (401, 403)
    assert httpx.get(guarded_webdis.url + "/PING", timeout=5, auth=("coo", SECRET)).json() == {"PING": [True, "PONG"]}


def test_credentials_in_the_url_authenticate_every_store_call(guarded_webdis, redis_server):
    redis_server.flush()

    async def scenario():
        store = open_store(RuntimeStorage(type="http", url=with_credentials(guarded_webdis.url, f"coo:{SECRET}"), timeout=5), resilient=False)
        try:
            limits = WindowLimits(requests=2, tokens=None)
            first = await store.reserve("p#1", tokens=5, limits=limits, now=T0)
            second = await store.reserve("p#1", tokens=5, limits=limits, now=T0)
            third = await store.reserve("p#1", tokens=5, limits=limits, now=T0)
            states = await store.key_states(["p#1"], window=60, now=T0)
            return first, second, third, states["p#1"]
        finally:
            await store.close()

    first, second, third, state = asyncio.run(scenario())
    assert isinstance(first, Reservation) and isinstance(second, Reservation) and not isinstance(third, Reservation)
    assert (state.requests, state.tokens) == (2, 10)


@pytest.mark.parametrize("credentials", [None, "coo:wrong-password"], ids=["none", "wrong"])
def test_missing_or_wrong_credentials_fail_without_showing_them(guarded_webdis, credentials):
    url = with_credentials(guarded_webdis.url, credentials) if credentials else guarded_webdis.url

    async def scenario():
        store = open_store(RuntimeStorage(type="http", url=url, timeout=5), resilient=False)
        try:
            await store.reserve("p#1", tokens=1, limits=WindowLimits(requests=5, tokens=None), now=T0)
        finally:
            await store.close()

    with pytest.raises(StoreUnavailable) as caught:
        asyncio.run(scenario())
    assert "wrong-password" not in str(caught.value) and SECRET not in str(caught.value)


def test_the_url_password_is_masked_in_the_effective_config(guarded_webdis):
    settings = settings_from_data({"llm_providers": [], "storage": {"runtime": {"type": "http", "url": with_credentials(guarded_webdis.url, f"coo:{SECRET}")}}})
    dumped = str(masked_dump(settings))
    assert SECRET not in dumped and "****@127.0.0.1" in dumped
