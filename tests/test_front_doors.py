"""``/v1/responses`` and ``/v1/messages`` end to end: the official ``openai`` and ``anthropic``
SDKs against a real gateway, whose providers of all four types are the scriptable fake upstream.

What is checked is what a client and the upstream see: answers, streams, tool calls, usage,
stored responses and their owners, errors in each route's own shape, the native pass-through
to providers that speak the front door's API, and one key window shared by every route.
"""

from __future__ import annotations

import hashlib
import json
import time

import anthropic
import httpx
import openai
import pytest

from conftest import openai_client
from fakeupstream import Step
from gateway import config, provider

TYPES = ["openai", "custom", "anthropic", "gemini"]
CLIENT_KEY = "client-key"
OTHER_KEY = "other-client-key"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather now",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ANTHROPIC_WEATHER = {"name": "get_weather", "description": "Weather now", "input_schema": WEATHER["parameters"]}


def K(name: str) -> str:
    """A random-looking provider key (see tests/test_conformance.py: the logs redact 8-character runs of secrets)."""
    return "tk" + hashlib.sha256(name.encode()).hexdigest()[:30]


@pytest.fixture(scope="module")
def gw(start_gateway, upstream):
    providers = []
    for kind in TYPES:
        base = upstream.url + "/v1" if kind == "custom" else upstream.url
        providers.append(provider(kind, base, [K(kind)], type=kind, models=[f"m-{kind}"]))
    providers.append(provider("native", upstream.url, [K("native")], type="openai", models=["m-native"], responses_api="native"))
    providers.append(provider("shared", upstream.url, [K("shared")], type="openai", models=["m-shared"], limits={"req_per_min": 3}))
    keys = [{"key": CLIENT_KEY}, {"key": OTHER_KEY}]
    return start_gateway(config(providers, client_keys=keys))


@pytest.fixture
def oai(gw, fake):
    return openai_client(gw, key=CLIENT_KEY)


@pytest.fixture
def claude(gw, fake):
    return anthropic.Anthropic(base_url=gw.url, api_key=CLIENT_KEY, max_retries=0, timeout=20)


def sent(fake) -> dict:
    return fake.requests[-1].body


# ------------------------------------------------------------------ /v1/responses


@pytest.mark.parametrize("kind", TYPES)
def test_responses_create_through_every_provider_type(oai, fake, kind, schemas_if_present):
    raw = oai.responses.with_raw_response.create(model=f"m-{kind}", input="hello", instructions="Be brief.", max_output_tokens=50)
    response = raw.parse()
    assert response.output_text == "echo: hello"
    assert response.status == "completed" and response.id.startswith("resp_")
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens > 0
    assert raw.headers["x-coo-llm-provider"] == kind
    if schemas_if_present:
        schemas_if_present.check("Response", json.loads(raw.content))
    assert fake.calls[K(kind)] == 1


@pytest.mark.parametrize("kind", TYPES)
def test_responses_stream_through_every_provider_type(oai, fake, kind):
    with oai.responses.stream(model=f"m-{kind}", input="count") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds and "response.output_item.done" in kinds
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert final.output_text == "echo: count" and final.usage.output_tokens > 0


@pytest.mark.parametrize("kind", TYPES)
def test_responses_tool_call_and_its_output_continue_the_conversation(oai, fake, kind):
    fake.script(K(kind), Step(tool_call={"name": "get_weather", "arguments": {"city": "Paris"}}))
    first = oai.responses.create(model=f"m-{kind}", input="Weather in Paris?", tools=[WEATHER])
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and json.loads(calls[0].arguments) == {"city": "Paris"}
    second = oai.responses.create(
        model=f"m-{kind}",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}],
        tools=[WEATHER],
    )
    assert second.previous_response_id == first.id and second.output_text
    replayed = json.dumps(sent(fake))
    assert "Weather in Paris?" in replayed and "sunny" in replayed  # the earlier turn was replayed upstream


def test_stored_responses_are_read_listed_deleted_and_private(gw, oai, fake):
    created = oai.responses.create(model="m-openai", input=[{"role": "user", "content": "remember me"}])
    assert oai.responses.retrieve(created.id).output_text == created.output_text
    items = oai.responses.input_items.list(created.id)
    assert [item.type for item in items.data] == ["message"] and items.data[0].content[0].text == "remember me"
    other = openai_client(gw, key=OTHER_KEY)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="m-openai", input="and me", previous_response_id=created.id)
    assert fake.calls[K("openai")] == 1  # the refused continuation reached no upstream
    oai.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(created.id)


def test_store_false_keeps_nothing(oai, fake):
    created = oai.responses.create(model="m-openai", input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(created.id)


def test_a_native_provider_gets_the_request_untranslated_and_replayed(oai, fake):
    upstream = {
        "id": "resp_upstream1", "object": "response", "created_at": 1, "status": "completed", "model": "m-native",
        "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": "native hi", "annotations": []}]}],
        "usage": {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10,
                  "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}},
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
    }
    fake.script(K("native"), Step(body=upstream))
    first = oai.responses.create(model="m-native", input="hi", reasoning={"effort": "low"}, store=True)
    assert first.id == "resp_upstream1" and first.output_text == "native hi"
    request = fake.requests[-1]
    assert request.path == "/v1/responses" and request.body["reasoning"] == {"effort": "low"} and request.body["store"] is False
    fake.script(K("native"), Step(body={**upstream, "id": "resp_upstream2"}))
    oai.responses.create(model="m-native", input="again", previous_response_id=first.id)
    body = fake.requests[-1].body
    assert "previous_response_id" not in body
    assert [item.get("role") for item in body["input"]] == ["user", "assistant", "user"]  # earlier turn replayed as items


def test_a_native_stream_passes_through(gw, fake):
    events = [
        {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_n", "object": "response", "status": "in_progress", "output": []}},
        {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "hey", "logprobs": []},
        {"type": "response.completed", "sequence_number": 2, "response": {"id": "resp_n", "object": "response", "status": "completed", "model": "m-native",
         "output": [], "usage": {"input_tokens": 2, "output_tokens": 1, "total_tokens": 3}}},
    ]
    raw = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
    fake.script(K("native"), Step(raw=raw))
    response = httpx.post(gw.url + "/v1/responses", json={"model": "m-native", "input": "x", "stream": True},
                          headers={"authorization": f"Bearer {CLIENT_KEY}"}, timeout=20)
    assert response.status_code == 200
    assert [json.loads(line[6:])["type"] for line in response.text.splitlines() if line.startswith("data: ")] == [e["type"] for e in events]


@pytest.mark.parametrize(
    "body,param",
    [
        ({"model": "m-openai"}, "input"),
        ({"model": "m-openai", "input": 5}, "input"),
        ({"model": "m-openai", "input": [{"role": {"x": 1}, "content": "hi"}]}, "input[0].role"),
        ({"model": "m-openai", "input": "hi", "tools": [{"type": "function", "name": "f", "parameters": []}]}, "tools[0].parameters"),
        ({"model": "m-openai", "input": "hi", "max_output_tokens": "many"}, "max_output_tokens"),
        ({"model": "m-openai", "input": "hi", "previous_response_id": 3}, "previous_response_id"),
    ],
)
def test_bad_responses_requests_get_400_naming_the_parameter(gw, fake, body, param):
    response = httpx.post(gw.url + "/v1/responses", json=body, headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]
    assert fake.requests == []


# ------------------------------------------------------------------ /v1/messages


@pytest.mark.parametrize("kind", TYPES)
def test_messages_create_through_every_provider_type(claude, fake, kind):
    message = claude.messages.create(model=f"m-{kind}", max_tokens=64, system="Be brief.", messages=[{"role": "user", "content": "hello"}])
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text == "echo: hello"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert fake.calls[K(kind)] == 1


@pytest.mark.parametrize("kind", TYPES)
def test_messages_stream_through_every_provider_type(claude, fake, kind):
    with claude.messages.stream(model=f"m-{kind}", max_tokens=64, messages=[{"role": "user", "content": "count"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: count" and final.content[0].text == "echo: count"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0  # message_start carried real or estimated input


@pytest.mark.parametrize("kind", TYPES)
def test_messages_tool_use_round_trip(claude, fake, kind):
    fake.script(K(kind), Step(tool_call={"name": "get_weather", "arguments": {"city": "Oslo"}}))
    message = claude.messages.create(model=f"m-{kind}", max_tokens=64, tools=[ANTHROPIC_WEATHER], messages=[{"role": "user", "content": "Weather in Oslo?"}])
    uses = [block for block in message.content if block.type == "tool_use"]
    assert message.stop_reason == "tool_use" and len(uses) == 1 and uses[0].input == {"city": "Oslo"}
    follow_up = claude.messages.create(
        model=f"m-{kind}",
        max_tokens=64,
        tools=[ANTHROPIC_WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in message.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "rain"}]},
        ],
    )
    assert follow_up.content[0].text
    assert "rain" in json.dumps(sent(fake))


def test_claude_code_shaped_requests_pass_natively_and_translate_cleanly(gw, fake):
    """A request as Claude Code sends one: system blocks with cache_control, many tools,
    metadata.user_id, beta headers, streaming. Native to Anthropic: untouched; translated: no
    Anthropic-only field reaches the upstream."""
    tools = [{"name": f"tool_{i}", "description": f"tool {i}", "input_schema": {"type": "object", "properties": {"arg": {"type": "string"}}}} for i in range(12)]
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    body = {
        "model": "m-anthropic", "max_tokens": 256, "stream": True,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "list files", "cache_control": {"type": "ephemeral"}}]}],
        "tools": tools, "metadata": {"user_id": "user_abc_session_1"}, "temperature": 1,
    }
    headers = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01", "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"}
    native = httpx.post(gw.url + "/v1/messages", json=body, headers=headers, timeout=20)
    assert native.status_code == 200 and "event: message_stop" in native.text
    upstream = fake.requests[-1]
    assert upstream.body["system"] == body["system"] and upstream.body["tools"] == tools and upstream.body["metadata"] == body["metadata"]
    assert upstream.headers.get("anthropic-beta") == headers["anthropic-beta"]
    for kind in ("openai", "gemini"):
        translated = httpx.post(gw.url + "/v1/messages", json={**body, "model": f"m-{kind}"}, headers=headers, timeout=20)
        assert translated.status_code == 200 and "event: message_stop" in translated.text, translated.text
        assert "cache_control" not in json.dumps(fake.requests[-1].body)
        assert "anthropic-beta" not in {name.lower() for name in fake.requests[-1].headers}


def test_count_tokens_answers_without_an_upstream_call(claude, fake):
    counted = claude.messages.count_tokens(model="m-gemini", messages=[{"role": "user", "content": "x" * 400}])
    assert 100 <= counted.input_tokens <= 120
    assert fake.requests == []


def test_messages_errors_come_in_anthropics_shape(gw, fake):
    bad = httpx.post(gw.url + "/v1/messages", json={"model": "m-openai", "messages": [{"role": "user", "content": 5}]},
                     headers={"x-api-key": CLIENT_KEY})
    assert bad.status_code == 400 and bad.json()["type"] == "error" and bad.json()["error"]["type"] == "invalid_request_error"
    unauthorized = httpx.post(gw.url + "/v1/messages", json={"model": "m-openai", "max_tokens": 5, "messages": []}, headers={"x-api-key": "nope"})
    assert unauthorized.status_code == 401 and unauthorized.json()["error"]["type"] == "authentication_error"
    unknown = httpx.post(gw.url + "/v1/messages", json={"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
                         headers={"x-api-key": CLIENT_KEY})
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"
    client = anthropic.Anthropic(base_url=gw.url, api_key=CLIENT_KEY, max_retries=0)
    fake.script(K("openai"), Step(status=400, body={"error": {"message": "bad temperature", "type": "invalid_request_error", "param": None, "code": None}}))
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="m-openai", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert "bad temperature" in str(caught.value)
    assert fake.requests[-1].body is not None


# ------------------------------------------------------------------ one path for every route


def test_one_key_window_is_shared_by_chat_responses_and_messages(gw, oai, claude, fake):
    oai.chat.completions.create(model="m-shared", messages=[{"role": "user", "content": "one"}])
    oai.responses.create(model="m-shared", input="two")
    claude.messages.create(model="m-shared", max_tokens=8, messages=[{"role": "user", "content": "three"}])
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude.messages.create(model="m-shared", max_tokens=8, messages=[{"role": "user", "content": "four"}])
    assert caught.value.response.headers.get("retry-after")
    with pytest.raises(openai.RateLimitError):
        oai.responses.create(model="m-shared", input="five")
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="m-shared", messages=[{"role": "user", "content": "six"}])
    assert fake.calls[K("shared")] == 3  # req_per_min 3, counted across the three front doors


def test_new_routes_are_accounted_like_chat(gw, oai, claude, fake):
    ids = [f"acct-resp-{time.time_ns()}", f"acct-msg-{time.time_ns()}"]
    oai.responses.create(model="m-gemini", input="price me", extra_headers={"x-request-id": ids[0]})
    claude.messages.create(model="m-openai", max_tokens=8, messages=[{"role": "user", "content": "price me"}], extra_headers={"x-request-id": ids[1]})
    deadline = time.time() + 10
    found = {}
    while time.time() < deadline and len(found) < 2:
        for line in gw.logs().splitlines():
            if line.startswith("{") and '"message":"request"' in line:
                record = json.loads(line)
                if record.get("request_id") in ids:
                    found[record["request_id"]] = record
        time.sleep(0.05)
    assert found[ids[0]]["route"] == "/v1/responses" and found[ids[0]]["provider"] == "gemini" and found[ids[0]]["completion_tokens"] > 0
    assert found[ids[1]]["route"] == "/v1/messages" and found[ids[1]]["provider"] == "openai" and found[ids[1]]["status"] == 200


# ------------------------------------------------------------------ recorded real traffic


def test_recorded_anthropic_streams_reach_the_anthropic_sdk_natively(claude, fake, shared_dir):
    for name, expect_tool in (("basic_response.txt", False), ("tool_use_response.txt", True)):
        raw = (shared_dir / "fixtures" / "anthropic" / "stream" / name).read_bytes()
        fake.script(K("anthropic"), Step(raw=raw))
        with claude.messages.stream(model="m-anthropic", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as stream:
            final = stream.get_final_message()
        recorded = [json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: ")]
        texts = "".join(e["delta"].get("text", "") for e in recorded if e.get("type") == "content_block_delta")
        assert "".join(block.text for block in final.content if block.type == "text") == texts
        assert final.usage.input_tokens == recorded[0]["message"]["usage"]["input_tokens"]
        assert any(block.type == "tool_use" for block in final.content) == expect_tool


def test_recorded_openai_streams_come_out_as_responses_events_and_messages(gw, oai, claude, fake, shared_dir):
    raw = (shared_dir / "fixtures" / "openai" / "stream" / "text_gpt4o.sse").read_bytes()
    recorded = [json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in recorded if c["choices"])
    usage = next(c["usage"] for c in recorded if c.get("usage"))
    fake.script(K("openai"), Step(raw=raw))
    with oai.responses.stream(model="m-openai", input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == text and final.usage.input_tokens == usage["prompt_tokens"]
    fake.script(K("openai"), Step(raw=raw))
    with claude.messages.stream(model="m-openai", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as stream:
        message = stream.get_final_message()
    assert message.content[0].text == text
    assert message.usage.output_tokens == usage["completion_tokens"]


# ------------------------------------------------------------------ the cache serves the new routes too


@pytest.fixture(scope="module")
def cached_gw(start_gateway, upstream):
    providers = [provider("c-openai", upstream.url, [K("c-openai")], type="openai", models=["m-cached"])]
    return start_gateway(config(providers, policy={"cache": {"enabled": True, "ttl_seconds": 60}}))


def test_responses_and_messages_answers_are_cached_with_fresh_ids(cached_gw, fake):
    oai = openai_client(cached_gw)
    first = oai.responses.with_raw_response.create(model="m-cached", input="cache me")
    second = oai.responses.with_raw_response.create(model="m-cached", input="cache me")
    assert (first.headers["x-coo-llm-cache"], second.headers["x-coo-llm-cache"]) == ("miss", "hit")
    assert second.parse().output_text == first.parse().output_text and second.parse().id != first.parse().id
    assert oai.responses.retrieve(second.parse().id).output_text == first.parse().output_text  # the hit is stored as its own
    with oai.responses.stream(model="m-cached", input="cache me") as stream:  # a stream replays the cached answer
        assert stream.get_final_response().output_text == first.parse().output_text
    claude = anthropic.Anthropic(base_url=cached_gw.url, api_key="client-key", max_retries=0)
    one = claude.messages.with_raw_response.create(model="m-cached", max_tokens=8, messages=[{"role": "user", "content": "cache me"}])
    two = claude.messages.with_raw_response.create(model="m-cached", max_tokens=8, messages=[{"role": "user", "content": "cache me"}])
    assert two.headers["x-coo-llm-cache"] == "hit" and two.parse().content[0].text == one.parse().content[0].text
    assert two.parse().id != one.parse().id
    assert fake.calls[K("c-openai")] == 2  # one upstream call per front door
