"""The inbound boundary (``app.inbound``): what it refuses, what it accepts, and that whatever it
accepts every adapter either translates or refuses with ``AdapterError``."""

from __future__ import annotations

import time

import httpx
import openai
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from adapters import AdapterError, UpstreamRequest, adapter_for
from app.config import ProviderConfig
from app.errors import InvalidRequest
from app.inbound import ChatRequest, EmbeddingsRequest, parse_chat_request, parse_embeddings_request
from app.tokens import estimate_embedding_tokens, estimate_prompt_tokens
from balancer.catalog import target_for
from inbound_strategies import DEPTHS, MALFORMED, TRANSLATABLE, encode

HELLO = [{"role": "user", "content": "hello"}]
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def chat(**fields) -> dict:
    return {"model": "gpt-test", "messages": HELLO, **fields}


def tool(parameters) -> dict:
    return {"type": "function", "function": {"name": "get_weather", "parameters": parameters}}


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def refused(raw: bytes, parse=parse_chat_request) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse(raw)
    assert caught.value.status == 400
    return caught.value


# ------------------------------------------------------------------ what it refuses

CALL = {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
MALFORMED_CHATS = [
    ({"model": "gpt-test", "messages": [{"role": {"name": "user"}, "content": "x"}]}, "messages[0].role", "invalid_type"),
    ({"model": "gpt-test", "messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role", "invalid_type"),
    ({"model": "gpt-test", "messages": [HELLO[0], {"role": "robot", "content": "x"}]}, "messages[1].role", "invalid_value"),
    ({"model": "gpt-test", "messages": [{"content": "x"}]}, "messages[0].role", "missing_required_parameter"),
    (chat(stop=5), "stop", "invalid_type"),
    (chat(stop=True), "stop", "invalid_type"),
    (chat(stop=["a", 1]), "stop[1]", "invalid_type"),
    (chat(stop=["a", "b", "c", "d", "e"]), "stop", "invalid_value"),
    ({"model": "gpt-test", "messages": [HELLO[0], {"role": "assistant", "tool_calls": 5}]}, "messages[1].tool_calls", "invalid_type"),
    (
        {"model": "gpt-test", "messages": [HELLO[0], {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": 7}}]}]},
        "messages[1].tool_calls[0].function.name",
        "invalid_type",
    ),
    (
        {"model": "gpt-test", "messages": [HELLO[0], {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": 5}}]}]},
        "messages[1].tool_calls[0].function.arguments",
        "invalid_type",
    ),
    ({"model": "gpt-test", "messages": [HELLO[0], CALL, {"role": "tool", "content": "ok"}]}, "messages[2].tool_call_id", "missing_required_parameter"),
    (chat(tools=[tool([])]), "tools[0].function.parameters", "invalid_type"),
    (chat(tools=[tool("object")]), "tools[0].function.parameters", "invalid_type"),
    (chat(tools=[tool({"type": "object", "properties": []})]), "tools[0].function.parameters.properties", "invalid_type"),
    (chat(tools=[tool({"type": "object", "properties": "city"})]), "tools[0].function.parameters.properties", "invalid_type"),
    (chat(tools=[tool({"type": "object", "properties": {"city": {"anyOf": 3}}})]), "tools[0].function.parameters.properties.city.anyOf", "invalid_type"),
    (chat(tools=[tool({"type": "object", "properties": {"c": {"items": 3}}})]), "tools[0].function.parameters.properties.c.items", "invalid_type"),
    (chat(tools=[tool({"type": "object", "required": ["a", 1]})]), "tools[0].function.parameters.required[1]", "invalid_type"),
    (chat(tools=[tool({"type": 5})]), "tools[0].function.parameters.type", "invalid_type"),
    (chat(tools=[tool({"type": ["string", 5]})]), "tools[0].function.parameters.type[1]", "invalid_type"),
    (chat(tools=[tool({"enum": "a"})]), "tools[0].function.parameters.enum", "invalid_type"),
    (chat(tools=[tool({"$defs": [WEATHER]})]), "tools[0].function.parameters.$defs", "invalid_type"),
    (chat(tools=[tool({"$defs": {"w": 5}})]), "tools[0].function.parameters.$defs.w", "invalid_type"),
    (chat(tools=[tool({"format": ["date"]})]), "tools[0].function.parameters.format", "invalid_type"),
    (chat(tools=[{"type": "function"}]), "tools[0].function", "missing_required_parameter"),
    (chat(tools=[{"type": "function", "function": {"description": "d"}}]), "tools[0].function.name", "missing_required_parameter"),
    (chat(tools=[{"type": "function", "function": {"name": ""}}]), "tools[0].function.name", "invalid_value"),
    (chat(tools={"get_weather": WEATHER}), "tools", "invalid_type"),
    (chat(tool_choice="any"), "tool_choice", "invalid_value"),
    (chat(tool_choice={"type": "function"}), "tool_choice.function", "missing_required_parameter"),
    (chat(tool_choice={"type": "function", "function": {"name": 1}}), "tool_choice.function.name", "invalid_type"),
    (chat(response_format="json"), "response_format", "invalid_type"),
    (chat(response_format={"type": "json_schema", "json_schema": {"schema": WEATHER}}), "response_format.json_schema.name", "missing_required_parameter"),
    (chat(response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": [WEATHER]}}), "response_format.json_schema.schema", "invalid_type"),
    (chat(response_format={"json_schema": {}}), "response_format.type", "missing_required_parameter"),
    ({"model": "gpt-test", "messages": [{"role": "user", "content": 5}]}, "messages[0].content", "invalid_type"),
    ({"model": "gpt-test", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content[0].image_url", "missing_required_parameter"),
    ({"model": "gpt-test", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 5}}]}]}, "messages[0].content[0].image_url.url", "invalid_type"),
    ({"model": "gpt-test", "messages": [{"role": "user", "content": [{"type": 3}]}]}, "messages[0].content[0].type", "invalid_type"),
    ({"model": "gpt-test", "messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content[0].type", "missing_required_parameter"),
    ({"model": "gpt-test", "messages": [{"role": "user", "content": [{"type": "text", "text": ["x"]}]}]}, "messages[0].content[0].text", "invalid_type"),
    ({"model": "gpt-test", "messages": [{"role": "user", "content": [7]}]}, "messages[0].content[0]", "invalid_type"),
    (chat(temperature=3), "temperature", "invalid_value"),
    (chat(temperature="hot"), "temperature", "invalid_type"),
    (chat(top_p=-0.1), "top_p", "invalid_value"),
    (chat(presence_penalty=2.5), "presence_penalty", "invalid_value"),
    (chat(n=0), "n", "invalid_value"),
    (chat(top_logprobs=21), "top_logprobs", "invalid_value"),
    (chat(max_tokens=0), "max_tokens", "invalid_value"),
    (chat(max_tokens=1.5), "max_tokens", "invalid_type"),
    (chat(max_tokens=True), "max_tokens", "invalid_type"),
    (chat(max_completion_tokens="10"), "max_completion_tokens", "invalid_type"),
    (chat(seed=2**64 - 1), "seed", "invalid_value"),
    (chat(logit_bias={"50256": 101}), "logit_bias.50256", "invalid_value"),
    (chat(logit_bias=[1]), "logit_bias", "invalid_type"),
    (chat(metadata={"a": 1}), "metadata.a", "invalid_type"),
    (chat(safety_identifier="x" * 65), "safety_identifier", "invalid_value"),
    (chat(stream="yes"), "stream", "invalid_type"),
    (chat(stream=True, stream_options={"include_usage": "yes"}), "stream_options.include_usage", "invalid_type"),
    (chat(reasoning_effort=["high"]), "reasoning_effort", "invalid_type"),
    (chat(audio={"voice": "alloy"}), "audio.format", "missing_required_parameter"),
    (chat(modalities="text"), "modalities", "invalid_type"),
    (chat(parallel_tool_calls="no"), "parallel_tool_calls", "invalid_type"),
    ({"messages": HELLO}, "model", "missing_required_parameter"),
    ({"model": 4, "messages": HELLO}, "model", "invalid_type"),
    ({"model": "", "messages": HELLO}, "model", "invalid_value"),
    ({"model": "gpt-test"}, "messages", "missing_required_parameter"),
    ({"model": "gpt-test", "messages": []}, "messages", "invalid_value"),
    ({"model": "gpt-test", "messages": "hi"}, "messages", "invalid_type"),
    ({"model": "gpt-test", "messages": ["hi"]}, "messages[0]", "invalid_type"),
]


@pytest.mark.parametrize(("body", "param", "code"), MALFORMED_CHATS, ids=[case[1] + "-" + case[2] for case in MALFORMED_CHATS])
def test_malformed_chat_bodies_are_400_naming_the_param(body, param, code):
    error = refused(orjson.dumps(body))
    assert (error.param, error.code) == (param, code)
    assert f"'{param}'" in error.message
    assert error.envelope() == {"error": {"message": error.message, "type": "invalid_request_error", "param": param, "code": code}}


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b'"text"', b"null", b'{"a": 1e400}', b"\xff\xfe"])
def test_bytes_that_are_not_one_json_object_are_invalid_json(raw):
    for parse in (parse_chat_request, parse_embeddings_request):
        error = refused(raw, parse)
        assert (error.param, error.code) == (None, "invalid_json")


@pytest.mark.parametrize(
    ("prefix", "suffix", "param"),
    [
        (b'{"model": "gpt-test", "messages": [{"role": "user", "content": "x"}], "extra": ', b"}", "extra"),
        (b'{"model": "gpt-test", "messages": [{"role": "user", "content": "x", "cache": ', b"}]}", "messages"),
        (b'{"model": "gpt-test", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "default": ', b"}}}]}", "tools"),
        (b'{"model": "gpt-test", "messages": [{"role": "user", "content": "x"}], "web_search_options": {"a": ', b"}}", "web_search_options"),
        (b'{"model": "gpt-test", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {"a": ', b"}}}]}]}", "messages"),
    ],
    ids=["unknown-field", "unknown-message-field", "schema-default", "free-object", "object-arguments"],
)
def test_json_nested_a_thousand_levels_deep_is_400_naming_the_top_level_field(prefix, suffix, param):
    # orjson reads this (up to 1,024 levels) but cannot write it again: it used to crash the adapters.
    error = refused(prefix + nested(1000) + suffix)
    assert (error.param, error.code) == (param, "invalid_value")
    assert "64 levels" in error.message


def test_nesting_is_counted_from_the_body_and_64_levels_pass():
    head = b'{"model": "gpt-test", "messages": [{"role": "user", "content": "x"}], "extra": '
    assert parse_chat_request(head + nested(64) + b"}").body["extra"]  # the deepest array is at level 64
    assert refused(head + nested(65) + b"}").param == "extra"
    schema = {"type": "object"}
    for _ in range(30):  # tools[0].function.parameters is at level 4, each property two more: 64
        schema = {"type": "object", "properties": {"p": schema}}
    assert parse_chat_request(orjson.dumps(chat(tools=[tool(schema)]))).body["tools"]
    too_deep = {"type": "object", "properties": {"p": schema}}
    assert refused(orjson.dumps(chat(tools=[tool(too_deep)]))).param == "tools"


MALFORMED_EMBEDDINGS = [
    ({"model": "e"}, "input", "missing_required_parameter"),
    ({"input": "x"}, "model", "missing_required_parameter"),
    ({"model": "e", "input": ""}, "input", "invalid_value"),
    ({"model": "e", "input": []}, "input", "invalid_value"),
    ({"model": "e", "input": 5}, "input", "invalid_type"),
    ({"model": "e", "input": ["a", 1]}, "input[1]", "invalid_type"),
    ({"model": "e", "input": ["a", ""]}, "input[1]", "invalid_value"),
    ({"model": "e", "input": [1, "a"]}, "input[1]", "invalid_type"),
    ({"model": "e", "input": [[1], []]}, "input[1]", "invalid_value"),
    ({"model": "e", "input": [[1], [2, "x"]]}, "input[1][1]", "invalid_type"),
    ({"model": "e", "input": [{"text": "a"}]}, "input[0]", "invalid_type"),
    ({"model": "e", "input": ["a"] * 2049}, "input", "invalid_value"),
    ({"model": "e", "input": "a", "encoding_format": "int8"}, "encoding_format", "invalid_value"),
    ({"model": "e", "input": "a", "dimensions": 0}, "dimensions", "invalid_value"),
    ({"model": "e", "input": "a", "dimensions": "256"}, "dimensions", "invalid_type"),
    ({"model": "e", "input": "a", "user": 5}, "user", "invalid_type"),
]


@pytest.mark.parametrize(("body", "param", "code"), MALFORMED_EMBEDDINGS, ids=[f"{case[1]}-{case[2]}-{i}" for i, case in enumerate(MALFORMED_EMBEDDINGS)])
def test_malformed_embeddings_bodies_are_400_naming_the_param(body, param, code):
    error = refused(orjson.dumps(body), parse_embeddings_request)
    assert (error.param, error.code) == (param, code)


def test_deep_json_in_an_embeddings_body_is_400_naming_the_field():
    error = refused(b'{"model": "e", "input": "a", "extra_body": ' + nested(1000) + b"}", parse_embeddings_request)
    assert (error.param, error.code) == ("extra_body", "invalid_value")


# ------------------------------------------------------------------ what it accepts: what the OpenAI SDK sends


class City(BaseModel):
    name: str
    country: str | None = None


class Forecast(BaseModel):
    city: City
    days: list[float]
    unit: str = "c"


def sdk_bodies(*calls) -> list[bytes]:
    """The bodies the official OpenAI SDK sends for each ``call(client)``, captured at its transport."""
    sent: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        if b'"stream":true' in request.content:
            return httpx.Response(200, content=b"data: [DONE]\n\n", headers={"content-type": "text/event-stream"})
        message = {"role": "assistant", "content": Forecast(city=City(name="Paris"), days=[1.5]).model_dump_json(), "refusal": None}
        completion = {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}]}
        return httpx.Response(200, json=completion)

    client = openai.OpenAI(api_key="sk-test", base_url="http://gateway.test/v1", http_client=httpx.Client(transport=httpx.MockTransport(answer)))
    for call in calls:
        call(client)
    return sent


PNG = "data:image/png;base64,iVBORw0KGgo="
CONVERSATION = [
    {"role": "developer", "content": "Answer with tools when you can."},
    {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
    {"role": "user", "content": [{"type": "text", "text": "Weather where this photo was taken?"}, {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}}, {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}}]},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "Forecast", "arguments": '{"city": {"name": "Paris"}, "days": []}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": '{"days": [21.5]}'}]},
    {"role": "assistant", "content": [{"type": "text", "text": "Sunny."}], "name": "bot", "refusal": None},
    {"role": "user", "name": "ann", "content": [{"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}, {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}}]},
]
SDK_CALLS = {
    "plain": lambda c: c.chat.completions.create(
        model="gpt-4o-mini", messages=HELLO, temperature=0.2, top_p=1, max_tokens=64, stop=["\n\n", "END"], seed=7, n=1, user="u-1",
        presence_penalty=0, frequency_penalty=0.5, logprobs=True, top_logprobs=3, logit_bias={"50256": -100},
    ),
    "tools": lambda c: c.chat.completions.create(
        model="gpt-4o", messages=CONVERSATION, tools=[openai.pydantic_function_tool(Forecast), openai.pydantic_function_tool(City, name="city")],
        tool_choice={"type": "function", "function": {"name": "Forecast"}}, parallel_tool_calls=False, max_completion_tokens=500,
    ),
    "json_schema": lambda c: c.chat.completions.parse(model="gpt-4o", messages=HELLO, response_format=Forecast),
    "json_object": lambda c: c.chat.completions.create(model="gpt-4o", messages=HELLO, response_format={"type": "json_object"}, store=True, metadata={"team": "a"}),
    "audio": lambda c: c.chat.completions.create(
        model="gpt-4o-audio-preview", messages=CONVERSATION[-1:], modalities=["text", "audio"], audio={"voice": "alloy", "format": "wav"},
    ),
    "stream": lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True, stream_options={"include_usage": True}),
    "reasoning": lambda c: c.chat.completions.create(
        model="o4-mini", messages=HELLO, reasoning_effort="high", service_tier="flex", verbosity="low", prompt_cache_key="k", safety_identifier="h-1",
        prediction={"type": "content", "content": "draft"}, max_completion_tokens=2000,
    ),
    "nulls": lambda c: c.chat.completions.create(model="gpt-4o-mini", messages=HELLO, extra_body={"temperature": None, "stop": None, "tools": None, "x_vendor": {"a": [1]}}),
}


@pytest.mark.parametrize("name", SDK_CALLS)
def test_what_the_openai_sdk_sends_is_accepted_untouched(name):
    (raw,) = sdk_bodies(SDK_CALLS[name])
    request = parse_chat_request(raw)
    assert isinstance(request, ChatRequest)
    assert request.body == orjson.loads(raw)
    assert request.model == orjson.loads(raw)["model"]
    assert request.prompt_tokens == estimate_prompt_tokens(request.body)


def test_chat_request_fields():
    (plain, tools, stream) = sdk_bodies(SDK_CALLS["plain"], SDK_CALLS["tools"], SDK_CALLS["stream"])
    first = parse_chat_request(plain)
    assert (first.model, first.stream, first.include_usage, first.max_tokens) == ("gpt-4o-mini", False, False, 64)
    assert first.prompt_tokens == 1 + 4 + 3  # "hello" is one token, one message, the reply's priming
    second = parse_chat_request(tools)
    assert second.max_tokens == 500
    calls = CONVERSATION[3]["tool_calls"]
    texts = "Answer with tools when you can." "Be brief." "Weather where this photo was taken?" '{"days": [21.5]}' "Sunny."
    chars = len(texts) + len(orjson.dumps(calls)) + len(orjson.dumps(orjson.loads(tools)["tools"]))
    assert second.prompt_tokens == chars // 4 + 4 * len(CONVERSATION) + 800 * 2 + 3
    third = parse_chat_request(stream)
    assert (third.stream, third.include_usage, third.max_tokens) == (True, True, None)
    assert parse_chat_request(orjson.dumps(chat(stream=False, stream_options={"include_usage": True}))).include_usage is False
    assert parse_chat_request(orjson.dumps(chat(max_tokens=10, max_completion_tokens=None))).max_tokens == 10


def test_lenient_where_clients_are():
    body = {
        "model": "gpt-test",
        "messages": [
            {"role": "user", "content": ["bare string part", {"type": "video_url", "video_url": {"url": "https://x.test/v.mp4"}}], "cache_control": {"type": "ephemeral"}},
            {"role": "assistant", "content": None, "reasoning_content": "thinking...", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": {"a": 1}}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ],
        "tools": [{"function": {"name": "f"}}, {"type": "web_search_preview", "search_context_size": "low"}],
        "temperature": 1,
        "top_k": -1,
        "stop": "END",
        "response_format": {"type": "regex", "regex": "[a-z]+"},
        "tool_choice": None,
        "chat_template_kwargs": {"enable_thinking": False},
    }
    request = parse_chat_request(orjson.dumps(body))
    assert request.body == body
    assert request.prompt_tokens == estimate_prompt_tokens(body)
    as_part = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "bare string part"}]}]}
    bare = {"model": "m", "messages": [{"role": "user", "content": ["bare string part"]}]}
    assert parse_chat_request(orjson.dumps(bare)).prompt_tokens == parse_chat_request(orjson.dumps(as_part)).prompt_tokens == 4 + 4 + 3
    # OpenAI-type upstreams get every field the boundary did not know, as the client sent it.
    upstream = orjson.loads(adapter_for("openai").build_chat(request.body, TARGETS["openai"], stream=False).body)
    assert {name: value for name, value in upstream.items() if name != "model"} == {name: value for name, value in body.items() if name != "model"}


def test_embeddings_request_fields():
    for body, tokens in [
        ({"model": "e", "input": "a" * 10}, 2),
        ({"model": "e", "input": ["abcd", "x"]}, 2),
        ({"model": "e", "input": [1, 2, 3]}, 3),
        ({"model": "e", "input": [[1, 2], [3]], "encoding_format": "base64", "dimensions": 256, "user": "u", "vendor_flag": True}, 3),
    ]:
        request = parse_embeddings_request(orjson.dumps(body))
        assert isinstance(request, EmbeddingsRequest)
        assert (request.body, request.model, request.prompt_tokens) == (body, "e", tokens)
        assert request.prompt_tokens == estimate_embedding_tokens(body)


# ------------------------------------------------------------------ every accepted body: translated or refused, never a crash

PROVIDERS = {
    "openai": ProviderConfig(id="p-openai", type="openai", model="up-model", api_keys=["sk-a"]),
    "custom": ProviderConfig(id="p-custom", type="custom", model="up-model", api_keys=["sk-b"], base_url="http://vllm.test", limits={"max_tokens": 100}),
    "anthropic": ProviderConfig(id="p-anthropic", type="anthropic", model="up-model", api_keys=["sk-c"]),
    "gemini": ProviderConfig(id="p-gemini", type="gemini", model="up-model", api_keys=["sk-d"]),
}
TARGETS = {kind: target_for(provider, "up-model") for kind, provider in PROVIDERS.items()}
HYPOTHESIS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def translated_or_refused(build) -> None:
    try:
        request = build()
    except AdapterError as error:
        assert error.param is None or isinstance(error.param, str)
        return
    assert isinstance(request, UpstreamRequest)
    orjson.loads(request.body)


def parsed_or_refused(parse, raw: bytes):
    try:
        return parse(raw)
    except InvalidRequest as error:
        assert error.code in ("invalid_json", "invalid_type", "invalid_value", "missing_required_parameter")
        assert (error.param is None) == (error.code == "invalid_json")
        return None


def check_chat_body(body, depth: int) -> None:
    raw = encode(body, depth)
    request = parsed_or_refused(parse_chat_request, raw)
    if request is None:
        return
    assert request.prompt_tokens == estimate_prompt_tokens(request.body)
    before = orjson.dumps(request.body)
    for kind, target in TARGETS.items():
        for stream in (False, True):
            translated_or_refused(lambda: adapter_for(kind).build_chat(request.body, target, stream=stream))
    assert orjson.dumps(request.body) == before  # adapters must not change the client's body


@HYPOTHESIS
@given(MALFORMED.chat, DEPTHS)
def test_any_chat_body_is_a_chat_request_or_a_400_and_every_adapter_translates_or_refuses_it(body, depth):
    check_chat_body(body, depth)


@HYPOTHESIS
@given(TRANSLATABLE.chat, DEPTHS)
def test_translatable_chat_bodies_get_deep_into_every_translator_without_a_crash(body, depth):
    check_chat_body(body, depth)


@HYPOTHESIS
@given(st.one_of(MALFORMED.embeddings, TRANSLATABLE.embeddings), DEPTHS)
def test_any_embeddings_body_is_a_request_or_a_400_and_every_adapter_translates_or_refuses_it(body, depth):
    raw = encode(body, depth)
    request = parsed_or_refused(parse_embeddings_request, raw)
    if request is None:
        return
    assert request.prompt_tokens == estimate_embedding_tokens(request.body)
    for kind, target in TARGETS.items():
        translated_or_refused(lambda: adapter_for(kind).build_embeddings(request.body, target))


# ------------------------------------------------------------------ accepted bodies the adapters used to crash on

DEEP_OBJECT = '{"a": ' * 300 + "1" + "}" * 300


def accepted(body: dict) -> dict:
    return parse_chat_request(orjson.dumps(body)).body


def test_tool_call_arguments_nested_too_deeply_are_refused_by_the_translators():
    # The boundary cannot see into the string; orjson reads it and then cannot write it again.
    body = accepted({"model": "m", "messages": [HELLO[0], {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": DEEP_OBJECT}}]}]})
    for kind in ("anthropic", "gemini"):
        with pytest.raises(AdapterError) as caught:
            adapter_for(kind).build_chat(body, TARGETS[kind], stream=False)
        assert caught.value.param == "messages[1].tool_calls[0]"
        assert "64 levels" in caught.value.message
    assert orjson.loads(adapter_for("openai").build_chat(body, TARGETS["openai"], stream=False).body)["messages"] == body["messages"]


def test_a_tool_result_nested_too_deeply_goes_to_gemini_as_text():
    call = {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    body = accepted({"model": "m", "messages": [HELLO[0], call, {"role": "tool", "tool_call_id": "c1", "content": DEEP_OBJECT}]})
    sent = orjson.loads(adapter_for("gemini").build_chat(body, TARGETS["gemini"], stream=False).body)
    assert sent["contents"][-1]["parts"] == [{"functionResponse": {"name": "f", "response": {"result": DEEP_OBJECT}}}]


def gemini_tools(parameters: dict) -> dict:
    body = accepted(chat(tools=[tool(parameters)]))
    return orjson.loads(adapter_for("gemini").build_chat(body, TARGETS["gemini"], stream=False).body)["tools"]


def test_gemini_refs_into_values_that_are_not_schemas():
    # $ref may point anywhere in the document, into an example value the boundary only depth-checks.
    kept = gemini_tools({"type": "object", "properties": {"a": {"$ref": "#/default"}}, "default": {"type": "string", "format": {"x": 1}}})
    assert kept[0]["functionDeclarations"][0]["parameters"]["properties"]["a"] == {"type": "string"}
    for default in ({"properties": [1]}, {"anyOf": {"a": 1}}, {"type": [{"a": 1}]}):
        with pytest.raises(AdapterError) as caught:
            gemini_tools({"type": "object", "properties": {"a": {"$ref": "#/default"}}, "default": default})
        assert caught.value.param == "tools[0].function.parameters.properties.a"


def test_gemini_ref_chains_and_fan_outs_are_bounded():
    chain = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(1500)} | {"d1500": {"type": "string"}}
    with pytest.raises(AdapterError, match="chained more than 64"):
        gemini_tools({"type": "object", "properties": {"a": {"$ref": "#/$defs/d0"}}, "$defs": chain})  # was a RecursionError
    fan_out = {f"d{i}": {"type": "object", "properties": {"x": {"$ref": f"#/$defs/d{i + 1}"}, "y": {"$ref": f"#/$defs/d{i + 1}"}}} for i in range(22)}
    started = time.perf_counter()
    with pytest.raises(AdapterError, match="too large"):
        gemini_tools({"type": "object", "properties": {"a": {"$ref": "#/$defs/d0"}}, "$defs": fan_out | {"d22": {"type": "string"}}})
    assert time.perf_counter() - started < 5  # 2**22 schemas: 157 s of one event loop before the limit


# ------------------------------------------------------------------ the decoder benchmark measures ways that check


def test_every_way_the_benchmark_times_accepts_its_bodies_counts_the_same_prompt_and_refuses_a_bad_one():
    from bench import inbound_speed

    for name, raw in inbound_speed.BODIES.items():
        ways = inbound_speed.EMBEDDING_WAYS if name.startswith("embeddings") else inbound_speed.CHAT_WAYS
        expected = ways["(a) inbound"](raw).prompt_tokens
        for way, call in ways.items():
            if way not in ("decode only", "(a) inbound"):
                assert call(raw)[-1] == expected, (name, way)
    for way, call in inbound_speed.CHAT_WAYS.items():
        if way != "decode only":
            with pytest.raises((InvalidRequest, ValueError)):  # msgspec's and pydantic's errors are ValueErrors
                call(inbound_speed.MALFORMED)
    assert inbound_speed.error_paths()["(a) inbound"] == "tools[0].function.parameters.properties.city.type (invalid_type)"
