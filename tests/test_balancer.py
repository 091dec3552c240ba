"""Balancing, limits and failover, proven by the fake upstream's per-key call counts."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from conftest import openai_client
from fakeupstream import Step
from gateway import config, provider
from prom import metric_value
from servers import free_port

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def gw(start_gateway, upstream):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    cfg = config(
        [
            provider("rr", upstream.url, ["a1", "a2", "a3"], models=["gpt-rr"]),
            provider("tok", upstream.url, ["t1", "t2"], models=["gpt-tok"], limits={"tokens_per_min": 1000}),
            provider("full", upstream.url, ["f1", "f2"], models=["gpt-full"], limits={"req_per_min": 1}),
            provider("fo", upstream.url, ["b1", "b2"], models=["gpt-fo"]),
            provider("rl", upstream.url, ["c1", "c2"], models=["gpt-rl"]),
            provider("slowish", upstream.url, ["d1", "d2"], models=["gpt-slow"], timeout="0.5s"),
            provider("dead", dead, ["x1"], models=["gpt-dead"]),
            provider("live", upstream.url, ["l1"], models=["gpt-live"]),
            provider("bad", upstream.url, ["e1", "e2"], models=["gpt-bad"]),
            provider("first", upstream.url, ["g1"], models=["gpt-g"]),
            provider("second", upstream.url, ["h1"], models=["gpt-g"]),
            provider("garbled", upstream.url, ["n1", "n2"], models=["gpt-garbled"]),
            provider("claude", upstream.url, ["an1"], type="anthropic", models=["claude-x"], limits={"req_per_min": 1}),
            provider("oa2", upstream.url, ["o1"], models=["gpt-o"]),
        ],
        client_keys=[
            {"key": "client-key", "allowed_providers": "*"},
            {"key": "second-only", "allowed_providers": ["second"]},
        ],
        model_aliases={
            "resilient": ["dead:gpt-dead", "live:gpt-live"],
            "group": ["first:gpt-g", "second:gpt-g"],
            "any-n": ["claude:claude-x", "oa2:gpt-o"],
        },
        policy={"algorithm": "round_robin", "retry": {"max_attempts": 3, "timeout": "10s"}},
    )
    return start_gateway(cfg)


@pytest.fixture
def client(gw, fake):
    return openai_client(gw)


def ask(client, model, **kwargs):
    return client.chat.completions.with_raw_response.create(model=model, messages=HELLO, **kwargs)


def test_round_robin_spreads_evenly(client, fake):
    for _ in range(30):
        ask(client, "gpt-rr")
    assert fake.calls == {"a1": 10, "a2": 10, "a3": 10}


def test_key_at_its_token_limit_is_skipped(client, fake):
    # First request: reserves ~900 completion tokens on t1 and really uses 950 of its 1000.
    fake.set_default("t1", Step(prompt_tokens=50, completion_tokens=900))
    first = ask(client, "gpt-tok", max_tokens=900)
    assert first.headers["x-coo-llm-key"] == "tok#1"
    # Then small requests: t1 has no room left, so every one goes to t2, even on t1's turn.
    fake.set_default("t2", Step(prompt_tokens=20, completion_tokens=10))
    for _ in range(4):
        assert ask(client, "gpt-tok", max_tokens=50).headers["x-coo-llm-key"] == "tok#2"
    assert fake.calls == {"t1": 1, "t2": 4}


def test_every_key_full_gives_429_with_retry_after(client, fake):
    ask(client, "gpt-full")
    ask(client, "gpt-full")
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client, "gpt-full")
    retry_after = int(caught.value.response.headers["retry-after"])
    assert 50 <= retry_after <= 60  # the windows were filled a moment ago
    assert fake.calls == {"f1": 1, "f2": 1}  # the gateway never sent the third request


def test_failover_past_a_500(client, fake):
    fake.script("b1", Step(status=500))
    served = ask(client, "gpt-fo")
    assert served.headers["x-coo-llm-attempts"] == "2"
    assert served.headers["x-coo-llm-key"] == "fo#2"
    assert served.parse().choices[0].message.content == "echo: hello"
    assert fake.calls == {"b1": 1, "b2": 1}


def test_failover_past_a_429_and_the_key_cools_down(client, fake):
    fake.script("c1", Step(status=429, headers={"retry-after": "30"}))
    first = ask(client, "gpt-rl")
    assert first.headers["x-coo-llm-key"] == "rl#2" and first.headers["x-coo-llm-attempts"] == "2"
    for _ in range(4):  # c1 rests for its Retry-After: even its turns go to c2
        assert ask(client, "gpt-rl").headers["x-coo-llm-key"] == "rl#2"
    assert fake.calls == {"c1": 1, "c2": 5}


def test_failover_past_a_timeout(client, fake):
    fake.script("d1", Step(delay=2))  # the provider's per-attempt timeout is 0.5 s
    started = time.monotonic()
    served = ask(client, "gpt-slow")
    assert served.headers["x-coo-llm-key"] == "slowish#2"
    assert time.monotonic() - started < 2
    assert fake.calls == {"d1": 1, "d2": 1}


def test_failover_past_a_dead_port_to_the_next_target(client, fake):
    served = ask(client, "resilient")
    assert served.headers["x-coo-llm-provider"] == "live"
    assert served.headers["x-coo-llm-attempts"] == "2"
    assert served.parse().choices[0].message.content == "echo: hello"
    assert fake.calls == {"l1": 1}


def test_a_400_from_upstream_is_not_retried(client, fake):
    fake.script("e1", Step(status=400, body={"error": {"message": "bad temperature", "type": "invalid_request_error", "param": "temperature", "code": None}}))
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, "gpt-bad")
    assert caught.value.response.json()["error"]["message"] == "bad temperature"
    assert caught.value.response.json()["error"]["param"] == "temperature"
    assert fake.calls == {"e1": 1}


def test_allowed_providers_filter_a_fallback_group(gw, fake):
    for _ in range(3):
        assert ask(openai_client(gw, key="second-only"), "group").headers["x-coo-llm-provider"] == "second"
    assert fake.calls == {"h1": 3}
    ask(openai_client(gw), "group")
    assert fake.calls == {"h1": 3, "g1": 1}  # everyone else gets the group's first choice


def test_an_unreadable_answer_fails_over_and_frees_the_key(client, fake):
    fake.script("n1", Step(raw=b"<html>502 Bad Gateway</html>"))
    served = ask(client, "gpt-garbled")
    assert served.headers["x-coo-llm-key"] == "garbled#2" and served.headers["x-coo-llm-attempts"] == "2"
    assert fake.calls == {"n1": 1, "n2": 1}


def test_unreadable_usage_counts_as_unknown_and_the_answer_is_served(gw, client, fake):
    garbled = Step(body={"id": "x", "object": "chat.completion", "choices": [], "usage": {"prompt_tokens": "lots"}})
    fake.script("n1", garbled)
    before = metric_value(httpx.get(gw.url + "/metrics").text, "coo_llm_unreadable_usage_total", provider="garbled")
    served = ask(client, "gpt-garbled")
    assert served.headers["x-coo-llm-key"] == "garbled#1" and served.headers["x-coo-llm-attempts"] == "1"
    assert fake.calls == {"n1": 1}
    after = metric_value(httpx.get(gw.url + "/metrics").text, "coo_llm_unreadable_usage_total", provider="garbled")
    assert after == before + 1
    assert "Traceback" not in gw.logs()


def test_a_request_a_provider_cannot_honour_takes_no_slot_and_falls_back(client, fake):
    for _ in range(3):  # Anthropic cannot return n=2 choices: 400 before any key is reserved
        with pytest.raises(openai.BadRequestError) as caught:
            ask(client, "claude-x", n=2)
        assert caught.value.response.json()["error"]["param"] == "n"
    assert ask(client, "claude-x").headers["x-coo-llm-provider"] == "claude"  # its one slot was still free
    # In a fallback group, a target that cannot honour the request is passed over.
    assert ask(client, "any-n", n=2).headers["x-coo-llm-provider"] == "oa2"
    assert fake.calls == {"an1": 1, "o1": 1}


@pytest.fixture(scope="module")
def backoff_gw(start_gateway, upstream):
    cfg = config(
        [provider("bo", upstream.url, ["m1", "m2"], models=["gpt-bo"])],
        policy={"algorithm": "round_robin", "retry": {"max_attempts": 1, "timeout": "5s"}, "cooldown": {"error_base": "0.6s"}},
    )
    return start_gateway(cfg)


def test_repeated_5xx_backs_a_key_off_and_it_is_probed_after(backoff_gw, fake):
    client = openai_client(backoff_gw)
    fake.script("m1", Step(status=500), Step(status=500))
    keys = []
    for _ in range(5):
        try:
            keys.append(ask(client, "gpt-bo").headers["x-coo-llm-key"])
        except openai.InternalServerError:
            keys.append("502")
    # m1 fails once (no rest), m2 serves, m1 fails again (now resting 0.6 s), so m2 takes m1's turn.
    assert keys == ["502", "bo#2", "502", "bo#2", "bo#2"]
    time.sleep(0.8)
    later = sorted(ask(client, "gpt-bo").headers["x-coo-llm-key"] for _ in range(2))
    assert later == ["bo#1", "bo#2"]  # m1 is probed again on its turn, and is healthy
    assert fake.calls == {"m1": 3, "m2": 4}
