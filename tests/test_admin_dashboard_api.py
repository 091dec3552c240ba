"""The admin API behind the dashboard, on two ``coo-llm serve`` processes and a worker sharing one Redis: the
overview and the recent requests cover the whole gateway, a key reset made through one process
holds in the other, nothing answers without the admin key, and the page itself carries no data."""

from __future__ import annotations

import time

import httpx
import pytest

from fakeupstream import Step
from gateway import WorkerProcess, config, provider
from servers import redis_command

ADMIN_KEY = "admin-secret-key"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
CLIENT = {"authorization": "Bearer client-key"}
PRICING = {"input_token_cost": 1.0, "output_token_cost": 2.0}  # USD per 1k tokens
PROMPT = "the secret prompt text 7f3a"


@pytest.fixture(scope="module")
def pair(start_gateway, upstream, redis):
    cfg = config(
        [
            provider("zeta", upstream.url, ["D1", "D2"], models=["zeta-model"], pricing=PRICING, limits={"req_per_min": 50, "tokens_per_min": 90000}),
            provider("omega", upstream.url, ["C1"], models=["omega-model"]),
        ],
        policy={"retry": {"max_attempts": 2, "timeout": "5s"}},
        storage={"runtime": {"type": "redis", "url": redis.url, "timeout": "1s"}},
        workers={"rollup_every": "1s"},
    )
    first, second = start_gateway(cfg), start_gateway(cfg)
    worker = WorkerProcess(first.config_path, first.workdir)  # folds the usage both record
    worker.start(ready=lambda: redis_command(redis.port, "EXISTS", "arq:queue:health-check").strip() == b":1")
    yield first, second
    worker.stop()


def chat(gateway, model: str, content: str = PROMPT, headers=CLIENT) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": content}]}, headers=headers)


def wait_for(check, timeout: float = 10.0):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value or time.time() > deadline:
            return value
        time.sleep(0.2)


def test_overview_and_recent_requests_cover_every_process(pair, fake):
    first, second = pair
    fake.set_default("D1", Step(prompt_tokens=100, completion_tokens=50))
    fake.set_default("D2", Step(prompt_tokens=100, completion_tokens=50))
    before = httpx.get(second.url + "/admin/v1/overview", headers=ADMIN).json()
    sent = [chat(first, "zeta-model") for _ in range(4)] + [chat(second, "zeta-model")]
    assert [r.status_code for r in sent] == [200] * 5
    refused = chat(first, "zeta-model", headers={"authorization": "Bearer not-a-client"})
    unknown = chat(first, "no-such-model")
    assert (refused.status_code, unknown.status_code) == (401, 404)
    ids = {r.headers["x-request-id"] for r in sent + [refused, unknown]}

    def listed():
        data = httpx.get(second.url + "/admin/v1/requests?limit=100", headers=ADMIN).json()["data"]
        return data if ids <= {r["id"] for r in data} else None

    records = wait_for(listed)
    assert records, "the requests sent to the first process never showed on the second"
    mine = {r["id"]: r for r in records if r["id"] in ids}
    ok = [mine[r.headers["x-request-id"]] for r in sent]
    assert all(r["status"] == 200 and r["provider"] == "zeta" and r["key"] in ("zeta#1", "zeta#2") and r["model"] == "zeta-model" for r in ok)
    assert all((r["prompt_tokens"], r["completion_tokens"]) == (100, 50) and r["cost_usd"] == pytest.approx(0.2) for r in ok)
    assert mine[refused.headers["x-request-id"]]["status"] == 401 and mine[unknown.headers["x-request-id"]]["status"] == 404
    assert [r["at"] for r in records] == sorted((r["at"] for r in records), reverse=True)  # newest first
    raw = httpx.get(second.url + "/admin/v1/requests?limit=100", headers=ADMIN).text
    assert PROMPT not in raw and "echo:" not in raw and "client-key" not in raw  # no prompt, no answer, no key

    overview = httpx.get(second.url + "/admin/v1/overview", headers=ADMIN).json()
    minute = overview["last_minute"]
    assert minute["requests"] - before["last_minute"]["requests"] == 7
    assert minute["errors"] - before["last_minute"]["errors"] == 2
    assert minute["requests_per_s"] > 0 and minute["latency_ms"]["p50"] > 0 and minute["latency_ms"]["p99"] >= minute["latency_ms"]["p50"]
    assert overview["store"]["shared"] is True and overview["store"]["type"] == "redis"
    assert overview["features"] == {"clients": True, "revoke_client": True}  # the clients API is built in

    # Today's tokens and USD come from the roll-ups, which the worker folds every second.
    def folded():
        today = httpx.get(first.url + "/admin/v1/overview", headers=ADMIN).json()["today"]
        return today if today["tokens"] - (before["today"] or {}).get("tokens", 0) >= 750 else None

    today = wait_for(folded)
    assert today, "the roll-ups never showed today's tokens"
    assert today["tokens"] - before["today"]["tokens"] == 750
    assert today["cost_usd"] - before["today"]["cost_usd"] == pytest.approx(5 * 0.2)


def test_a_reset_through_one_process_lifts_the_cooldown_for_the_other(pair, fake):
    first, second = pair
    fake.script("C1", Step(status=429, headers={"retry-after": "60"}))
    assert chat(first, "omega-model").status_code == 429
    assert chat(first, "omega-model").status_code == 429  # cooling: no key has room
    cooling = {k["id"]: k for k in httpx.get(second.url + "/admin/v1/keys", headers=ADMIN).json()["data"]}["omega#1"]
    assert cooling["cooldown_left_s"] > 50 and cooling["failures"] == 1
    assert cooling["limits"] == {"requests": None, "tokens": None, "window_s": 60.0}
    reset = httpx.post(second.url + "/admin/v1/keys/omega%231/reset", headers=ADMIN)
    assert reset.status_code == 200 and reset.json() == {"object": "key.reset", "id": "omega#1", "cooldown_until": None, "failures": 0}
    after = {k["id"]: k for k in httpx.get(first.url + "/admin/v1/keys", headers=ADMIN).json()["data"]}["omega#1"]
    assert after["cooldown_left_s"] == 0 and after["cooldown_until"] is None and after["failures"] == 0
    assert chat(first, "omega-model").status_code == 200  # the first process reserves on it again
    assert httpx.post(second.url + "/admin/v1/keys/nope%231/reset", headers=ADMIN).status_code == 404
    dash = {k["id"]: k for k in httpx.get(first.url + "/admin/v1/keys", headers=ADMIN).json()["data"]}["zeta#1"]
    assert dash["provider"] == "zeta" and dash["limits"] == {"requests": 50, "tokens": 90000, "window_s": 60.0}


@pytest.mark.parametrize("method, path", [
    ("GET", "/admin/v1/overview"), ("GET", "/admin/v1/requests"), ("GET", "/admin/v1/keys"), ("GET", "/admin/v1/queue"),
    ("POST", "/admin/v1/keys/omega%231/reset"), ("DELETE", "/admin/v1/cache"),
])
def test_no_admin_data_or_action_without_the_admin_key(pair, method, path):
    first, _ = pair
    for headers in ({}, {"authorization": "Bearer wrong-key"}, CLIENT, {"authorization": ADMIN_KEY}):
        response = httpx.request(method, first.url + path, headers=headers)
        assert response.status_code == 401
        assert set(response.json()) == {"error"} and "omega#1" not in response.text and "zeta" not in response.text


def test_limit_must_be_a_whole_number_in_range(pair):
    first, _ = pair
    for limit in ("0", "1001", "abc", "-1", "2.5"):
        response = httpx.get(first.url + f"/admin/v1/requests?limit={limit}", headers=ADMIN)
        assert response.status_code == 400 and response.json()["error"]["param"] == "limit"
    assert len(httpx.get(first.url + "/admin/v1/requests?limit=1", headers=ADMIN).json()["data"]) <= 1


def test_the_page_loads_without_the_key_but_holds_no_data_and_locks_itself_down(pair):
    first, _ = pair
    page = httpx.get(first.url + "/admin/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "no-referrer"
    for private in ("zeta", "omega#1", "ck-", "redis", "req_"):
        assert private not in page.text
    assert httpx.get(first.url + "/admin", follow_redirects=False).headers["location"] == "/admin/"
    script = httpx.get(first.url + "/admin/assets/dashboard.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in script.text and "eval(" not in script.text and "http://" not in script.text.replace("http://www.w3.org/2000/svg", "")
    assert httpx.get(first.url + "/admin/assets/missing.js").status_code == 404
    assert httpx.get(first.url + "/admin/assets/..%2F__init__.py").status_code == 404


def test_the_dashboard_is_off_with_the_admin_api(start_gateway, upstream):
    cfg = config([provider("oa", upstream.url, ["k"], models=["m"])], server={"listen": ":2906"})
    gateway = start_gateway(cfg)
    for path in ("/admin/", "/admin/assets/dashboard.js", "/admin/v1/overview"):
        response = httpx.get(gateway.url + path, headers=ADMIN)
        assert response.status_code == 404 and response.json()["error"]["code"] == "admin_disabled"
