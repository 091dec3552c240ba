"""Chat through the gateway with the official OpenAI SDK: plain, history, streams, tools, models."""

from __future__ import annotations

import json

import pytest

from conftest import openai_client
from fakeupstream import Step
from gateway import config, provider


@pytest.fixture(scope="module")
def gw(start_gateway, upstream):
    cfg = config(
        [provider("p1", upstream.url, ["k1", "k2"], models=["gpt-test", "gpt-other"])],
        model_aliases={"smart": "p1:gpt-test"},
    )
    return start_gateway(cfg)


@pytest.fixture
def client(gw, fake):
    return openai_client(gw)


def last_body(fake) -> dict:
    return fake.requests[-1].body


def test_plain_chat_answers_and_names_the_serving_key(client, fake):
    raw = client.chat.completions.with_raw_response.create(model="gpt-test", messages=[{"role": "user", "content": "hello"}])
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens > 0
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-coo-llm-provider"] == "p1"
    assert raw.headers["x-coo-llm-key"] in ("p1#1", "p1#2")
    assert raw.headers["x-coo-llm-attempts"] == "1"
    # The upstream got the provider key, never the client's key.
    assert fake.requests[-1].headers["Authorization"] in ("Bearer k1", "Bearer k2")
    assert "client-key" not in json.dumps(fake.requests[-1].headers)


def test_client_request_id_is_echoed(client, fake):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": "x"}], extra_headers={"x-request-id": "my-trace-42"}
    )
    assert raw.headers["x-request-id"] == "my-trace-42"


def test_history_reaches_upstream_intact(client, fake):
    history = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "hello Ada"},
        {"role": "user", "content": "what is my name?"},
    ]
    completion = client.chat.completions.create(model="gpt-test", messages=history)
    assert completion.choices[0].message.content == "echo: what is my name?"
    assert last_body(fake)["messages"] == history


def test_alias_resolves_to_its_target(client, fake):
    client.chat.completions.create(model="smart", messages=[{"role": "user", "content": "x"}])
    assert last_body(fake)["model"] == "gpt-test"
    client.chat.completions.create(model="p1:gpt-other", messages=[{"role": "user", "content": "x"}])
    assert last_body(fake)["model"] == "gpt-other"


def test_unused_parameters_pass_through_untouched(client, fake):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "x"}],
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        response_format={"type": "json_object"},
        seed=7,
        stop=["END", "STOP"],
        n=2,
        logprobs=True,
        top_logprobs=2,
        temperature=0.3,
        user="u-1",
        extra_body={"vendor_extension": {"a": 1}},
    )
    body = last_body(fake)
    assert body["tools"] == tools
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["response_format"] == {"type": "json_object"}
    assert (body["seed"], body["stop"], body["n"], body["logprobs"], body["top_logprobs"]) == (7, ["END", "STOP"], 2, True, 2)
    assert body["temperature"] == 0.3 and body["user"] == "u-1"
    assert body["vendor_extension"] == {"a": 1}
    assert "stream_options" not in body


def collect(stream):
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return chunks, text


def test_stream_without_usage_has_no_usage_but_upstream_was_asked(client, fake):
    stream = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "stream me"}], stream=True)
    chunks, text = collect(stream)
    assert text == "echo: stream me"
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)  # no usage-only chunk leaked
    assert [c.choices[0].finish_reason for c in chunks].count("stop") == 1
    assert last_body(fake)["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("on_finish", [False, True], ids=["usage-chunk", "usage-on-finish-chunk"])
def test_stream_with_usage_gets_it_exactly_once_in_a_final_empty_chunk(client, fake, on_finish):
    fake.set_default("k1", Step(usage_on_finish=on_finish, prompt_tokens=11, completion_tokens=5))
    fake.set_default("k2", Step(usage_on_finish=on_finish, prompt_tokens=11, completion_tokens=5))
    stream = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "count"}], stream=True, stream_options={"include_usage": True}
    )
    chunks, text = collect(stream)
    assert text == "echo: count"
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1
    assert with_usage[0] is chunks[-1] and chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens, chunks[-1].usage.total_tokens) == (11, 5, 16)


def test_stream_usage_on_finish_chunk_is_removed_when_not_asked(client, fake):
    fake.set_default("k1", Step(usage_on_finish=True))
    fake.set_default("k2", Step(usage_on_finish=True))
    chunks, _ = collect(client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}], stream=True))
    assert all(c.usage is None for c in chunks)


def test_raw_stream_ends_with_done(gw, fake):
    import httpx

    with httpx.stream(
        "POST",
        gw.url + "/v1/chat/completions",
        json={"model": "gpt-test", "messages": [{"role": "user", "content": "x"}], "stream": True},
        headers={"authorization": "Bearer client-key"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    frames = [f for f in body.split("\n\n") if f]
    assert all(f.startswith("data: ") for f in frames)
    assert frames[-1] == "data: [DONE]"


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


def test_tool_call_round_trip(client, fake):
    fake.set_default("k1", Step(tool_call={"name": "get_weather", "arguments": {"city": "Paris"}}))
    fake.set_default("k2", Step(tool_call={"name": "get_weather", "arguments": {"city": "Paris"}}))
    completion = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    # The tool result turn goes back upstream as sent.
    fake.set_default("k1", Step(reply="It is sunny."))
    fake.set_default("k2", Step(reply="It is sunny."))
    turn = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'},
    ]
    answer = client.chat.completions.create(model="gpt-test", messages=turn, tools=TOOLS)
    assert answer.choices[0].message.content == "It is sunny."
    assert last_body(fake)["messages"][2] == turn[2]
    assert last_body(fake)["messages"][1]["tool_calls"][0]["id"] == call.id


def test_streamed_tool_call_deltas_arrive_intact(client, fake):
    arguments = {"city": "Ho Chi Minh City", "unit": "celsius"}
    fake.set_default("k1", Step(tool_call={"name": "get_weather", "arguments": arguments}, chunks=6))
    fake.set_default("k2", Step(tool_call={"name": "get_weather", "arguments": arguments}, chunks=6))
    chunks = list(client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "w"}], tools=TOOLS, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(deltas) >= 6
    assert deltas[0].id and deltas[0].function.name == "get_weather"
    assert all(d.index == 0 for d in deltas)
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == arguments
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_models_list_has_aliases_models_and_qualified_ids(client):
    ids = [m.id for m in client.models.list()]
    assert {"smart", "gpt-test", "gpt-other", "p1:gpt-test", "p1:gpt-other"} <= set(ids)
    assert ids.index("smart") < ids.index("gpt-test") < ids.index("p1:gpt-test")
    assert client.models.retrieve("p1:gpt-test").id == "p1:gpt-test"


def test_unknown_url_is_an_openai_style_404(gw):
    import httpx

    response = httpx.post(gw.url + "/v1/nope", json={}, headers={"authorization": "Bearer client-key"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
