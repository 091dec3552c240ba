"""Every failure is an OpenAI error envelope with the right status, as the OpenAI SDK sees it."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from conftest import openai_client
from fakeupstream import Step
from gateway import config, provider

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def gw(start_gateway, upstream):
    cfg = config(
        [
            provider("p1", upstream.url, ["k1"], models=["gpt-test"], limits={"req_per_min": 1000}),
            provider("p2", upstream.url, ["k2"], models=["gpt-p2"]),
            provider("limited", upstream.url, ["k3"], models=["gpt-limited"], limits={"req_per_min": 1}),
            provider("flaky", upstream.url, ["k4"], models=["gpt-flaky"]),
            provider("slow", upstream.url, ["k5"], models=["gpt-slow"]),
            provider("busy", upstream.url, ["k6"], models=["gpt-busy"]),
            provider("drops", upstream.url, ["k7"], models=["gpt-drops"]),
            provider("drops2", upstream.url, ["k8"], models=["gpt-drops2"]),
        ],
        client_keys=[
            {"key": "client-key", "allowed_providers": ["*"]},
            {"key": "p2-only", "allowed_providers": ["p2"], "description": "restricted"},
        ],
        policy={"retry": {"max_attempts": 2, "timeout": "3s"}},
        server={"listen": ":2906", "admin_api_key": "admin-secret-key", "max_body_mb": 0.01},
    )
    return start_gateway(cfg)


@pytest.fixture
def client(gw, fake):
    return openai_client(gw)


def envelope_of(error: openai.APIStatusError) -> dict:
    body = error.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return body["error"]


def test_malformed_json_is_400(gw):
    response = httpx.post(gw.url + "/v1/chat/completions", content=b"{not json", headers={"authorization": "Bearer client-key"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["code"] == "invalid_json"


def test_body_that_is_not_an_object_is_400(gw):
    response = httpx.post(gw.url + "/v1/chat/completions", json=[1, 2], headers={"authorization": "Bearer client-key"})
    assert response.status_code == 400


def test_missing_model_is_400_naming_the_param(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=openai.NOT_GIVEN, messages=HELLO)
    assert envelope_of(caught.value)["param"] == "model"


@pytest.mark.parametrize("messages", [openai.NOT_GIVEN, [], "hi"], ids=["missing", "empty", "not-a-list"])
def test_missing_or_bad_messages_is_400_naming_the_param(client, messages):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-test", messages=messages)
    assert envelope_of(caught.value)["param"] == "messages"


def test_bad_role_names_the_message(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}])
    assert envelope_of(caught.value)["param"] == "messages[1].role"


def test_unknown_model_is_404_model_not_found(client, fake):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    error = envelope_of(caught.value)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope:gpt-test", messages=HELLO)
    assert sum(fake.calls.values()) == 0


def test_body_over_max_body_mb_is_413(client, fake):
    big = "x" * 20_000  # max_body_mb is 0.01 (about 10 KB) in this gateway
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": big}])
    assert caught.value.status_code == 413
    assert envelope_of(caught.value)["code"] == "request_too_large"
    assert sum(fake.calls.values()) == 0


def test_no_key_is_401(gw):
    response = httpx.post(gw.url + "/v1/chat/completions", json={"model": "gpt-test", "messages": HELLO})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


def test_invalid_key_is_401(gw, fake):
    with pytest.raises(openai.AuthenticationError) as caught:
        openai_client(gw, key="wrong-key").chat.completions.create(model="gpt-test", messages=HELLO)
    assert envelope_of(caught.value)["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        openai_client(gw, key="wrong-key").models.list()
    assert sum(fake.calls.values()) == 0


def test_provider_not_allowed_for_the_key_is_403(gw, fake):
    restricted = openai_client(gw, key="p2-only")
    with pytest.raises(openai.PermissionDeniedError) as caught:
        restricted.chat.completions.create(model="gpt-test", messages=HELLO)
    assert envelope_of(caught.value)["code"] == "provider_not_allowed"
    with pytest.raises(openai.PermissionDeniedError):
        restricted.chat.completions.create(model="p1:gpt-test", messages=HELLO)
    assert restricted.chat.completions.create(model="gpt-p2", messages=HELLO).choices[0].message.content == "echo: hello"
    assert fake.calls == {"k2": 1}
    ids = {m.id for m in restricted.models.list()}
    assert "gpt-p2" in ids and "gpt-test" not in ids and "p1:gpt-test" not in ids


def test_no_capacity_is_429_with_retry_after(client, fake):
    client.chat.completions.create(model="gpt-limited", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-limited", messages=HELLO)
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60
    assert envelope_of(caught.value)["type"] == "rate_limit_error"
    assert fake.calls == {"k3": 1}


def test_upstream_5xx_after_failover_is_502(client, fake):
    fake.script("k4", Step(status=500), Step(status=500))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-flaky", messages=HELLO)
    assert caught.value.status_code == 502
    assert envelope_of(caught.value)["code"] == "upstream_error"


def test_upstream_overloaded_after_failover_is_503(client, fake):
    fake.script("k6", Step(status=529, headers={"retry-after": "7"}))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-busy", messages=HELLO)
    assert caught.value.status_code == 503
    assert envelope_of(caught.value)["code"] == "upstream_unavailable"
    assert int(caught.value.response.headers["retry-after"]) >= 1


def test_upstream_timeout_is_504(client, fake):
    fake.script("k5", Step(delay=5))  # longer than the 3 s retry budget
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-slow", messages=HELLO)
    assert caught.value.status_code == 504
    assert envelope_of(caught.value)["code"] == "upstream_timeout"


def test_stream_broken_after_first_byte_ends_with_an_error_event(client, fake):
    fake.script("k7", Step(chunks=5, drop_after=3))
    stream = client.chat.completions.create(model="gpt-drops", messages=HELLO, stream=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3  # what was sent before the break reached the client
    assert caught.value.body is not None and caught.value.body.get("message")
    assert fake.calls == {"k7": 1}  # no failover after the first byte


def test_stream_error_event_is_the_last_frame(gw, fake):
    fake.script("k8", Step(chunks=5, drop_after=2))
    with httpx.stream(
        "POST", gw.url + "/v1/chat/completions", json={"model": "gpt-drops2", "messages": HELLO, "stream": True},
        headers={"authorization": "Bearer client-key"},
    ) as response:
        frames = [f for f in response.read().decode().split("\n\n") if f]
    assert frames[-1].startswith('data: {"error":')
    assert "[DONE]" not in frames[-1]


def test_unknown_route_and_method_are_json_errors(gw):
    assert httpx.get(gw.url + "/v2/whatever").json()["error"]["code"] == "not_found"
    response = httpx.get(gw.url + "/v1/chat/completions", headers={"authorization": "Bearer client-key"})
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


def test_nothing_returns_a_traceback(gw):
    for body in (b"", b"null", b'{"model": 5, "messages": []}', b'{"model": "gpt-test", "messages": [1]}',
                 b'{"model": "gpt-test", "messages": [{"role": "user"}], "stream": "yes"}',
                 b'{"model": "gpt-test", "messages": [{"role": "user"}], "max_tokens": -1}'):
        response = httpx.post(gw.url + "/v1/chat/completions", content=body, headers={"authorization": "Bearer client-key"})
        assert response.status_code == 400, body
        assert "Traceback" not in response.text and set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_a_message_with_lone_surrogates_still_renders():
    """Header bytes that are not UTF-8 reach messages as surrogates; orjson refuses to write those."""
    from app.errors import InvalidRequest

    error = InvalidRequest("Unknown Expect: \udc80\udcff and \ud800", param="expect")
    assert orjson.loads(error.body())["error"]["message"] == "Unknown Expect: \ufffd\ufffd and \ufffd"
