"""The Responses API translators (``adapters.responses``, ``responses_objects``, ``responses_stream``).

Requests are checked against tables of expected chat requests and expected errors, and fuzzed
with hypothesis (any JSON gives a chat request or an ``AdapterError``, nothing else). Answers and
every stream event are validated against OpenAI's schemas when ``shared/spec`` is present. The
recorded real Responses stream is relayed by ``NativeResponsesStream``. Finally the official
``openai`` SDK talks to a loopback aiohttp server that answers with these translators, which
proves the shapes (not the gateway's routing).
"""

from __future__ import annotations

import asyncio
import copy
import threading
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import AdapterError, Outcome, SSEEvent, UpstreamError, Usage
from adapters.responses import input_items, replay_messages, response_to_chat_messages, responses_param_for, responses_request_to_chat
from adapters.responses_objects import read_response_usage, chat_completion_to_response, new_item_id, response_usage
from adapters.responses_stream import NativeResponsesStream, ResponsesStream, response_to_events
from streams import events_of

MODEL = "gpt-4o-2024-08-06"
CREATED = 1741476777
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False},
    "strict": True,
}
STOCK_TOOL = {"type": "function", "name": "get_stock_price", "parameters": {"type": "object", "properties": {"ticker": {"type": "string"}}}, "strict": None}
CHAT_WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": WEATHER_TOOL["parameters"], "strict": True},
}


# ------------------------------------------------------------------ requests


def user(content):
    return {"role": "user", "content": content}


REQUESTS = [
    ("string input", {"model": "m", "input": "Hi"}, {"model": "m", "messages": [user("Hi")]}),
    (
        "instructions, then history, then input",
        {"model": "m", "instructions": "Be brief.", "input": "And now?"},
        {"model": "m", "messages": [{"role": "system", "content": "Be brief."}, user("Before"), {"role": "assistant", "content": "Ok"}, user("And now?")]},
    ),
    (
        "text and images (URL with detail, data URL without)",
        {
            "model": "m",
            "input": [
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is in these?"},
                        {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
                        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
                    ],
                }
            ],
        },
        {
            "model": "m",
            "messages": [
                user(
                    [
                        {"type": "text", "text": "What is in these?"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}},
                    ]
                )
            ],
        },
    ),
    (
        "easy messages of every role; one text part reads as a string; reasoning dropped",
        {
            "model": "m",
            "input": [
                {"role": "developer", "content": "Answer in French."},
                {"role": "system", "content": [{"type": "input_text", "text": "Stay polite."}]},
                {"role": "user", "content": "Hello"},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
                {
                    "type": "message",
                    "id": "msg_1",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Bonjour", "annotations": [], "logprobs": []}],
                },
                {"role": "assistant", "content": [{"type": "output_text", "text": "Non."}, {"type": "refusal", "refusal": "I can't."}]},
            ],
        },
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": "Answer in French."},
                {"role": "system", "content": "Stay polite."},
                user("Hello"),
                {"role": "assistant", "content": "Bonjour"},
                {"role": "assistant", "content": [{"type": "text", "text": "Non."}, {"type": "refusal", "refusal": "I can't."}]},
            ],
        },
    ),
    (
        "function calls join the assistant turn before them; outputs become tool messages",
        {
            "model": "m",
            "input": [
                user("Weather in Paris and AAPL?"),
                {"role": "assistant", "content": "Looking both up."},
                {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "get_weather", "arguments": '{"city":"Paris"}', "status": "completed"},
                {"type": "function_call", "call_id": "call_b", "name": "get_stock_price", "arguments": '{"ticker":"AAPL"}'},
                {"type": "function_call_output", "call_id": "call_a", "output": '{"temp":18}'},
                {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "189.1"}, {"type": "input_text", "text": "USD"}]},
                {"type": "function_call", "call_id": "call_c", "name": "get_weather", "arguments": "{}"},
            ],
        },
        {
            "model": "m",
            "messages": [
                user("Weather in Paris and AAPL?"),
                {
                    "role": "assistant",
                    "content": "Looking both up.",
                    "tool_calls": [
                        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                        {"id": "call_b", "type": "function", "function": {"name": "get_stock_price", "arguments": '{"ticker":"AAPL"}'}},
                    ],
                },
                {"role": "tool", "tool_call_id": "call_a", "content": '{"temp":18}'},
                {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "189.1"}, {"type": "text", "text": "USD"}]},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "call_c", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            ],
        },
    ),
    (
        "sampling, reasoning, user and logprobs",
        {
            "model": "m",
            "input": "x",
            "temperature": 0.2,
            "top_p": 0.9,
            "max_output_tokens": 256,
            "parallel_tool_calls": False,
            "reasoning": {"effort": "low", "summary": "auto"},
            "safety_identifier": "u-hash",
            "top_logprobs": 3,
        },
        {
            "model": "m",
            "messages": [user("x")],
            "temperature": 0.2,
            "top_p": 0.9,
            "max_completion_tokens": 256,
            "parallel_tool_calls": False,
            "reasoning_effort": "low",
            "user": "u-hash",
            "logprobs": True,
            "top_logprobs": 3,
        },
    ),
    (
        "user wins over safety_identifier; include asks for logprobs",
        {"model": "m", "input": "x", "user": "u1", "safety_identifier": "s1", "include": ["message.output_text.logprobs"], "top_logprobs": 0},
        {"model": "m", "messages": [user("x")], "user": "u1", "logprobs": True},
    ),
    (
        "function tools and a named tool choice",
        {"model": "m", "input": "x", "tools": [WEATHER_TOOL, STOCK_TOOL], "tool_choice": {"type": "function", "name": "get_weather"}},
        {
            "model": "m",
            "messages": [user("x")],
            "tools": [CHAT_WEATHER, {"type": "function", "function": {"name": "get_stock_price", "parameters": STOCK_TOOL["parameters"]}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
    ),
    ("tool_choice required", {"model": "m", "input": "x", "tool_choice": "required"}, {"model": "m", "messages": [user("x")], "tool_choice": "required"}),
    (
        "json_schema format and verbosity",
        {
            "model": "m",
            "input": "x",
            "text": {
                "format": {"type": "json_schema", "name": "city", "description": "A city", "schema": {"type": "object"}, "strict": True},
                "verbosity": "low",
            },
        },
        {
            "model": "m",
            "messages": [user("x")],
            "response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object"}, "strict": True, "description": "A city"}},
            "verbosity": "low",
        },
    ),
    ("json_object format", {"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}}, {"model": "m", "messages": [user("x")], "response_format": {"type": "json_object"}}),
    ("text format is the default", {"model": "m", "input": "x", "text": {"format": {"type": "text"}}}, {"model": "m", "messages": [user("x")]}),
    (
        "stream asks the hub for usage",
        {"model": "m", "input": "x", "stream": True},
        {"model": "m", "messages": [user("x")], "stream": True, "stream_options": {"include_usage": True}},
    ),
    (
        "gateway-only fields and explicit nulls stay out of the hub request",
        {
            "model": "m",
            "input": "x",
            "store": False,
            "metadata": {"trace": "t1"},
            "previous_response_id": "resp_1",
            "include": ["reasoning.encrypted_content"],
            "truncation": "disabled",
            "service_tier": "auto",
            "prompt_cache_key": "k",
            "background": False,
            "stream": False,
            "stream_options": {"include_obfuscation": False},
            "conversation": None,
            "max_tool_calls": None,
            "temperature": None,
        },
        {"model": "m", "messages": [user("x")]},
    ),
]


@pytest.mark.parametrize("body,expected", [case[1:] for case in REQUESTS], ids=[case[0] for case in REQUESTS])
def test_request_translation(body, expected):
    history = [user("Before"), {"role": "assistant", "content": "Ok"}] if "instructions" in body else ()
    frozen = copy.deepcopy(body)
    assert responses_request_to_chat(body, history=history) == expected
    assert body == frozen  # the client's body is not touched


def item(**fields):
    return {"model": "m", "input": [fields]}


def image(**fields):
    return item(role="user", content=[{"type": "input_image", **fields}])


ERRORS = [
    ([], None, "invalid_type"),
    ({"input": "x"}, "model", "invalid_type"),
    ({"model": "m", "input": "x", "modalities": ["text"]}, "modalities", "unsupported_parameter"),
    ({"model": "m", "input": 5}, "input", "invalid_type"),
    ({"model": "m", "input": []}, "input", "invalid_value"),
    ({"model": "m", "instructions": "only this"}, "input", "invalid_value"),
    ({"model": "m", "input": ["hi"]}, "input[0]", "invalid_type"),
    (item(content="x"), "input[0].type", "invalid_type"),
    (item(role="tool", content="x"), "input[0].role", "invalid_value"),
    (item(role="user", content=None), "input[0].content", "invalid_type"),
    (item(role="user", content=[{"type": "input_text", "text": 3}]), "input[0].content[0].text", "invalid_type"),
    (image(image_url=5), "input[0].content[0].image_url", "invalid_type"),
    (image(image_url="ftp://example.com/a.png"), "input[0].content[0].image_url", "invalid_value"),
    (image(file_id="file-1"), "input[0].content[0].file_id", "unsupported_parameter"),
    (image(image_url="https://e.com/a.png", detail="original"), "input[0].content[0].detail", "unsupported_parameter"),
    (item(role="system", content=[{"type": "input_image", "image_url": "https://e.com/a.png"}]), "input[0].content[0]", "unsupported_parameter"),
    (item(role="user", content=[{"type": "output_text", "text": "x"}]), "input[0].content[0].type", "invalid_value"),
    (item(role="user", content=[{"type": "input_file", "file_id": "f"}]), "input[0].content[0].type", "unsupported_parameter"),
    (item(type="item_reference", id="msg_1"), "input[0].type", "unsupported_parameter"),
    (item(type="function_call", name="f", arguments="{}"), "input[0].call_id", "invalid_type"),
    (item(type="function_call", call_id="c", name="", arguments="{}"), "input[0].name", "invalid_value"),
    (item(type="function_call", call_id="c", name="f", arguments={"a": 1}), "input[0].arguments", "invalid_type"),
    (item(type="function_call_output", call_id="c", output=5), "input[0].output", "invalid_type"),
    (item(type="function_call_output", call_id="c", output=[{"type": "input_image", "image_url": "https://e.com"}]), "input[0].output[0].type", "unsupported_parameter"),
    ({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0]", "unsupported_parameter"),
    ({"model": "m", "input": "x", "tools": [{**WEATHER_TOOL, "defer_loading": True}]}, "tools[0].defer_loading", "unsupported_parameter"),
    ({"model": "m", "input": "x", "tools": [{"type": "function", "parameters": {}}]}, "tools[0].name", "invalid_type"),
    ({"model": "m", "input": "x", "tools": {"type": "function"}}, "tools", "invalid_type"),
    ({"model": "m", "input": "x", "tool_choice": "any"}, "tool_choice", "invalid_value"),
    ({"model": "m", "input": "x", "tool_choice": {"type": "file_search"}}, "tool_choice", "unsupported_parameter"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type", "invalid_value"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}}, "text.format.schema", "invalid_type"),
    ({"model": "m", "input": "x", "text": {"verbosity": "extreme"}}, "text.verbosity", "invalid_value"),
    ({"model": "m", "input": "x", "reasoning": {"effort": 3}}, "reasoning.effort", "invalid_type"),
    ({"model": "m", "input": "x", "temperature": "hot"}, "temperature", "invalid_type"),
    ({"model": "m", "input": "x", "temperature": True}, "temperature", "invalid_type"),
    ({"model": "m", "input": "x", "max_output_tokens": 1.5}, "max_output_tokens", "invalid_type"),
    ({"model": "m", "input": "x", "top_logprobs": 21}, "top_logprobs", "invalid_value"),
    ({"model": "m", "input": "x", "truncation": "auto"}, "truncation", "unsupported_parameter"),
    ({"model": "m", "input": "x", "background": True}, "background", "unsupported_parameter"),
    ({"model": "m", "input": "x", "metadata": {"a": 1}}, "metadata.a", "invalid_type"),
    ({"model": "m", "input": "x", "stream": "yes"}, "stream", "invalid_type"),
    ({"model": "m", "input": "x", "include": [1]}, "include[0]", "invalid_type"),
]


@pytest.mark.parametrize("body,param,code", ERRORS, ids=[f"{e[1]}-{e[2]}-{i}" for i, e in enumerate(ERRORS)])
def test_request_errors_name_the_parameter(body, param, code):
    with pytest.raises(AdapterError) as caught:
        responses_request_to_chat(body)
    assert (caught.value.param, caught.value.code) == (param, code)
    if param:
        assert param in caught.value.message


def test_hub_errors_about_renamed_fields_name_the_responses_field():
    from adapter_cases import target
    from adapters import adapter_for

    chat = responses_request_to_chat({"model": "m", "input": "x", "text": {"verbosity": "low"}, "reasoning": {"effort": "high"}})
    with pytest.raises(AdapterError) as caught:
        adapter_for("anthropic").build_chat(chat, target("anthropic"), stream=False)
    assert responses_param_for(caught.value.param) in ("text.verbosity", "reasoning.effort")
    assert responses_param_for("temperature") == "temperature" and responses_param_for(None) is None


# Keys and values that steer random documents into the translation's deeper branches.
KEYS = st.sampled_from(
    "model input instructions tools tool_choice text format reasoning effort type role content text image_url detail file_id "
    "call_id name arguments output parameters strict schema include top_logprobs stream metadata user".split()
)
WORDS = st.sampled_from(
    "m message function_call function_call_output reasoning user assistant system developer input_text output_text refusal "
    "input_image function json_schema json_object auto required https://e.com/a.png data:image/png;base64,AA disabled".split()
)
JSON = st.recursive(  # integers in the range orjson reads as integers (it reads larger ones as floats)
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6) | WORDS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=4), inner, max_size=5),
    max_leaves=25,
)

RICH = {
    "model": "m",
    "instructions": "be brief",
    "input": REQUESTS[4][1]["input"] + REQUESTS[2][1]["input"] + REQUESTS[3][1]["input"],
    "tools": [WEATHER_TOOL],
    "tool_choice": {"type": "function", "name": "get_weather"},
    "text": {"format": {"type": "json_schema", "name": "n", "schema": {}, "strict": True}, "verbosity": "low"},
    "reasoning": {"effort": "low", "summary": "auto"},
    "metadata": {"k": "v"},
    "include": ["message.output_text.logprobs"],
    "top_logprobs": 2,
    "temperature": 0.5,
    "stream": True,
}


def paths(value, here=()):
    yield here
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from paths(child, (*here, key))


RICH_PATHS = list(paths(RICH))[1:]


def replaced(document, path, value):
    out = copy.deepcopy(document)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def translate_or_adapter_error(body):
    """Run every request reader; only ``AdapterError`` may come out of a bad body."""
    try:
        chat = responses_request_to_chat(body, history=[user("before")])
    except AdapterError as error:
        assert error.code in ("invalid_type", "invalid_value", "unsupported_parameter")
        assert error.param is None or isinstance(error.param, str)
        return None
    orjson.dumps(chat)
    input_items(body)
    chat_completion_to_response(completion({"content": "ok"}), request=body, response_id="resp_x", created_at=CREATED)
    return chat


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_any_json_body_gives_a_chat_request_or_an_adapter_error(body):
    translate_or_adapter_error(body)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(RICH_PATHS), JSON)
def test_any_value_anywhere_in_a_valid_body_gives_a_chat_request_or_an_adapter_error(path, value):
    translate_or_adapter_error(replaced(RICH, path, value))


def test_the_rich_body_itself_translates():
    assert translate_or_adapter_error(RICH) is not None


# ------------------------------------------------------------------ unary answers

USAGE = {
    "prompt_tokens": 19,
    "completion_tokens": 10,
    "total_tokens": 29,
    "prompt_tokens_details": {"cached_tokens": 3},
    "completion_tokens_details": {"reasoning_tokens": 4},
}
RESPONSE_USAGE = {
    "input_tokens": 19,
    "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
    "output_tokens": 10,
    "output_tokens_details": {"reasoning_tokens": 4},
    "total_tokens": 29,
}


def completion(message: dict, finish: str = "stop", *, logprobs: dict | None = None, usage: dict | None = USAGE) -> dict:
    body = {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "refusal": None, **message}, "logprobs": logprobs, "finish_reason": finish}],
        "service_tier": "default",
        "system_fingerprint": "fp_5050236cbd",
    }
    if usage is not None:
        body["usage"] = usage
    return body


def to_response(chat: dict, request: dict | None = None, **kwargs) -> dict:
    return chat_completion_to_response(
        chat, request=request or {"model": "gpt-4o", "input": "hi"}, response_id="resp_67ccd3a9da748190", created_at=CREATED, **kwargs
    )


def check(schemas, name, instance):
    if schemas:
        schemas.check(name, instance)


# event type -> its schema in the spec (ResponseStreamEvent is an anyOf of these: its errors say little)
EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedEvent",
    "response.in_progress": "ResponseInProgressEvent",
    "response.completed": "ResponseCompletedEvent",
    "response.incomplete": "ResponseIncompleteEvent",
    "response.failed": "ResponseFailedEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent",
    "response.output_text.done": "ResponseTextDoneEvent",
    "response.refusal.delta": "ResponseRefusalDeltaEvent",
    "response.refusal.done": "ResponseRefusalDoneEvent",
    "response.reasoning_text.delta": "ResponseReasoningTextDeltaEvent",
    "response.reasoning_text.done": "ResponseReasoningTextDoneEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
    "response.reasoning_summary_part.added": "ResponseReasoningSummaryPartAddedEvent",
    "response.reasoning_summary_part.done": "ResponseReasoningSummaryPartDoneEvent",
    "response.reasoning_summary_text.delta": "ResponseReasoningSummaryTextDeltaEvent",
    "response.reasoning_summary_text.done": "ResponseReasoningSummaryTextDoneEvent",
}


def check_events(schemas, events):
    if schemas:
        for event in events:
            schemas.check(EVENT_SCHEMAS[event["type"]], event)


def test_text_answer_with_logprobs(schemas_if_present):
    logprobs = {"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": None}]}]}
    response = to_response(completion({"content": "Hi"}, logprobs=logprobs))
    check(schemas_if_present, "Response", response)
    assert (response["id"], response["object"], response["status"], response["model"], response["error"]) == (
        "resp_67ccd3a9da748190", "response", "completed", MODEL, None,
    )
    [message] = response["output"]
    assert message["id"].startswith("msg_") and len(message["id"]) == 52
    assert (message["type"], message["role"], message["status"]) == ("message", "assistant", "completed")
    assert message["content"] == [
        {
            "type": "output_text",
            "text": "Hi",
            "annotations": [],
            "logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": []}]}],
        }
    ]
    assert response["usage"] == RESPONSE_USAGE
    assert response["completed_at"] >= CREATED and response["incomplete_details"] is None


def test_tool_calls_reasoning_and_refusal(schemas_if_present):
    chat = completion(
        {
            "content": "Checking.",
            "reasoning_content": "The user wants two lookups.",
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "call_b", "type": "function", "function": {"name": "get_stock_price", "arguments": '{"ticker":"AAPL"}'}},
            ],
        },
        "tool_calls",
    )
    response = to_response(chat)
    check(schemas_if_present, "Response", response)
    assert [item["type"] for item in response["output"]] == ["reasoning", "message", "function_call", "function_call"]
    reasoning, _, first, second = response["output"]
    assert reasoning["id"].startswith("rs_") and reasoning["content"] == [{"type": "reasoning_text", "text": "The user wants two lookups."}]
    assert first["id"].startswith("fc_") and first["id"] != second["id"]
    assert [(c["call_id"], c["name"], c["arguments"], c["status"]) for c in (first, second)] == [
        ("call_a", "get_weather", '{"city":"Paris"}', "completed"),
        ("call_b", "get_stock_price", '{"ticker":"AAPL"}', "completed"),
    ]

    refused = to_response(completion({"refusal": "I can't help with that."}))
    check(schemas_if_present, "Response", refused)
    assert refused["output"][0]["content"] == [{"type": "refusal", "refusal": "I can't help with that."}]


@pytest.mark.parametrize("finish,reason", [("length", "max_output_tokens"), ("content_filter", "content_filter")])
def test_cut_answers_are_incomplete(schemas_if_present, finish, reason):
    response = to_response(completion({"content": "Partial"}, finish))
    check(schemas_if_present, "Response", response)
    assert (response["status"], response["incomplete_details"], response["completed_at"]) == ("incomplete", {"reason": reason}, None)
    assert response["output"][0]["status"] == "incomplete"
    cut_call = to_response(completion({"content": "Calling.", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a'}}]}, finish))
    assert [item["status"] for item in cut_call["output"]] == ["completed", "incomplete"]  # the last item is the one cut


def test_unknown_finish_reason_is_completed_with_a_warning(warnings_logged):
    assert to_response(completion({"content": "x"}, "end_of_world"))["status"] == "completed"
    assert [record["extra"].get("finish_reason") for record in warnings_logged] == ["end_of_world"]


def test_request_settings_are_echoed_as_openai_returns_them(schemas_if_present):
    request = {
        "model": "gpt-4o",
        "input": "x",
        "instructions": "Be brief.",
        "max_output_tokens": 100,
        "temperature": 0.3,
        "top_p": 0.8,
        "tools": [WEATHER_TOOL, STOCK_TOOL],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "text": {"format": {"type": "json_object"}},
        "reasoning": {"effort": "low"},
        "metadata": {"trace": "t1"},
        "store": False,
        "user": "u1",
        "truncation": "disabled",
        "top_logprobs": 2,
    }
    response = to_response(completion({"content": "{}"}), request, previous_response_id="resp_prev")
    check(schemas_if_present, "Response", response)
    assert response["model"] == MODEL  # the model that answered, not the alias asked for
    echoed = {key: response[key] for key in request if key not in ("input", "model")} | {"previous_response_id": response["previous_response_id"]}
    assert echoed == {
        **{key: value for key, value in request.items() if key not in ("input", "model")},
        "tools": [WEATHER_TOOL, {**STOCK_TOOL, "description": None}],
        "text": {"format": {"type": "json_object"}, "verbosity": "medium"},
        "reasoning": {"effort": "low", "summary": None},
        "previous_response_id": "resp_prev",
    }
    defaults = to_response(completion({"content": "x"}))
    assert {key: defaults[key] for key in ("tool_choice", "tools", "parallel_tool_calls", "store", "temperature", "top_p", "truncation", "metadata", "instructions", "text")} == {
        "tool_choice": "auto",
        "tools": [],
        "parallel_tool_calls": True,
        "store": True,
        "temperature": 1.0,
        "top_p": 1.0,
        "truncation": "disabled",
        "metadata": {},
        "instructions": None,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
    }


def test_usage_of_a_response_object():
    assert response_usage({"usage": RESPONSE_USAGE}) == Usage(19, 10, 3, reasoning_tokens=RESPONSE_USAGE["output_tokens_details"]["reasoning_tokens"])
    assert response_usage({"usage": None}) is None
    assert response_usage({"usage": {"input_tokens": 5, "input_tokens_details": None, "output_tokens": None}}) == Usage(5, 0, 0)
    assert read_response_usage({"usage": {"input_tokens": "lots", "output_tokens": 2}}) == (None, True)  # unknown, never a crash


# ------------------------------------------------------------------ conversations and input items


def test_a_stored_answer_replays_as_the_assistant_turn():
    message = {
        "content": "Checking.",
        "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}],
    }
    response = to_response(completion({**message, "reasoning_content": "hidden"}, "tool_calls"))
    assert response_to_chat_messages(response) == [{"role": "assistant", **message}]

    body = {"model": "m", "instructions": "not carried over", "input": "Weather in Paris?"}
    history = replay_messages(body, response, history=[user("Hi"), {"role": "assistant", "content": "Hello"}])
    assert history == [user("Hi"), {"role": "assistant", "content": "Hello"}, user("Weather in Paris?"), {"role": "assistant", **message}]
    follow_up = {
        "model": "m",
        "instructions": "New rules.",
        "previous_response_id": response["id"],
        "input": [{"type": "function_call_output", "call_id": "call_a", "output": "18C"}],
    }
    assert responses_request_to_chat(follow_up, history=history)["messages"] == [
        {"role": "system", "content": "New rules."},
        *history,
        {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
    ]


def test_hosted_tool_items_of_a_native_answer_are_skipped_when_replayed(warnings_logged):
    native = {"output": [{"type": "web_search_call", "id": "ws_1", "status": "completed"}, {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Found it.", "annotations": [{"type": "url_citation"}]}]}]}
    assert response_to_chat_messages(native) == [{"role": "assistant", "content": "Found it."}]
    assert [record["extra"].get("item_type") for record in warnings_logged] == ["web_search_call"]


def test_input_items_have_ids_and_the_stored_shapes(schemas_if_present):
    body = {
        "model": "m",
        "input": REQUESTS[4][1]["input"] + REQUESTS[2][1]["input"] + [{"type": "reasoning", "summary": []}, {"role": "assistant", "content": [{"type": "input_text", "text": "Ok"}]}],
    }
    items = input_items(body)
    for stored in items:
        check(schemas_if_present, "ItemResource", stored)
    assert [(i["type"], i["id"][: i["id"].index("_")]) for i in items] == [
        ("message", "msg"), ("message", "msg"), ("function_call", "fc"), ("function_call", "fc"),
        ("function_call_output", "fco"), ("function_call_output", "fco"), ("function_call", "fc"), ("message", "msg"), ("reasoning", "rs"),
        ("message", "msg"),
    ]
    assert items[-1]["content"] == [{"type": "output_text", "text": "Ok", "annotations": [], "logprobs": []}]
    assert items[2]["id"] == "fc_1"  # ids the client gave are kept
    assert items[0]["content"] == [{"type": "input_text", "text": "Weather in Paris and AAPL?"}]
    assert items[1]["content"] == [{"type": "output_text", "text": "Looking both up.", "annotations": [], "logprobs": []}]
    assert items[7]["content"][1] == {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low", "file_id": None}
    assert input_items({"model": "m", "input": "hi"})[0]["content"] == [{"type": "input_text", "text": "hi"}]


# ------------------------------------------------------------------ streams


def chunk(delta: dict | None = None, finish: str | None = None, *, usage: dict | None = None, logprobs: dict | None = None) -> dict:
    """A ``chat.completion.chunk`` as OpenAI writes them."""
    out = {"id": "chatcmpl-ABfwAwrNePHUgBBez", "object": "chat.completion.chunk", "created": CREATED, "model": MODEL, "system_fingerprint": "fp_5050236cbd", "choices": []}
    if delta is not None:
        out["choices"] = [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]
    if usage is not None:
        out["usage"] = usage
    return out


def call_delta(index: int, arguments: str, *, call_id: str | None = None, name: str | None = None) -> dict:
    call: dict = {"index": index, "function": {"arguments": arguments}}
    if call_id:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return chunk({"tool_calls": [call]})


TEXT_CHUNKS = [
    chunk({"role": "assistant", "content": "", "refusal": None}),
    chunk({"content": "Hello"}, logprobs={"content": [{"token": "Hello", "logprob": -0.01, "bytes": [72, 101, 108, 108, 111], "top_logprobs": []}]}),
    chunk({"content": " there!"}),
    chunk({}, "stop"),
    chunk(usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12, "prompt_tokens_details": {"cached_tokens": 0}}),
]
PARALLEL_CHUNKS = [
    chunk({"role": "assistant", "content": None}),
    chunk({"content": "Looking both up."}),
    call_delta(0, "", call_id="call_JMW1whyEaYG438VE1OIflxA2", name="get_weather"),
    call_delta(0, '{"ci'),
    call_delta(0, 'ty": "Par'),
    call_delta(0, 'is"}'),
    call_delta(1, "", call_id="call_DNYTpEuUDPwDnIqRR1wuNKj4", name="get_stock_price"),
    call_delta(1, '{"ticker": '),
    call_delta(1, '"AAPL"}'),
    chunk({}, "tool_calls"),
    chunk(usage={**USAGE, "prompt_tokens": 149, "completion_tokens": 60, "total_tokens": 209}),
]
PARALLEL_EVENTS = (
    ["response.created", "response.in_progress"]
    + ["response.output_item.added", "response.content_part.added", "response.output_text.delta"]
    + ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
    + ["response.output_item.added"] + ["response.function_call_arguments.delta"] * 3
    + ["response.function_call_arguments.done", "response.output_item.done"]
    + ["response.output_item.added"] + ["response.function_call_arguments.delta"] * 2
    + ["response.function_call_arguments.done", "response.output_item.done"]
    + ["response.completed"]
)


def decode(frames: list[bytes]) -> list[dict]:
    """The events of SSE frames; asserts the framing and that sequence numbers count from 0."""
    events = []
    for piece in frames:
        head, _, data = piece.partition(b"\n")
        assert head.startswith(b"event: ") and data.startswith(b"data: ") and data.endswith(b"\n\n"), piece
        event = orjson.loads(data[6:-2])
        assert event["type"] == head[7:].decode()
        events.append(event)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    return events


def accumulate(events: list[dict]) -> list[dict]:
    """The output a client rebuilds from the events (as SDK accumulators do), checked against
    every ``.done`` event on the way."""
    output: dict[int, dict] = {}
    for event in events:
        kind = event["type"]
        if kind == "response.output_item.added":
            assert event["output_index"] == len(output)
            output[event["output_index"]] = copy.deepcopy(event["item"])
        elif kind == "response.content_part.added":
            content = output[event["output_index"]]["content"]
            assert event["content_index"] == len(content)
            content.append(copy.deepcopy(event["part"]))
        elif kind in ("response.output_text.delta", "response.reasoning_text.delta", "response.refusal.delta"):
            part = output[event["output_index"]]["content"][event["content_index"]]
            part["refusal" if part["type"] == "refusal" else "text"] += event["delta"]
        elif kind == "response.function_call_arguments.delta":
            output[event["output_index"]]["arguments"] += event["delta"]
        elif kind == "response.function_call_arguments.done":
            assert event["arguments"] == output[event["output_index"]]["arguments"]
        elif kind == "response.content_part.done":
            part = output[event["output_index"]]["content"][event["content_index"]]
            assert {**part, "logprobs": None} == {**event["part"], "logprobs": None}
            output[event["output_index"]]["content"][event["content_index"]] = event["part"]
        elif kind == "response.output_item.done":
            built = output[event["output_index"]]
            assert {**built, "status": None} == {**event["item"], "status": None}
            output[event["output_index"]] = event["item"]
    return [output[index] for index in sorted(output)]


def run_stream(chunks: list[dict], request: dict | None = None, *, usage: Usage | None = None) -> tuple[ResponsesStream, list[dict]]:
    stream = ResponsesStream(request or {"model": "gpt-4o", "input": "hi", "stream": True}, "resp_stream1", CREATED)
    frames = stream.start()
    for piece in chunks:
        frames += stream.feed(copy.deepcopy(piece))
    frames += stream.finish(usage)
    assert stream.done and stream.finish() == [] and stream.feed(TEXT_CHUNKS[1]) == []
    return stream, decode(frames)


def test_text_stream(schemas_if_present):
    stream, events = run_stream(TEXT_CHUNKS)
    check_events(schemas_if_present, events)
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed",
    ]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    item_id = events[2]["item"]["id"]
    assert [(d["delta"], d["item_id"], d["output_index"], d["content_index"]) for d in deltas] == [("Hello", item_id, 0, 0), (" there!", item_id, 0, 0)]
    assert deltas[0]["logprobs"] == [{"token": "Hello", "logprob": -0.01, "top_logprobs": []}]
    final = events[-1]["response"]
    assert final == stream.response and final["status"] == "completed" and final["model"] == MODEL
    assert accumulate(events) == final["output"]
    assert final["output"][0]["content"][0]["text"] == "Hello there!"
    assert final["usage"] == {
        "input_tokens": 9, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 12,
    }


def test_parallel_tool_call_stream(schemas_if_present):
    stream, events = run_stream(PARALLEL_CHUNKS)
    check_events(schemas_if_present, events)
    assert [e["type"] for e in events] == PARALLEL_EVENTS
    final = stream.response
    check(schemas_if_present, "Response", final)
    assert accumulate(events) == final["output"]
    _, weather, stock = final["output"]
    assert [(c["call_id"], c["name"], c["arguments"], c["status"]) for c in (weather, stock)] == [
        ("call_JMW1whyEaYG438VE1OIflxA2", "get_weather", '{"city": "Paris"}', "completed"),
        ("call_DNYTpEuUDPwDnIqRR1wuNKj4", "get_stock_price", '{"ticker": "AAPL"}', "completed"),
    ]
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [(d["name"], d["item_id"]) for d in done] == [("get_weather", weather["id"]), ("get_stock_price", stock["id"])]
    assert final["usage"] == {**RESPONSE_USAGE, "input_tokens": 149, "output_tokens": 60, "total_tokens": 209}


def test_interleaved_tool_calls_keep_their_arguments_in_the_final_response(warnings_logged):
    chunks = [
        call_delta(0, '{"city":', call_id="call_a", name="get_weather"),
        call_delta(1, '{"ticker":"AAPL"}', call_id="call_b", name="get_stock_price"),
        call_delta(0, '"Paris"}'),  # late: call 0's item closed when call 1 began
        chunk({}, "tool_calls"),
    ]
    stream, events = run_stream(chunks)
    assert [c["arguments"] for c in stream.response["output"]] == ['{"city":"Paris"}', '{"ticker":"AAPL"}']
    assert [e["arguments"] for e in events if e["type"] == "response.function_call_arguments.done"] == ['{"city":', '{"ticker":"AAPL"}']
    assert [record["extra"].get("call_index") for record in warnings_logged] == [0]


def test_finish_usage_wins_and_keeps_the_chunk_reasoning_tokens():
    stream, _ = run_stream(PARALLEL_CHUNKS, usage=Usage(prompt_tokens=150, completion_tokens=61, cached_tokens=7))
    assert stream.response["usage"] == {
        "input_tokens": 150, "input_tokens_details": {"cached_tokens": 7, "cache_write_tokens": 0},
        "output_tokens": 61, "output_tokens_details": {"reasoning_tokens": 4}, "total_tokens": 211,
    }
    stream, _ = run_stream(TEXT_CHUNKS[:-1])
    assert "usage" not in stream.response


def test_reasoning_then_refusal_stream_cut_by_length(schemas_if_present):
    chunks = [
        chunk({"role": "assistant", "reasoning_content": "Thinking"}),
        chunk({"reasoning_content": " hard."}),
        chunk({"content": "Sure: "}),
        chunk({"refusal": "actually, no"}),
        chunk({}, "length"),
    ]
    stream, events = run_stream(chunks)
    check_events(schemas_if_present, events)
    types = [e["type"] for e in events]
    assert types[2:] == [
        "response.output_item.added", "response.content_part.added", "response.reasoning_text.delta", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done",
        "response.content_part.added", "response.refusal.delta", "response.refusal.done", "response.content_part.done",
        "response.output_item.done", "response.incomplete",
    ]
    final = stream.response
    check(schemas_if_present, "Response", final)
    assert (final["status"], final["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})
    reasoning, message = accumulate(events)
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "Thinking hard."}] and reasoning["status"] == "completed"
    assert message["status"] == "incomplete"
    assert [p.get("text") or p.get("refusal") for p in message["content"]] == ["Sure: ", "actually, no"]
    assert final["output"] == [reasoning, message]


def test_a_failure_mid_stream_ends_with_response_failed(schemas_if_present):
    stream = ResponsesStream({"model": "gpt-4o", "input": "hi"}, "resp_f", CREATED)
    frames = stream.start() + stream.feed(TEXT_CHUNKS[1])
    frames += stream.fail({"error": {"message": "Rate limit reached", "type": "rate_limit_error", "param": None, "code": None}})
    events = decode(frames)
    check_events(schemas_if_present, events)
    assert events[-1]["type"] == "response.failed"
    failed = events[-1]["response"]
    assert (failed["status"], failed["error"]) == ("failed", {"code": "rate_limit_exceeded", "message": "Rate limit reached"})
    assert failed["output"][0]["status"] == "incomplete" and failed["output"][0]["content"][0]["text"] == "Hello"
    assert stream.done and stream.finish() == [] and stream.fail({}) == []
    other = ResponsesStream({"model": "m"}, "resp_g", CREATED)
    assert decode(other.fail({"error": {"message": "boom", "code": "upstream_error"}}))[0]["response"]["error"] == {"code": "server_error", "message": "boom"}


def test_shared_chat_streams_translate(shared_dir, schemas_if_present):
    """Recorded real chat streams (OpenAI's own chunks) through ResponsesStream."""
    base = shared_dir / "fixtures" / "openai" / "stream"
    for name, kinds in [("text_gpt4o.sse", ["message"]), ("refusal_gpt4o.sse", ["message"]), ("tool_call_parallel_gpt4o.sse", ["function_call", "function_call"])]:
        chunks = [orjson.loads(e.data) for e in events_of((base / name).read_bytes()) if e.data != b"[DONE]"]
        stream, events = run_stream(chunks)
        check_events(schemas_if_present, events)
        assert [i["type"] for i in accumulate(events)] == kinds == [i["type"] for i in stream.response["output"]], name
        usage = chunks[-1]["usage"]
        assert stream.response["usage"]["total_tokens"] == usage["total_tokens"], name


def test_replay_of_a_stored_response_is_the_same_stream(schemas_if_present):
    live, live_events = run_stream(PARALLEL_CHUNKS)
    replayed = decode(response_to_events(live.response))
    check_events(schemas_if_present, replayed)
    squash = lambda events: [t for i, t in enumerate(e["type"] for e in events) if not (t.endswith(".delta") and i and events[i - 1]["type"] == t)]  # noqa: E731
    assert squash(replayed) == squash(live_events)
    assert replayed[-1]["response"] == live.response and accumulate(replayed) == live.response["output"]
    _, cut_events = run_stream([chunk({"reasoning_content": "r"}), chunk({"refusal": "no"}), chunk({}, "content_filter")])
    cut = cut_events[-1]["response"]
    replayed_cut = decode(response_to_events(cut))
    assert squash(replayed_cut) == squash(cut_events) and accumulate(replayed_cut) == cut["output"]


def test_replay_of_a_native_response_keeps_summaries_and_unknown_items():
    native = {
        "id": "resp_n", "object": "response", "status": "completed", "output": [
            {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Thought briefly."}], "encrypted_content": "gAAA"},
            {"id": "ws_1", "type": "web_search_call", "status": "completed", "action": {"type": "search", "query": "x"}},
        ],
    }
    events = decode(response_to_events(native))
    assert [e["type"] for e in events[2:]] == [
        "response.output_item.added", "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
        "response.output_item.added", "response.output_item.done", "response.completed",
    ]
    assert events[2]["item"]["summary"] == [] and events[7]["item"] == native["output"][0]
    assert events[4]["delta"] == "Thought briefly." and events[-1]["response"] == native


# ------------------------------------------------------------------ native pass-through

NATIVE_FIXTURE = Path("fixtures") / "openai" / "responses" / "issue-19493-gpt-5.1-tool-call.chunks.txt"


def test_native_stream_relays_the_recorded_stream(shared_dir, schemas_if_present):
    raw = (shared_dir / NATIVE_FIXTURE).read_bytes()
    upstream = events_of(raw, json_lines=True)
    relay = NativeResponsesStream()
    frames = [frame for event in upstream for frame in relay.feed(event)] + relay.finish()
    events = decode(frames)
    assert events == [orjson.loads(line) for line in raw.splitlines() if line.strip()]  # nothing changed
    assert relay.done and relay.usage == Usage(prompt_tokens=45, completion_tokens=25, cached_tokens=0)
    assert relay.response["output"][0]["arguments"] == '{"city":"Beijing"}'
    assert accumulate(events) == relay.response["output"]

    cut = NativeResponsesStream()
    for event in upstream[:-1]:
        cut.feed(event)
    with pytest.raises(UpstreamError) as caught:
        cut.finish()
    assert caught.value.outcome is Outcome.SERVER_ERROR


def test_native_stream_keeps_event_names_and_multi_line_data():
    relay = NativeResponsesStream()
    assert relay.feed(SSEEvent(b'{"type":"response.in_progress",\n"sequence_number":1}', "response.in_progress")) == [
        b'event: response.in_progress\ndata: {"type":"response.in_progress",\ndata: "sequence_number":1}\n\n'
    ]
    assert relay.feed(SSEEvent(b"[DONE]")) == [] and not relay.done


@pytest.mark.parametrize(
    "data,message",
    [
        (b'{"type":"error","code":"server_error","message":"The server had an error","param":null,"sequence_number":3}', "The server had an error"),
        (b'{"type":"response.failed","response":{"id":"resp_1","status":"failed","error":{"code":"rate_limit_exceeded","message":"Slow down"}},"sequence_number":4}', "Slow down"),
        (b'{"type":"response.output_text.delta", "delta": "unterminated', "malformed"),
        (b"[1, 2]", "malformed"),
    ],
)
def test_native_stream_failures(data, message):
    with pytest.raises(UpstreamError) as caught:
        NativeResponsesStream().feed(SSEEvent(data))
    assert caught.value.outcome is Outcome.SERVER_ERROR and message in caught.value.message
    if caught.value.envelope:
        assert caught.value.envelope["error"]["message"] == message


# ------------------------------------------------------------------ the official SDK against these shapes


class ScriptedResponses:
    """An aiohttp server on 127.0.0.1 answering ``POST /v1/responses`` with this module's
    translators: the body goes through ``responses_request_to_chat``, and ``answer`` (a chat
    completion, or a list of chat chunks for ``stream: true``) comes back translated."""

    def __init__(self) -> None:
        self.answer: dict | list[dict] = {}
        self.chat_requests: list[dict] = []
        self.port = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        try:
            chat = responses_request_to_chat(body)
        except AdapterError as error:
            envelope = {"error": {"message": error.message, "type": "invalid_request_error", "param": error.param, "code": error.code}}
            return web.json_response(envelope, status=400)
        self.chat_requests.append(chat)
        response_id = new_item_id("resp")
        if not body.get("stream"):
            return web.json_response(chat_completion_to_response(self.answer, request=body, response_id=response_id, created_at=CREATED))
        stream = ResponsesStream(body, response_id, CREATED)
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        for frame in stream.start():
            await out.write(frame)
        for piece in self.answer:
            for frame in stream.feed(copy.deepcopy(piece)):
                await out.write(frame)
        for frame in stream.finish():
            await out.write(frame)
        await out.write_eof()
        return out

    def start(self) -> "ScriptedResponses":
        ready = threading.Event()

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/v1/responses", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="scripted-responses", daemon=True)
        self._thread.start()
        assert ready.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def sdk():
    import openai

    server = ScriptedResponses().start()
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="test-key", max_retries=0, timeout=20)
    yield server, client
    client.close()
    server.stop()


def sdk_tools():
    return [{k: v for k, v in WEATHER_TOOL.items()}, {**STOCK_TOOL}]


def test_sdk_create_reads_text_calls_and_usage(sdk):
    server, client = sdk
    server.answer = completion({"content": "Hello there!"})
    response = client.responses.create(model="gpt-4o", input="Say hello", instructions="Be warm.")
    assert response.output_text == "Hello there!" and response.status == "completed"
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (19, 10, 29)
    assert (response.usage.input_tokens_details.cached_tokens, response.usage.output_tokens_details.reasoning_tokens) == (3, 4)
    assert server.chat_requests[-1]["messages"] == [{"role": "system", "content": "Be warm."}, user("Say hello")]

    server.answer = completion(
        {"tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_b", "type": "function", "function": {"name": "get_stock_price", "arguments": '{"ticker":"AAPL"}'}},
        ]},
        "tool_calls",
    )
    response = client.responses.create(model="gpt-4o", input="Paris weather and AAPL?", tools=sdk_tools())
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [("call_a", "get_weather", '{"city":"Paris"}'), ("call_b", "get_stock_price", '{"ticker":"AAPL"}')]
    assert response.output_text == "" and [t.name for t in response.tools] == ["get_weather", "get_stock_price"]

    # the calls go back as input, with their outputs: the SDK's own item shapes translate
    follow = client.responses.create(
        model="gpt-4o",
        input=[*[c.model_dump(exclude_none=True) for c in calls], {"type": "function_call_output", "call_id": "call_a", "output": "18C"}],
        tools=sdk_tools(),
    )
    assert follow.status == "completed"
    assert [m["role"] for m in server.chat_requests[-1]["messages"]] == ["assistant", "tool"]


def test_sdk_parse_reads_structured_output(sdk):
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    server, client = sdk
    server.answer = completion({"content": '{"name":"Paris","population":2100000}'})
    parsed = client.responses.parse(model="gpt-4o", input="Biggest French city?", text_format=City)
    assert parsed.output_parsed == City(name="Paris", population=2100000)
    assert server.chat_requests[-1]["response_format"]["json_schema"]["name"] == "City"


def test_sdk_stream_with_parallel_tool_calls(sdk):
    server, client = sdk
    server.answer = PARALLEL_CHUNKS
    with client.responses.stream(model="gpt-4o", input="Paris weather and AAPL?", tools=sdk_tools()) as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert types == PARALLEL_EVENTS
    assert final.output_text == "Looking both up."
    assert [(c.call_id, c.name, c.arguments) for c in final.output if c.type == "function_call"] == [
        ("call_JMW1whyEaYG438VE1OIflxA2", "get_weather", '{"city": "Paris"}'),
        ("call_DNYTpEuUDPwDnIqRR1wuNKj4", "get_stock_price", '{"ticker": "AAPL"}'),
    ]
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.output_tokens_details.reasoning_tokens) == (149, 60, 4)
    assert server.chat_requests[-1]["stream_options"] == {"include_usage": True}


def test_sdk_stream_text_deltas_and_raw_events(sdk):
    server, client = sdk
    server.answer = TEXT_CHUNKS
    with client.responses.stream(model="gpt-4o", input="hi") as stream:
        snapshots = [event.snapshot for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert snapshots == ["Hello", "Hello there!"] and final.output_text == "Hello there!"
    raw = list(client.responses.create(model="gpt-4o", input="hi", stream=True))
    assert [e.sequence_number for e in raw] == list(range(len(raw))) and raw[-1].response.output_text == "Hello there!"


def test_sdk_sees_translation_errors_as_bad_requests(sdk):
    import openai

    _, client = sdk
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-4o", input="x", tools=[{"type": "web_search"}])
    assert caught.value.param == "tools[0]" and caught.value.code == "unsupported_parameter"
