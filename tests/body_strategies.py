"""Hypothesis strategies for request bodies around the real shapes, for the end-to-end tests.

``mutated(seeds)`` starts from one of ``seeds`` (well-formed bodies, as SDKs send them) and
changes it at zero to three places, anywhere in the tree: a value replaced by arbitrary JSON or an
extreme one (huge and tiny numbers, integers past 64 bits, numbers past a double, lone
surrogates, bytes that are not UTF-8, long strings, nesting far past ``MAX_NESTING``), a field or
item removed, an unknown field or item added, a value wrapped in an array or object, or turned
into its own JSON text. Zero changes is the seed itself, so most runs also send bodies that get
as far as a provider.

The values JSON cannot express in Python (numbers past 64 bits or a double, invalid Unicode,
deep nesting) are placeholders replaced in the bytes by ``to_bytes``.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import strategies as st

from inbound_strategies import DEEP, DEEP_STRING, JUNK, KEYS, encode

HUGE_INT = "\x00huge-int\x00"
PAST_INT64 = "\x00past-int64\x00"  # integers just past 64 bits: orjson reads them as floats, pydantic exactly
PAST_UINT64 = "\x00past-uint64\x00"
HUGE_FLOAT = "\x00huge-float\x00"
LONE_SURROGATE = "\x00surrogate\x00"
NOT_UTF8 = "\x00not-utf8\x00"
IN_BYTES = {
    HUGE_INT: b"-" + b"9" * 40,
    PAST_INT64: b"-9223372036854775809",
    PAST_UINT64: b"18446744073709551616",
    HUGE_FLOAT: b"1e400",
    LONE_SURROGATE: b'"\\udc80 and \\ud800"',
    NOT_UTF8: b'"\xff\xfe\xc3"',
}
_EXTREMES = st.sampled_from(
    [
        HUGE_INT, PAST_INT64, PAST_UINT64, HUGE_FLOAT, LONE_SURROGATE, NOT_UTF8, DEEP, DEEP_STRING,
        0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 1e308, -1e308, 5e-324, -0.0, True, False, None, "", [], {},
        "\u0000", "\u202e\U0001f600\ufeff", "a" * 100_000, ["x"] * 3000, {"k" + str(i): i for i in range(300)},
    ]
)
EXTREMES = _EXTREMES.map(copy.deepcopy)  # fresh containers: a body is changed in place
OPERATIONS = st.sampled_from(["replace", "extreme", "delete", "add", "wrap", "stringify"])


def paths(value: Any, prefix: tuple = ()):
    """Every place in a JSON value, the root first."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


def _at(value: Any, path: tuple) -> Any:
    for step in path:
        value = value[step]
    return value


def _changed(draw, node: Any, operation: str) -> Any:
    if operation == "replace":
        return draw(JUNK)
    if operation == "extreme":
        return draw(EXTREMES)
    if operation == "add":
        if isinstance(node, dict):
            return {**node, draw(KEYS): draw(st.one_of(JUNK, EXTREMES))}
        if isinstance(node, list):
            return [*node, draw(st.one_of(JUNK, EXTREMES))]
        return [node]
    if operation == "wrap":
        return draw(st.sampled_from([[node], {"value": node}, [node, node]]))
    try:  # stringify
        return orjson.dumps(node).decode()
    except TypeError:
        return node


@st.composite
def mutated(draw, seeds: list) -> Any:
    body = copy.deepcopy(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(list(paths(body))))
        operation = draw(OPERATIONS)
        if operation == "delete" and path:
            parent = _at(body, path[:-1])
            del parent[path[-1]]
            continue
        new = _changed(draw, _at(body, path), operation)
        if not path:
            body = new
        else:
            _at(body, path[:-1])[path[-1]] = new
    return body


MODEL = "\x00model\x00"  # the seeds' model names, replaced in the bytes by configured ones
EMBEDDING_MODEL = "\x00embedding-model\x00"


def to_bytes(body: Any, depth: int, models: dict[str, str] | None = None) -> bytes:
    """The body as JSON bytes, with the placeholders (``DEEP`` at ``depth``) in place and each
    model name in ``models`` replaced by its value, wherever it is."""
    raw = encode(body, depth)
    for placeholder, wire in IN_BYTES.items():
        raw = raw.replace(orjson.dumps(placeholder), wire)
    for placeholder, model in (models or {}).items():
        raw = raw.replace(orjson.dumps(placeholder), orjson.dumps(model))
    return raw


# ---------------------------------------------------------------------------------- the seeds

PNG = "data:image/png;base64,iVBORw0KGgo="
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def chat_seeds(model: str = MODEL) -> list[dict]:
    user = {"role": "user", "content": "hello"}
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    return [
        {"model": model, "messages": [user]},
        {
            "model": model,
            "messages": [{"role": "system", "content": "be brief"}, user, {"role": "assistant", "content": "hi"}, {"role": "user", "content": "again"}],
            "temperature": 0.2, "top_p": 0.9, "max_tokens": 50, "stop": ["\n\n"], "user": "u1",
        },
        {
            "model": model,
            "messages": [user, {"role": "assistant", "content": None, "tool_calls": [call]}, {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "sunny"}'}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather now", "parameters": WEATHER}}],
            "tool_choice": "auto",
        },
        {"model": model, "messages": [user], "stream": True, "stream_options": {"include_usage": True}, "max_completion_tokens": 20},
        {
            "model": model,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}}]}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": WEATHER, "strict": True}},
        },
    ]


def embeddings_seeds(model: str = EMBEDDING_MODEL) -> list[dict]:
    return [
        {"model": model, "input": "hello"},
        {"model": model, "input": ["hello", "world"], "encoding_format": "float", "dimensions": 8},
        {"model": model, "input": [[1, 2, 3], [4, 5]], "user": "u1"},
    ]


def responses_seeds(model: str = MODEL) -> list[dict]:
    return [
        {"model": model, "input": "hello"},
        {
            "model": model,
            "instructions": "be brief",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}, {"type": "input_image", "image_url": PNG, "detail": "auto"}]}],
            "max_output_tokens": 50, "temperature": 0.5, "store": False, "metadata": {"k": "v"},
        },
        {
            "model": model,
            "input": [
                {"type": "message", "role": "user", "content": "weather?"},
                {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
                {"type": "function_call_output", "call_id": "call_1", "output": '{"sky": "sunny"}'},
            ],
            "tools": [{"type": "function", "name": "get_weather", "description": "Weather now", "parameters": WEATHER}],
            "tool_choice": "auto",
        },
        {"model": model, "input": "json please", "text": {"format": {"type": "json_schema", "name": "answer", "schema": WEATHER}}, "reasoning": {"effort": "low"}},
        {"model": model, "input": "stream it", "stream": True, "include": ["message.output_text.logprobs"], "top_logprobs": 2},
    ]


def messages_seeds(model: str = MODEL) -> list[dict]:
    user = {"role": "user", "content": "hello"}
    return [
        {"model": model, "max_tokens": 64, "messages": [user]},
        {
            "model": model,
            "max_tokens": 64,
            "system": [{"type": "text", "text": "be brief"}],
            "messages": [user, {"role": "assistant", "content": [{"type": "text", "text": "hi"}]}, {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}, {"type": "text", "text": "this?"}]}],
            "temperature": 0.3, "top_k": 5, "stop_sequences": ["END"], "metadata": {"user_id": "u1"},
        },
        {
            "model": model,
            "max_tokens": 64,
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
            ],
            "tools": [{"name": "get_weather", "description": "Weather now", "input_schema": WEATHER}],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        },
        {"model": model, "max_tokens": 64, "messages": [user], "stream": True, "thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"model": model, "max_tokens": 64, "messages": [user], "output_config": {"effort": "low", "format": {"type": "json_schema", "schema": WEATHER}}},
    ]


CLIENT_SEEDS = [
    {"name": "team-a"},
    {
        "name": "team-b",
        "allowed_providers": ["openai", "gemini"],
        "allowed_models": ["chat-openai"],
        "limits": {"req_per_min": 100, "tokens_per_min": 100_000},
        "budgets": {"usd_per_day": 1.5, "usd_per_month": 20},
        "expires_at": "2099-01-01T00:00:00Z",
        "cache_namespace": "shared",
        "metadata": {"team": "b", "ids": [1, 2]},
    },
]


def batch_line_seeds(endpoint: str) -> list[dict]:
    """Batch input lines for ``endpoint`` (its seeds as line bodies)."""
    bodies = {"/v1/chat/completions": chat_seeds(), "/v1/embeddings": embeddings_seeds(), "/v1/responses": responses_seeds()}[endpoint]
    return [{"custom_id": f"line-{index}", "method": "POST", "url": endpoint, "body": body} for index, body in enumerate(bodies) if not body.get("stream")]
