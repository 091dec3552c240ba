"""One conformance suite for every provider type.

The same OpenAI-SDK-level cases run through a real gateway process against the fake upstream
speaking each provider's own wire format (OpenAI, an OpenAI-compatible ``custom`` server,
Anthropic Messages, Gemini). A client must not be able to tell them apart except by the text.
What the upstream received is read back with ``fake_wire.understand``, so one assertion covers
every provider; per-key call counts prove failover. When ``shared/spec`` is present, answers and
stream chunks are also validated against OpenAI's schemas.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time

import httpx
import openai
import orjson
import pytest

import fake_wire
from conftest import openai_client
from fakeupstream import Step
from gateway import config, provider

TYPES = ["openai", "custom", "anthropic", "gemini"]
EMBEDDING_TYPES = ["openai", "custom", "gemini"]
CHAT_PATH = {"openai": "/v1/chat/completions", "custom": "/v1/chat/completions", "anthropic": "/v1/messages", "gemini": ":generateContent"}
KEY_HEADER = {"openai": "Authorization", "custom": "Authorization", "anthropic": "x-api-key", "gemini": "x-goog-api-key"}
PRICE_IN, PRICE_OUT = 1.0, 2.0  # USD per 1K tokens
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n fake pixels").decode()


def K(name: str) -> str:
    """The provider key secret named ``name``: random-looking, as real keys are. (The gateway
    redacts every 8-character run of a secret from its logs; a secret like ``anthropic-1`` would
    also redact the provider id ``anthropic`` wherever it is logged.)"""
    return "tk" + hashlib.sha256(name.encode()).hexdigest()[:30]


def providers_for(kind: str, url: str) -> list[dict]:
    """Per type: the main provider, and one provider per failover test (a fresh round-robin turn)."""
    base = url + "/v1" if kind == "custom" else url
    pricing = {"input_token_cost": PRICE_IN, "output_token_cost": PRICE_OUT}
    out = [
        provider(kind, base, [K(f"{kind}-1"), K(f"{kind}-2")], type=kind, models=[f"chat-{kind}", f"emb-{kind}"], pricing=pricing),
        provider(f"{kind}-rl", base, [K(f"{kind}-rl-1"), K(f"{kind}-rl-2")], type=kind, models=[f"rl-{kind}"]),
        provider(f"{kind}-5xx", base, [K(f"{kind}-5xx-1"), K(f"{kind}-5xx-2")], type=kind, models=[f"err-{kind}"]),
        provider(f"{kind}-solo", base, [K(f"{kind}-solo-1")], type=kind, models=[f"solo-{kind}"]),
        provider(f"{kind}-odd", base, [K(f"{kind}-odd-1")], type=kind, models=[f"odd-{kind}"]),  # one test each, streams that end oddly
    ]
    if kind in EMBEDDING_TYPES:
        out.append(provider(f"{kind}-emb5xx", base, [K(f"{kind}-emb5xx-1"), K(f"{kind}-emb5xx-2")], type=kind, models=[f"emb5xx-{kind}"]))
    return out


@pytest.fixture(scope="module")
def gw(start_gateway, upstream):
    return start_gateway(config([p for kind in TYPES for p in providers_for(kind, upstream.url)]))


@pytest.fixture
def client(gw, fake):
    return openai_client(gw)


@pytest.fixture(scope="module")
def schemas(schemas_if_present):
    return schemas_if_present


def script_both(fake, kind: str, step: Step) -> None:
    for key in (K(f"{kind}-1"), K(f"{kind}-2")):
        fake.set_default(key, step)


def seen(fake) -> fake_wire.Seen:
    call = fake.requests[-1]
    return fake_wire.understand(call.path, call.body)


def user(text) -> dict:
    return {"role": "user", "content": text}


def collect(stream) -> tuple[list, str]:
    chunks = list(stream)
    return chunks, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# ------------------------------------------------------------------ answers


@pytest.mark.parametrize("kind", TYPES)
def test_text(client, fake, kind, schemas):
    raw = client.chat.completions.with_raw_response.create(model=f"chat-{kind}", messages=[user("hello")])
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens > 0
    assert raw.headers["x-coo-llm-provider"] == kind
    if schemas:
        schemas.check("CreateChatCompletionResponse", json.loads(raw.content))
    call = fake.requests[-1]
    assert call.path.endswith(CHAT_PATH[kind])
    assert call.headers[KEY_HEADER[kind]] in ("Bearer " + K(f"{kind}-1"), "Bearer " + K(f"{kind}-2"), K(f"{kind}-1"), K(f"{kind}-2"))
    assert "client-key" not in json.dumps(call.headers)
    if kind == "anthropic":
        assert call.headers["anthropic-version"] == "2023-06-01"


@pytest.mark.parametrize("kind", TYPES)
def test_multi_turn(client, fake, kind):
    history = [user("my name is Ada"), {"role": "assistant", "content": "hello Ada"}, user("what is my name?")]
    completion = client.chat.completions.create(model=f"chat-{kind}", messages=history)
    assert completion.choices[0].message.content == "echo: what is my name?"
    assert seen(fake).turns == [("user", "my name is Ada"), ("assistant", "hello Ada"), ("user", "what is my name?")]


@pytest.mark.parametrize("kind", TYPES)
def test_system_prompt(client, fake, kind):
    completion = client.chat.completions.create(model=f"chat-{kind}", messages=[{"role": "system", "content": "be brief"}, user("hi")])
    assert completion.choices[0].message.content == "echo: hi"
    understood = seen(fake)
    assert understood.system == "be brief" and understood.turns == [("user", "hi")]


@pytest.mark.parametrize("kind", TYPES)
def test_streaming_with_usage(client, fake, kind):
    script_both(fake, kind, Step(prompt_tokens=11, completion_tokens=5, chunks=4))
    chunks, text = collect(client.chat.completions.create(
        model=f"chat-{kind}", messages=[user("count")], stream=True, stream_options={"include_usage": True}))
    assert text == "echo: count"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1 and with_usage[0] is chunks[-1] and chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens, chunks[-1].usage.total_tokens) == (11, 5, 16)
    assert len({c.id for c in chunks}) == 1


@pytest.mark.parametrize("kind", TYPES)
def test_streaming_without_usage_and_raw_frames(gw, fake, kind, schemas):
    with httpx.stream("POST", gw.url + "/v1/chat/completions", headers={"authorization": "Bearer client-key"},
                      json={"model": f"chat-{kind}", "messages": [user("raw")], "stream": True}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()
    frames = [f for f in body.split("\n\n") if f]
    assert all(f.startswith("data: ") for f in frames) and frames[-1] == "data: [DONE]"
    chunks = [json.loads(f[6:]) for f in frames[:-1]]
    assert all(c["choices"] and not c.get("usage") for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "echo: raw"
    if schemas:
        for chunk in chunks:
            schemas.check("CreateChatCompletionStreamResponse", chunk)


# ------------------------------------------------------------------ tools, JSON, images


@pytest.mark.parametrize("kind", TYPES)
def test_tool_call_and_its_result_turn(client, fake, kind):
    script_both(fake, kind, Step(tool_call={"name": "get_weather", "arguments": {"city": "Paris"}}))
    completion = client.chat.completions.create(model=f"chat-{kind}", messages=[user("weather in Paris?")], tools=TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.id and call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert seen(fake).tools == ["get_weather"]

    script_both(fake, kind, Step(reply="It is sunny in Paris."))
    turn = [
        user("weather in Paris?"),
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'},
    ]
    answer = client.chat.completions.create(model=f"chat-{kind}", messages=turn, tools=TOOLS)
    assert answer.choices[0].message.content == "It is sunny in Paris."
    assert answer.choices[0].finish_reason == "stop"
    understood = seen(fake)
    assert understood.tool_calls == [("get_weather", {"city": "Paris"})]
    assert len(understood.tool_results) == 1 and "sunny" in json.dumps(understood.tool_results[0][1])


@pytest.mark.parametrize("kind", TYPES)
def test_streamed_tool_call(client, fake, kind):
    arguments = {"city": "Ho Chi Minh City", "unit": "celsius"}
    script_both(fake, kind, Step(tool_call={"name": "get_weather", "arguments": arguments}, chunks=5))
    chunks = list(client.chat.completions.create(model=f"chat-{kind}", messages=[user("w")], tools=TOOLS, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id and deltas[0].function.name == "get_weather"
    assert all(d.index == 0 for d in deltas) and [d.id for d in deltas if d.id] == [deltas[0].id]
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == arguments
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "temp": {"type": "integer"}}, "required": ["city", "temp"]}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", TYPES)
def test_json_response_format(client, fake, kind, stream):
    script_both(fake, kind, Step(reply='{"city": "Paris", "temp": 21}'))
    response_format = {"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER_SCHEMA, "strict": True}}
    request = dict(model=f"chat-{kind}", messages=[user("weather as JSON")], response_format=response_format)
    if stream:
        chunks, content = collect(client.chat.completions.create(**request, stream=True))
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    else:
        completion = client.chat.completions.create(**request)
        content, finish = completion.choices[0].message.content, [completion.choices[0].finish_reason]
        assert not completion.choices[0].message.tool_calls
    assert json.loads(content) == {"city": "Paris", "temp": 21}
    assert finish == ["stop"]
    understood = seen(fake)
    assert understood.json_schema["properties"].keys() == {"city", "temp"} and understood.tools == []


@pytest.mark.parametrize("kind", TYPES)
def test_image_input(client, fake, kind):
    content = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": PNG}}]
    completion = client.chat.completions.create(model=f"chat-{kind}", messages=[user(content)])
    assert completion.choices[0].message.content == "echo: what is this?"
    assert seen(fake).images == [PNG]


# ------------------------------------------------------------------ failures


def rate_limit_step(kind: str, seconds: int = 30) -> Step:
    if kind == "gemini":  # Gemini says when to come back in the body, not in a header
        return Step(status=429, retry_delay=f"{seconds}s")
    return Step(status=429, headers={"retry-after": str(seconds)})


@pytest.mark.parametrize("kind", TYPES)
def test_rate_limit_fails_over_and_cools_the_key(client, fake, kind):
    fake.script(K(f"{kind}-rl-1"), rate_limit_step(kind))
    raw = client.chat.completions.with_raw_response.create(model=f"rl-{kind}", messages=[user("x")])
    assert raw.parse().choices[0].message.content == "echo: x"
    assert raw.headers["x-coo-llm-key"] == f"{kind}-rl#2" and raw.headers["x-coo-llm-attempts"] == "2"
    assert (fake.count(K(f"{kind}-rl-1")), fake.count(K(f"{kind}-rl-2"))) == (1, 1)
    for _ in range(2):  # round robin would pick key 1 again, but it rests for the 30 s it was told
        client.chat.completions.create(model=f"rl-{kind}", messages=[user("y")])
    assert (fake.count(K(f"{kind}-rl-1")), fake.count(K(f"{kind}-rl-2"))) == (1, 3)


@pytest.mark.parametrize("kind", TYPES)
def test_rate_limit_delay_becomes_the_cooldown_and_retry_after(client, fake, kind):
    fake.script(K(f"{kind}-solo-1"), rate_limit_step(kind, 42))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=f"solo-{kind}", messages=[user("x")])
    assert int(caught.value.response.headers["retry-after"]) in (41, 42)  # not the 10 s default
    assert fake.count(K(f"{kind}-solo-1")) == 1  # the only key rests: no second call


SERVER_ERROR = {"openai": 500, "custom": 502, "anthropic": 529, "gemini": 503}


@pytest.mark.parametrize("kind", TYPES)
def test_server_error_fails_over(client, fake, kind):
    fake.script(K(f"{kind}-5xx-1"), Step(status=SERVER_ERROR[kind]))
    raw = client.chat.completions.with_raw_response.create(model=f"err-{kind}", messages=[user("x")])
    assert raw.parse().choices[0].message.content == "echo: x"
    assert raw.headers["x-coo-llm-attempts"] == "2"
    assert (fake.count(K(f"{kind}-5xx-1")), fake.count(K(f"{kind}-5xx-2"))) == (1, 1)


@pytest.mark.parametrize("kind", TYPES)
def test_bad_request_is_a_400_to_the_client_without_retry(client, fake, kind):
    script_both(fake, kind, Step(status=400))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=f"chat-{kind}", messages=[user("x")])
    assert caught.value.status_code == 400
    error = caught.value.body if "message" in (caught.value.body or {}) else caught.value.body["error"]
    assert error["message"] == "fake upstream says 400"
    assert fake.count(K(f"{kind}-1")) + fake.count(K(f"{kind}-2")) == 1


@pytest.mark.parametrize(
    "kind,params,param",
    [
        ("anthropic", {"n": 2}, "n"),
        ("anthropic", {"logprobs": True}, "logprobs"),
        ("gemini", {"messages": [user([{"type": "image_url", "image_url": {"url": "https://img.test/cat.png"}}])]}, "messages[0].content[0]"),
        ("gemini", {"top_logprobs": 2}, "top_logprobs"),  # without logprobs: true, as OpenAI requires
    ],
)
def test_a_parameter_the_provider_cannot_honour_is_a_400_before_any_call(client, fake, kind, params, param):
    request = {"model": f"chat-{kind}", "messages": [user("x")], **params}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**request)
    assert caught.value.body["param"] == param
    assert fake.count(K(f"{kind}-1")) + fake.count(K(f"{kind}-2")) == 0


def test_gemini_log_probabilities_reach_the_sdk(client, fake, schemas):
    raw = client.chat.completions.with_raw_response.create(
        model="chat-gemini", messages=[user("how sure are you")], logprobs=True, top_logprobs=2)
    completion = raw.parse()
    config = fake.requests[-1].body["generationConfig"]
    assert (config["responseLogprobs"], config["logprobs"]) == (True, 2)
    steps = completion.choices[0].logprobs.content
    assert "".join(step.token for step in steps) == completion.choices[0].message.content == "echo: how sure are you"
    assert [round(step.logprob, 6) for step in steps] == [round(-0.1 * (n + 1), 6) for n in range(len(steps))]
    assert all(len(step.top_logprobs) == 2 and step.top_logprobs[0].token == step.token for step in steps)
    assert steps[0].bytes == list(steps[0].token.encode())
    if schemas:
        schemas.check("CreateChatCompletionResponse", json.loads(raw.content))

    chunks = list(client.chat.completions.create(
        model="chat-gemini", messages=[user("and streamed")], logprobs=True, stream=True))
    assert "logprobs" not in fake.requests[-1].body["generationConfig"]  # no top_logprobs asked
    tokens = [step.token for c in chunks if c.choices and c.choices[0].logprobs for step in c.choices[0].logprobs.content]
    assert "".join(tokens) == "echo: and streamed"
    assert all(step.top_logprobs == [] for c in chunks if c.choices and c.choices[0].logprobs for step in c.choices[0].logprobs.content)

    plain = client.chat.completions.create(model="chat-gemini", messages=[user("no logprobs")])
    assert plain.choices[0].logprobs is None and "responseLogprobs" not in (fake.requests[-1].body.get("generationConfig") or {})


# ------------------------------------------------------------------ embeddings


@pytest.mark.parametrize("kind", EMBEDDING_TYPES)
def test_embeddings(client, fake, kind, schemas):
    result = client.embeddings.create(model=f"emb-{kind}", input=["hello world", "second"])  # the SDK asks for base64
    assert [d.index for d in result.data] == [0, 1]
    assert [round(x, 5) for x in result.data[1].embedding] == [0.2, 0.2, 0.3]
    assert result.usage.prompt_tokens > 0 and result.usage.total_tokens == result.usage.prompt_tokens
    floats = httpx.post(client.base_url.join("embeddings").__str__(), headers={"authorization": "Bearer client-key"},
                        json={"model": f"emb-{kind}", "input": "one", "encoding_format": "float"})
    assert floats.status_code == 200 and floats.json()["data"][0]["embedding"][1:] == pytest.approx([0.2, 0.3])
    if schemas:
        schemas.check("CreateEmbeddingResponse", floats.json())
    assert fake.requests[-1].path.endswith(":batchEmbedContents" if kind == "gemini" else "/v1/embeddings")


@pytest.mark.parametrize("kind", EMBEDDING_TYPES)
def test_embeddings_fail_over_like_chat(client, fake, kind):
    fake.script(K(f"{kind}-emb5xx-1"), Step(status=SERVER_ERROR[kind]))
    raw = client.embeddings.with_raw_response.create(model=f"emb5xx-{kind}", input="x")
    assert len(raw.parse().data) == 1 and raw.headers["x-coo-llm-attempts"] == "2"
    assert (fake.count(K(f"{kind}-emb5xx-1")), fake.count(K(f"{kind}-emb5xx-2"))) == (1, 1)


def test_anthropic_has_no_embeddings(client, fake):
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="emb-anthropic", input="x")
    assert caught.value.body["param"] == "model" and "embeddings" in caught.value.body["message"]
    assert fake.count(K("anthropic-1")) + fake.count(K("anthropic-2")) == 0


@pytest.mark.parametrize(
    "body,param",
    [({"model": "emb-openai"}, "input"), ({"model": "emb-openai", "input": []}, "input"), ({"input": "x"}, "model"),
     ({"model": "emb-openai", "input": "x", "encoding_format": "hex"}, "encoding_format")],
)
def test_bad_embeddings_requests(gw, fake, body, param):
    response = httpx.post(gw.url + "/v1/embeddings", headers={"authorization": "Bearer client-key"}, json=body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert httpx.post(gw.url + "/v1/embeddings", json=body).status_code == 401  # same auth as chat


# ------------------------------------------------------------------ accounting


def access_line(gw, request_id: str) -> dict:
    deadline = time.time() + 10
    while time.time() < deadline:
        for line in gw.logs().splitlines():
            if request_id in line and line.startswith("{"):
                record = orjson.loads(line)
                if record.get("message") == "request" and record.get("request_id") == request_id:
                    return record
        time.sleep(0.05)
    raise AssertionError(f"no access log line for {request_id}")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", TYPES)
def test_cost_accounting_uses_the_translated_usage(gw, client, fake, kind, stream):
    # Anthropic reports 800 input + 200 cache-read tokens; Gemini adds 100 thought tokens to output.
    script_both(fake, kind, Step(prompt_tokens=1000, completion_tokens=500, cached_tokens=200, reasoning_tokens=100))
    request_id = f"acct-{kind}-{stream}-{time.time_ns()}"
    request = dict(model=f"chat-{kind}", messages=[user("price me")], extra_headers={"x-request-id": request_id})
    if stream:
        chunks = list(client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True}))
        usage = chunks[-1].usage
    else:
        usage = client.chat.completions.create(**request).usage
    completion_tokens = 600 if kind == "gemini" else 500
    assert (usage.prompt_tokens, usage.completion_tokens) == (1000, completion_tokens)
    assert usage.prompt_tokens_details.cached_tokens == 200
    line = access_line(gw, request_id)
    assert (line["prompt_tokens"], line["completion_tokens"]) == (1000, completion_tokens)
    assert line["cost_usd"] == pytest.approx((1000 * PRICE_IN + completion_tokens * PRICE_OUT) / 1000)
    assert line["provider"] == kind and line["status"] == 200


def test_embeddings_are_accounted(gw, client, fake):
    fake.set_default(K("openai-1"), Step(prompt_tokens=40))
    fake.set_default(K("openai-2"), Step(prompt_tokens=40))
    request_id = f"acct-emb-{time.time_ns()}"
    client.embeddings.create(model="emb-openai", input="count me", extra_headers={"x-request-id": request_id})
    line = access_line(gw, request_id)
    assert (line["prompt_tokens"], line["completion_tokens"], line["route"]) == (40, 0, "/v1/embeddings")
    assert line["cost_usd"] == pytest.approx(40 * PRICE_IN / 1000)


def test_custom_server_deviations_reach_the_client_repaired(client, fake):
    from adapter_cases import written

    script_both(fake, "custom", Step(raw=written("custom/deviant_response.json")))
    raw = client.chat.completions.with_raw_response.create(model="chat-custom", messages=[user("x")], tools=TOOLS)
    body = json.loads(raw.content)
    message = body["choices"][0]["message"]
    assert message["refusal"] is None and body["choices"][0]["finish_reason"] == "tool_calls"
    assert [json.loads(c["function"]["arguments"]) for c in message["tool_calls"]] == [{"city": "Hanoi"}, {"zone": "UTC"}]
    assert all(c["id"] for c in message["tool_calls"])


# The frame after which the first content delta has reached the client, per wire format (frames
# are spaced out, so the gateway has sent that delta before it reads the error).
AFTER_FIRST_CONTENT = {"openai": 2, "custom": 2, "anthropic": 4, "gemini": 1}


def raw_stream(gw, model: str) -> list[str]:
    with httpx.stream("POST", gw.url + "/v1/chat/completions", headers={"authorization": "Bearer client-key"},
                      json={"model": model, "messages": [user("stream")], "stream": True}) as response:
        assert response.status_code == 200
        return [f for f in response.read().decode().split("\n\n") if f]


@pytest.mark.parametrize("kind", TYPES)
def test_error_event_after_content_ends_the_stream_with_an_error_frame(gw, fake, kind):
    script_both(fake, kind, Step(chunks=3, stream_error_after=AFTER_FIRST_CONTENT[kind], chunk_delay=0.05))
    frames = raw_stream(gw, f"chat-{kind}")
    assert any("echo" in f for f in frames[:-1])  # content reached the client first
    last = json.loads(frames[-1][len("data: "):])
    assert set(last) == {"error"} and last["error"]["message"]
    assert "data: [DONE]" not in frames
    assert fake.count(K(f"{kind}-1")) + fake.count(K(f"{kind}-2")) == 1  # too late to fail over


def test_anthropic_error_event_before_any_content_fails_over(client, fake):
    fake.script(K("anthropic-5xx-1"), Step(stream_error_after=2))  # after message_start and ping
    chunks, text = collect(client.chat.completions.create(model="err-anthropic", messages=[user("x")], stream=True))
    assert text == "echo: x"
    assert (fake.count(K("anthropic-5xx-1")), fake.count(K("anthropic-5xx-2"))) == (1, 1)


# ------------------------------------------------------------------ streams that end oddly


def test_an_openai_stream_cut_before_done_ends_with_an_error_frame(gw, fake):
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    cut = b"".join(b"data: " + orjson.dumps({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"
                   for delta, finish in (({"role": "assistant", "content": "half an answer"}, None), ({}, "stop")))
    fake.script(K("openai-odd-1"), Step(raw=cut))
    frames = raw_stream(gw, "odd-openai")
    assert "half an answer" in frames[0] and "data: [DONE]" not in frames
    assert set(json.loads(frames[-1][len("data: "):])) == {"error"}


def test_a_gemini_stream_of_only_usage_is_an_empty_answer_from_one_call(client, fake):
    usage_only = b'data: {"usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}, "modelVersion": "g"}\r\n\r\n'
    fake.script(K("gemini-odd-1"), Step(raw=usage_only))
    chunks, text = collect(client.chat.completions.create(model="odd-gemini", messages=[user("x")], stream=True,
                                                          stream_options={"include_usage": True}))
    assert text == "" and [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage.prompt_tokens == 9
    assert fake.count(K("gemini-odd-1")) == 1
