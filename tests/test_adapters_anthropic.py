"""The Anthropic translator, fed with requests and with written wire cases (``tests/fixtures``)."""

from __future__ import annotations

import json

import orjson
import pytest

from adapter_cases import chat, sent, target, user, written
from adapters import AdapterError, UpstreamError
from adapters.anthropic import AnthropicAdapter, anthropic_stop_reason_to_finish_reason
from balancer.health import Outcome
from streams import assemble, chunks_of, events_of, replay

ADAPTER = AnthropicAdapter()
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
PNG = "data:image/png;base64,iVBORw0KGgo="


def build(request: dict, stream: bool = False, **target_fields) -> dict:
    return sent(ADAPTER.build_chat(request, target("anthropic", **target_fields), stream=stream))


def test_url_auth_and_version_header():
    request = ADAPTER.build_chat(chat(user("hi")), target("anthropic", base_url="http://h.test/v1"), stream=False)
    assert request.url == "http://h.test/v1/messages"
    assert ADAPTER.build_chat(chat(user("hi")), target("anthropic", base_url="http://h.test"), stream=False).url == "http://h.test/v1/messages"
    assert ADAPTER.auth_headers("sk-ant-x") == {"x-api-key": "sk-ant-x"}
    assert ADAPTER.default_headers == {"anthropic-version": "2023-06-01"}
    assert "sk-ant-x" not in request.url and b"sk-ant-x" not in request.body


def test_system_and_developer_messages_merge_into_system_wherever_they_stand():
    body = build(chat({"role": "system", "content": "Be brief."}, user("hi"), {"role": "developer", "content": [{"type": "text", "text": "Use French."}]}))
    assert body["system"] == "Be brief.\n\nUse French."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert body["model"] == "up-model"


def test_tool_calls_and_results_become_blocks_and_same_role_turns_merge():
    messages = [
        user("weather in Hanoi and Hue?"),
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Hanoi"}'}},
            {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
        ]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "31C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "29C"}]},
        user("and tomorrow?"),
    ]
    body = build(chat(*messages, tools=TOOLS))
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Hanoi"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "31C"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "29C"},
        {"type": "text", "text": "and tomorrow?"},
    ]
    assert body["tools"] == [{"name": "get_weather", "input_schema": TOOLS[0]["function"]["parameters"], "description": "Weather now"}]


def test_images_become_base64_or_url_sources():
    content = [{"type": "text", "text": "compare"}, {"type": "image_url", "image_url": {"url": PNG}}, {"type": "image_url", "image_url": {"url": "https://img.test/a.jpg"}}]
    blocks = build(chat(user(content)))["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://img.test/a.jpg"}}


def test_parameters_map_by_the_table():
    body = build(chat(user("x"), temperature=0.2, top_p=0.9, stop="END", user="u-7", max_completion_tokens=300, top_k=5, n=1, logprobs=False, prompt_cache_key="k"))
    assert (body["temperature"], body["top_p"], body["stop_sequences"], body["metadata"], body["max_tokens"], body["top_k"]) == (0.2, 0.9, ["END"], {"user_id": "u-7"}, 300, 5)
    for absent in ("n", "logprobs", "prompt_cache_key", "stop", "user"):
        assert absent not in body


def test_max_tokens_default_and_cap():
    assert build(chat(user("x")))["max_tokens"] == 4096
    assert build(chat(user("x")), max_tokens=1000)["max_tokens"] == 1000  # limits.max_tokens
    assert build(chat(user("x")), default_max_tokens=512, max_tokens=1000)["max_tokens"] == 512
    assert build(chat(user("x"), max_tokens=5000), max_tokens=1000)["max_tokens"] == 1000


@pytest.mark.parametrize(
    "choice,parallel,expected",
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "function": {"name": "get_weather"}}, None, {"type": "tool", "name": "get_weather"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ],
)
def test_tool_choice_and_parallel_tool_calls(choice, parallel, expected):
    body = build(chat(user("x"), tools=TOOLS, tool_choice=choice, parallel_tool_calls=parallel))
    assert body["tool_choice"] == expected


@pytest.mark.parametrize(
    "params,param",
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"seed": 1}, "seed"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"audio": {"voice": "alloy"}}, "audio"),
        ({"reasoning_effort": "high"}, "reasoning_effort"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"some_vendor_flag": True}, "some_vendor_flag"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}}}, "response_format.json_schema.schema"),
    ],
)
def test_what_anthropic_cannot_honour_is_a_400_naming_the_param(params, param):
    with pytest.raises(AdapterError) as caught:
        build(chat(user("x"), **params))
    assert caught.value.param == param
    assert param.split(".")[0] in caught.value.message


def test_drop_params_lets_an_operator_drop_what_would_be_rejected():
    body = build(chat(user("x"), seed=3, some_vendor_flag=True), drop_params=("seed", "some_vendor_flag"))
    assert "seed" not in body and "some_vendor_flag" not in body


def test_a_client_tool_may_not_take_the_reserved_name():
    tools = [{"type": "function", "function": {"name": "respond_with_json", "parameters": {"type": "object"}}}]
    with pytest.raises(AdapterError) as caught:
        build(chat(user("x"), tools=tools))
    assert caught.value.param == "tools"


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.mark.parametrize(
    "tools,choice,expected_choice",
    [
        (None, None, {"type": "tool", "name": "respond_with_json"}),
        (TOOLS, None, {"type": "any"}),
        (TOOLS, "none", {"type": "tool", "name": "respond_with_json"}),
        (TOOLS, {"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    ],
    ids=["alone", "with-tools", "tools-disabled", "named-tool"],
)
def test_response_format_is_emulated_with_a_forced_tool(tools, choice, expected_choice):
    response_format = {"type": "json_schema", "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True}}
    body = build(chat(user("x"), tools=tools, tool_choice=choice, response_format=response_format))
    assert body["tools"][-1]["name"] == "respond_with_json" and body["tools"][-1]["input_schema"] == SCHEMA
    assert body["tool_choice"] == expected_choice
    json_object = build(chat(user("x"), response_format={"type": "json_object"}))
    assert json_object["tools"] == [{**json_object["tools"][0], "input_schema": {"type": "object"}}]
    assert "tools" not in build(chat(user("x"), response_format={"type": "text"}))


def test_response_format_answer_comes_back_as_content():
    body = orjson.loads(ADAPTER.parse_chat(written("anthropic/response_format_tool.json"), model="m").body)
    message = body["choices"][0]["message"]
    assert json.loads(message["content"]) == {"city": "Hanoi", "temperature_c": 31}
    assert "tool_calls" not in message and body["choices"][0]["finish_reason"] == "stop"
    chunks = chunks_of(replay(ADAPTER.stream_translator(model="m", include_usage=False), events_of(written("anthropic/response_format_tool.sse"))))
    got = assemble(chunks)
    assert json.loads(got.content) == {"city": "Hanoi"} and got.tool_calls == {} and got.finish_reasons == ["stop"]


def test_stream_with_thinking_parallel_tools_and_cache_usage(schemas_if_present, warnings_logged):
    translator = ADAPTER.stream_translator(model="m", include_usage=True)
    chunks = chunks_of(replay(translator, events_of(written("anthropic/parallel_tools_cache.sse"))))
    for chunk in chunks:
        if schemas_if_present:
            schemas_if_present.check("CreateChatCompletionStreamResponse", chunk)
    got = assemble(chunks)
    assert got.content == "Checking both."  # the thinking block is not part of the answer
    assert got.tool_calls == {
        0: {"id": "toolu_written_a", "name": "get_weather", "arguments": '{"city": "Hanoi"}'},
        1: {"id": "toolu_written_b", "name": "list_cities", "arguments": "{}"},
    }
    assert got.finish_reasons == ["tool_calls"] and got.roles == ["assistant"]
    assert got.usage == [{"prompt_tokens": 2140, "completion_tokens": 57, "total_tokens": 2197, "prompt_tokens_details": {"cached_tokens": 2000}}]
    assert (translator.usage.prompt_tokens, translator.usage.cached_tokens) == (2140, 2000)
    assert [r["extra"].get("event_type") for r in warnings_logged] == ["brand_new_event"]


def test_error_event_mid_stream_is_a_typed_upstream_error():
    translator = ADAPTER.stream_translator(model="m", include_usage=False)
    frames = []
    with pytest.raises(UpstreamError) as caught:
        for event in events_of(written("anthropic/error_midstream.sse")):
            frames.extend(translator.feed(event))
    assert len(frames) == 1 and b"Partial ans" in frames[0]
    error = caught.value
    assert error.outcome is Outcome.OVERLOADED
    assert error.envelope == {"error": {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded"}}


def test_stream_cut_before_message_stop_is_an_error():
    events = events_of(written("anthropic/response_format_tool.sse"))[:-1]
    translator = ADAPTER.stream_translator(model="m", include_usage=True)
    with pytest.raises(UpstreamError, match="message_stop"):
        replay(translator, events)


def test_malformed_stream_event_carries_the_raw_text():
    from adapters.base import SSEEvent

    with pytest.raises(UpstreamError) as caught:
        ADAPTER.stream_translator(model="m", include_usage=False).feed(SSEEvent(b"{not json", "content_block_delta"))
    assert "{not json" in caught.value.message


def test_unknown_stop_reason_is_stop_with_a_warning_and_cache_counts_in_prompt(warnings_logged):
    result = ADAPTER.parse_chat(written("anthropic/unknown_stop_reason.json"), model="m")
    body = orjson.loads(result.body)
    assert body["choices"][0]["message"]["content"] == "First part. Second part."
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 325, "completion_tokens": 7, "total_tokens": 332, "prompt_tokens_details": {"cached_tokens": 300}}
    assert [r["extra"].get("stop_reason") for r in warnings_logged] == ["a_reason_from_the_future"]


@pytest.mark.parametrize(
    "reason,finish",
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter")],
)
def test_stop_reasons(reason, finish):
    assert anthropic_stop_reason_to_finish_reason(reason) == finish


@pytest.mark.parametrize(
    "status,error_type,outcome,retryable",
    [
        (429, "rate_limit_error", Outcome.RATE_LIMITED, True),
        (529, "overloaded_error", Outcome.OVERLOADED, True),
        (500, "api_error", Outcome.SERVER_ERROR, True),
        (400, "invalid_request_error", Outcome.CLIENT_ERROR, False),
        (401, "authentication_error", Outcome.AUTH, True),
        (418, "teapot_error", Outcome.CLIENT_ERROR, False),
    ],
)
def test_errors_map_to_outcomes_and_openai_envelopes(status, error_type, outcome, retryable):
    raw = orjson.dumps({"type": "error", "error": {"type": error_type, "message": f"says {error_type}"}})
    error = ADAPTER.parse_error(status, {"retry-after": "17"}, raw)
    assert error.outcome is outcome and error.outcome.retryable is retryable
    assert error.retry_after == 17.0 and error.status == status
    assert error.envelope["error"]["message"] == f"says {error_type}"
    assert set(error.envelope["error"]) == {"message", "type", "param", "code"}


def test_no_embeddings():
    with pytest.raises(AdapterError) as caught:
        ADAPTER.build_embeddings({"model": "m", "input": "x"}, target("anthropic"))
    assert caught.value.param == "model" and "embeddings" in caught.value.message
