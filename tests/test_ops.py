"""Operations surface: health, metrics, the admin API, the access log, and secrets never leaking."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from conftest import openai_client
from fakeupstream import Step
from prom import metric_value
from gateway import config, provider

PROVIDER_KEYS = ["sk-live-0123456789abcdefSECRET1", "sk-live-0123456789abcdefSECRET2"]
RESTING_KEY = "sk-live-0123456789abcdefSECRET3"
CLIENT_KEY = "client-secret-key-abcdef0123456789"
ADMIN_KEY = "admin-secret-key"
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def gw(start_gateway, upstream):
    cfg = config(
        [
            provider("oa", upstream.url, PROVIDER_KEYS, models=["gpt-test"], pricing={"input_token_cost": 1.0, "output_token_cost": 2.0}),
            provider("nokeys", upstream.url, [], models=["gpt-nokeys"]),
            provider("rest", upstream.url, [RESTING_KEY], models=["gpt-rest"]),
            provider("hang", upstream.url, ["hang-key"], models=["gpt-hang"], pricing={"input_token_cost": 1.0, "output_token_cost": 2.0}),
        ],
        client_keys=[{"key": CLIENT_KEY, "allowed_providers": "*", "description": "ops test"}],
    )
    return start_gateway(cfg)


@pytest.fixture
def client(gw, fake):
    return openai_client(gw, key=CLIENT_KEY)


def assert_no_secret(text: str) -> None:
    for secret in PROVIDER_KEYS + [RESTING_KEY, CLIENT_KEY, ADMIN_KEY]:
        assert secret not in text
    assert "SECRET1" not in text and "SECRET2" not in text and "SECRET3" not in text


def test_health_endpoints(gw):
    assert httpx.get(gw.url + "/health/live").json() == {"status": "ok"}
    ready = httpx.get(gw.url + "/health/ready")
    assert ready.status_code == 200
    assert ready.json()["providers"] == {"oa": {"keys": 2}, "nokeys": {"keys": 0}, "rest": {"keys": 1}, "hang": {"keys": 1}}


def test_provider_without_keys_is_a_clear_503(client):
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-nokeys", messages=HELLO)
    assert caught.value.status_code == 503
    assert caught.value.response.json()["error"]["code"] == "no_provider_keys"


def test_startup_names_providers_without_keys(gw):
    assert "provider nokeys (openai) has NO API keys" in gw.logs()


def test_metrics_count_requests_tokens_cost_and_retries(gw, client, fake):
    before = httpx.get(gw.url + "/metrics").text
    fake.set_default(PROVIDER_KEYS[0], Step(prompt_tokens=1000, completion_tokens=500))
    fake.set_default(PROVIDER_KEYS[1], Step(prompt_tokens=1000, completion_tokens=500))
    fake.script(PROVIDER_KEYS[0], Step(status=500))
    fake.script(PROVIDER_KEYS[1], Step(status=500))
    client.chat.completions.create(model="gpt-test", messages=HELLO)  # two failed attempts, then success
    after = httpx.get(gw.url + "/metrics").text

    def delta(name, **labels):
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert delta("coo_llm_requests_total", provider="oa", model="gpt-test", status="200") == 1
    assert delta("coo_llm_tokens_total", provider="oa", direction="in") == 1000
    assert delta("coo_llm_tokens_total", provider="oa", direction="out") == 500
    assert delta("coo_llm_cost_usd_total", provider="oa") == pytest.approx(1.0 * 1000 / 1000 + 2.0 * 500 / 1000)
    assert delta("coo_llm_retries_total", provider="oa", reason="server_error") == 2
    assert delta("coo_llm_upstream_attempts_total", provider="oa", outcome="server_error") == 2
    assert delta("coo_llm_upstream_attempts_total", provider="oa", outcome="success") == 1
    assert delta("coo_llm_request_duration_seconds_count", provider="oa") == 1
    assert delta("coo_llm_upstream_duration_seconds_count", provider="oa") >= 1
    assert "coo_llm_time_to_first_token_seconds" in after
    assert_no_secret(after)


def test_cooldown_metric_names_the_masked_key(gw, client, fake):
    fake.script(RESTING_KEY, Step(status=429, headers={"retry-after": "20"}))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-rest", messages=HELLO)
    assert 19 <= int(caught.value.response.headers["retry-after"]) <= 20
    text = httpx.get(gw.url + "/metrics").text
    assert metric_value(text, "coo_llm_key_cooldowns_total", key="rest#1", reason="rate_limited") == 1
    assert metric_value(text, "coo_llm_key_cooldown_until_timestamp_seconds", key="rest#1") > 0
    assert_no_secret(text)


def access_lines(gw, request_id: str, *, wait: float = 5.0) -> list[dict]:
    """The access log lines of one request; they are written just after the response, so wait a little."""
    deadline = time.monotonic() + wait
    while True:
        lines = [json.loads(line) for line in gw.logs().splitlines() if f'"{request_id}"' in line]
        access = [line for line in lines if line["message"] == "request"]
        if access or time.monotonic() > deadline:
            return access
        time.sleep(0.05)


def test_one_json_log_line_per_request_with_the_promised_fields(gw, client, fake):
    fake.reset()
    raw = client.chat.completions.with_raw_response.create(model="gpt-test", messages=HELLO)
    request_id = raw.headers["x-request-id"]
    access = access_lines(gw, request_id)
    time.sleep(0.2)  # and no second line comes later
    assert len(access_lines(gw, request_id)) == 1
    line = access[0]
    for field in ("request_id", "client", "provider", "key_id", "model", "status", "latency_ms", "prompt_tokens", "completion_tokens", "cost_usd", "attempts"):
        assert field in line, field
    assert line["client"].startswith("ck-") and line["key_id"] in ("oa#1", "oa#2")
    assert line["status"] == 200 and line["provider"] == "oa" and line["attempts"] >= 1


def test_upstream_echoing_the_key_is_scrubbed_everywhere(gw, client, fake):
    echo = {"error": {"message": f"Incorrect API key provided: {PROVIDER_KEYS[0]} and {PROVIDER_KEYS[1]}", "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}
    fake.script(PROVIDER_KEYS[0], Step(status=400, body=echo))
    fake.script(PROVIDER_KEYS[1], Step(status=400, body=echo))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-test", messages=HELLO)
    assert_no_secret(caught.value.response.text)
    assert "[redacted]" in caught.value.response.json()["error"]["message"]
    # An upstream 401 means the gateway's key is bad: not the client's to see, not relayed.
    fake.reset()
    fake.script(PROVIDER_KEYS[0], Step(status=401, body=echo))
    fake.script(PROVIDER_KEYS[1], Step(status=401, body=echo))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-test", messages=HELLO)
    assert caught.value.status_code == 502
    assert caught.value.response.json()["error"]["code"] == "upstream_auth_failed"
    assert_no_secret(caught.value.response.text)
    assert_no_secret(gw.logs())


def test_admin_config_is_masked_and_needs_the_admin_key(gw):
    assert httpx.get(gw.url + "/admin/v1/config").status_code == 401
    assert httpx.get(gw.url + "/admin/v1/config", headers={"authorization": f"Bearer {CLIENT_KEY}"}).status_code == 401
    response = httpx.get(gw.url + "/admin/v1/config", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code == 200
    body = response.json()
    assert body["llm_providers"][0]["id"] == "oa" and len(body["llm_providers"][0]["api_keys"]) == 2
    assert_no_secret(response.text)


def test_admin_validate_returns_check_style_paths(gw):
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    bad = "llm_providers:\n  - {id: a, type: openai, model: m}\n  - {id: b, type: openai, model: m, limits: {req_per_min: 0}}\n"
    response = httpx.post(gw.url + "/admin/v1/config/validate", content=bad, headers=headers)
    assert response.json() == {"valid": False, "errors": ["llm_providers[1].limits.req_per_min: must be > 0"]}
    good = json.dumps({"llm_providers": [{"id": "a", "type": "openai", "model": "m"}]})
    assert httpx.post(gw.url + "/admin/v1/config/validate", content=good, headers=headers).json() == {"valid": True, "errors": []}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("a: " + "[" * 900 + "]" * 900, "nested deeper than 32 levels"),
        ("x: " + "{a: " * 3000 + "1" + "}" * 3000, "nested deeper than 32 levels"),
        ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdefg", "bcdefgh")), "more than 100000 values"),
        ("# padding\n" * 30_000, "more than the 262144 a config may have"),
        ("version: " + "1" * 5000, "a value cannot be read"),
    ],
    ids=["deep-flow", "deep-mapping", "alias-bomb", "too-large", "huge-int"],
)
def test_admin_validate_answers_hostile_documents_as_invalid_never_500(gw, document, expected):
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    response = httpx.post(gw.url + "/admin/v1/config/validate", content=document, headers=headers, timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False and any(expected in error for error in body["errors"]), body
    good = "llm_providers: [{id: a, type: openai, model: m}]"
    assert httpx.post(gw.url + "/admin/v1/config/validate", content=good, headers=headers).json() == {"valid": True, "errors": []}
    assert httpx.get(gw.url + "/health/live").status_code == 200


def test_admin_api_is_off_without_an_admin_key(start_gateway, upstream):
    cfg = config([provider("oa", upstream.url, ["k"], models=["m"])], server={"listen": ":2906"})
    gateway = start_gateway(cfg)
    response = httpx.get(gateway.url + "/admin/v1/config", headers={"authorization": "Bearer anything"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "admin_disabled"


def test_open_access_without_client_keys_warns_loudly(start_gateway, upstream, fake):
    cfg = config([provider("oa", upstream.url, ["k"], models=["m"])], client_keys=[])
    gateway = start_gateway(cfg)
    assert "OPEN ACCESS" in gateway.logs()
    answer = openai_client(gateway, key="anything").chat.completions.create(model="m", messages=HELLO)
    assert answer.choices[0].message.content == "echo: hello"
    assert "anything" not in json.dumps(fake.requests[-1].headers)


def test_serve_with_two_workers_answers_and_merges_metrics(start_gateway, upstream, fake):
    cfg = config([provider("oa", upstream.url, ["k"], models=["m"])])
    gateway = start_gateway(cfg, workers=2)
    client = openai_client(gateway)
    for _ in range(6):
        assert client.chat.completions.create(model="m", messages=HELLO).choices[0].message.content == "echo: hello"
    text = httpx.get(gateway.url + "/metrics").text
    assert metric_value(text, "coo_llm_requests_total", provider="oa", status="200") == 6  # summed over both processes
    assert "each key may receive up to 2x its limits" in gateway.logs()


def test_a_client_hanging_up_is_recorded_as_499_with_the_estimated_spend(gw, fake):
    fake.set_default("hang-key", Step(delay=1.5))
    with pytest.raises(httpx.TimeoutException):
        httpx.post(
            gw.url + "/v1/chat/completions",
            json={"model": "gpt-hang", "messages": HELLO, "max_tokens": 100},
            headers={"authorization": f"Bearer {CLIENT_KEY}", "x-request-id": "hangup-1"},
            timeout=0.4,
        )
    lines = access_lines(gw, "hangup-1")
    assert len(lines) == 1
    assert lines[0]["status"] == 499 and lines[0]["error"] == "client_closed"
    assert lines[0]["completion_tokens"] == 100 and lines[0]["cost_usd"] > 0  # the upstream was asked: its estimate is charged
