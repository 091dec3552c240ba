"""The response cache through a real gateway and the OpenAI SDK: hits, namespaces, Cache-Control,
custom TTL, SSE replay, streamed answers stored, purge, and $0 hits with savings in usage."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from app.auth import client_key_id
from app.cache import StreamAssembler, replay_frames
from conftest import openai_client
from fakeupstream import Step
from gateway import config, provider

ADMIN = {"authorization": "Bearer admin-secret-key"}
PRICING = {"input_token_cost": 1.0, "output_token_cost": 2.0}  # USD per 1K tokens


@pytest.fixture(scope="module")
def gw(start_gateway, upstream):
    cfg = config(
        [provider("p1", upstream.url, ["k1"], models=["gpt-test"], pricing=PRICING)],
        client_keys=[
            {"key": "client-key", "cache_namespace": "team-a"},
            {"key": "sibling-key", "cache_namespace": "team-a"},
            {"key": "other-key"},
            {"key": "usage-key"},
        ],
        policy={"cache": {"enabled": True, "ttl_seconds": 300}},
        workers={"rollup_every": "1s"},
    )
    return start_gateway(cfg)


def ask(gw, content: str, *, key: str = "client-key", headers: dict | None = None, **params):
    raw = openai_client(gw, key).chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": content}], extra_headers=headers or {}, **params
    )
    return raw.headers, raw.parse()


def unique() -> str:
    return f"question {uuid.uuid4().hex}"


def test_second_identical_request_is_a_hit_and_skips_the_upstream(gw, fake):
    prompt = unique()
    headers, first = ask(gw, prompt)
    assert headers["x-coo-llm-cache"] == "miss" and fake.count("k1") == 1
    headers, second = ask(gw, prompt)
    assert headers["x-coo-llm-cache"] == "hit" and fake.count("k1") == 1
    assert second.model_dump() == first.model_dump()
    assert headers["x-coo-llm-provider"] == "p1" and headers["x-coo-llm-attempts"] == "0"
    # Any change to a generation parameter is another entry.
    headers, _ = ask(gw, prompt, temperature=0.3)
    assert headers["x-coo-llm-cache"] == "miss" and fake.count("k1") == 2


def test_one_tenant_never_gets_another_tenants_answer(gw, fake):
    prompt = unique()
    ask(gw, prompt, key="client-key")
    headers, _ = ask(gw, prompt, key="other-key")
    assert headers["x-coo-llm-cache"] == "miss" and fake.count("k1") == 2
    headers, _ = ask(gw, prompt, key="sibling-key")  # same cache_namespace: shared
    assert headers["x-coo-llm-cache"] == "hit" and fake.count("k1") == 2


def test_no_cache_skips_the_lookup_but_stores_and_no_store_does_not_store(gw, fake):
    prompt = unique()
    fake.script("k1", Step(reply="first answer"), Step(reply="second answer"))
    ask(gw, prompt)
    headers, fresh = ask(gw, prompt, headers={"cache-control": "no-cache"})
    assert headers["x-coo-llm-cache"] == "bypass" and fresh.choices[0].message.content == "second answer"
    headers, cached = ask(gw, prompt)
    assert headers["x-coo-llm-cache"] == "hit" and cached.choices[0].message.content == "second answer"

    other = unique()
    headers, _ = ask(gw, other, headers={"cache-control": "no-store"})
    assert headers["x-coo-llm-cache"] == "miss"
    headers, _ = ask(gw, other)
    assert headers["x-coo-llm-cache"] == "miss" and fake.count("k1") == 4


def test_custom_ttl_header_and_its_validation(gw, fake):
    prompt = unique()
    ask(gw, prompt, headers={"x-coo-llm-cache-ttl": "1"})
    assert ask(gw, prompt)[0]["x-coo-llm-cache"] == "hit"
    time.sleep(1.3)
    assert ask(gw, prompt)[0]["x-coo-llm-cache"] == "miss"
    response = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]},
        headers={"authorization": "Bearer client-key", "x-coo-llm-cache-ttl": "soon"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x-coo-llm-cache-ttl"


def test_a_stream_hitting_the_cache_gets_the_answer_replayed_as_sse(gw, fake):
    prompt = unique()
    _, stored = ask(gw, prompt)
    client = openai_client(gw)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": prompt}], stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers["x-coo-llm-cache"] == "hit"
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == stored.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == stored.usage.total_tokens
    assert fake.count("k1") == 1


def test_a_streamed_answer_is_stored_with_its_tool_calls(gw, fake):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    fake.set_default("k1", Step(tool_call={"name": "lookup", "arguments": {"q": "coo"}}, chunks=4))
    prompt = unique()
    client = openai_client(gw)
    list(client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": prompt}], tools=tools, stream=True))
    headers, cached = ask(gw, prompt, tools=tools)
    assert headers["x-coo-llm-cache"] == "hit" and fake.count("k1") == 1
    call = cached.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"q": "coo"}
    assert cached.choices[0].finish_reason == "tool_calls"


def test_purge_empties_the_cache(gw, fake):
    prompt = unique()
    ask(gw, prompt)
    response = httpx.delete(gw.url + "/admin/v1/cache", headers=ADMIN)
    assert response.status_code == 200 and response.json()["deleted"] >= 1
    assert ask(gw, prompt)[0]["x-coo-llm-cache"] == "miss"
    assert httpx.delete(gw.url + "/admin/v1/cache").status_code == 401


def test_hits_cost_nothing_and_their_savings_show_in_usage(gw, fake):
    fake.set_default("k1", Step(prompt_tokens=100, completion_tokens=50))
    prompt = unique()
    for _ in range(3):
        ask(gw, prompt, key="usage-key")
    client = client_key_id("usage-key")
    cost = (100 * 1.0 + 50 * 2.0) / 1000  # 0.2 USD for the one real call
    deadline = time.time() + 15
    row = None
    while time.time() < deadline:
        data = httpx.get(gw.url + "/admin/v1/usage", params={"group_by": "client"}, headers=ADMIN).json()["data"]
        rows = [r for r in data if r["client"] == client and r["requests"] >= 3]
        if rows:
            row = rows[0]
            break
        time.sleep(0.3)
    assert row is not None, data
    assert row["cost_usd"] == pytest.approx(cost) and row["saved_usd"] == pytest.approx(2 * cost)
    assert row["requests"] == 3 and row["cache_hits"] == 2 and row["prompt_tokens"] == 100


# ---------------------------------------------------------------------------------- pure pieces


def test_replayed_frames_reassemble_to_the_stored_answer():
    body = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 5, "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hello", "refusal": None}, "logprobs": None, "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": None, "refusal": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, "logprobs": None, "finish_reason": "tool_calls"},
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    frames = replay_frames(json.dumps(body).encode(), include_usage=True)
    assert frames[-1] == b"data: [DONE]\n\n" and b'"usage"' in frames[-2]
    assembler = StreamAssembler()
    for piece in frames:
        assembler.feed(piece)
    assert json.loads(assembler.completion(body["usage"])) == body


def test_an_interrupted_stream_is_not_cached():
    assembler = StreamAssembler()
    assembler.feed(b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"par"},"finish_reason":null}]}\n\n')
    assert assembler.completion(None) is None  # never finished
    assembler.feed(b'data: {"error":{"message":"broke"}}\n\n')
    assert assembler.completion(None) is None
