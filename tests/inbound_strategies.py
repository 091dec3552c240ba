"""Hypothesis strategies for request bodies built around the OpenAI chat and embeddings shapes.

Every field, at every level, is either a plausible value or arbitrary JSON (``JUNK``, one time in
``junk_one_in``), so the bodies are mostly well formed with a field of the wrong type or value
here and there; plausible values include the edges (an empty name, a fifth stop sequence, a
``$ref`` into an example value). ``DEEP`` placeholders become deeply nested JSON in the bytes
(``encode``), since orjson cannot write what it can read there.

``MALFORMED`` mutates often and adds unknown fields anywhere. ``TRANSLATABLE`` mutates rarely and
keeps to what every translating adapter carries, so that most accepted bodies get far into the
Anthropic and Gemini translators instead of stopping at their first unsupported parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from hypothesis import strategies as st

DEEP = "\x00deep\x00"  # replaced in the encoded bytes by nested arrays (see ``encode``)
DEEP_STRING = "\x00deep-in-a-string\x00"  # replaced by a JSON string: an object holding nested arrays

INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
NUMBERS = st.one_of(
    st.sampled_from([0, 1, -1, 2, 4, 20, 128, 129, 2**53, 2**63 - 1, 2**64 - 1, -(2**63), 0.5, 1.5, 2.5, -0.0, 1e308, -1e308, 5e-324]),
    INT64,
    st.floats(allow_nan=False, allow_infinity=False),
)
TEXT = st.one_of(
    st.sampled_from(["hello", "a", "", "null", "{}", "[]", '{"a": 1}', "data:image/png;base64,AAAA", "https://x.test/i.png", "\u202e\U0001f600", "\ud7ff"]),
    st.text(max_size=12),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT, st.just(DEEP), st.just(DEEP_STRING))
KEYS = st.one_of(TEXT, st.sampled_from(["type", "format", "properties", "items", "anyOf", "$ref", "enum", "required", "text", "url"]))
JUNK = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)), max_leaves=8)
DEPTHS = st.sampled_from([300, 1, 64, 65, 63, 1000, 10])  # past what orjson writes (254) first: see ``bodies``


def encode(body, depth: int) -> bytes:
    """The body as JSON bytes, its ``DEEP`` placeholders replaced by ``depth`` nested arrays."""
    raw = orjson.dumps(body)
    deep = b"[" * depth + b"]" * depth
    raw = raw.replace(orjson.dumps(DEEP), deep)
    return raw.replace(orjson.dumps(DEEP_STRING), orjson.dumps('{"a": ' + deep.decode() + "}"))


@dataclass(frozen=True)
class Bodies:
    chat: st.SearchStrategy
    embeddings: st.SearchStrategy


def bodies(*, junk_one_in: int, translatable: bool) -> Bodies:
    """Chat and embeddings bodies (see the module docstring)."""
    # Hypothesis draws the first choices of sampled_from much more often, so the order of every
    # sampled_from here is a choice: the plausible value first, the troublesome one second.
    rolls = st.sampled_from([False] * (junk_one_in - 1) + [True])
    unknown_fields = st.dictionaries(KEYS, JUNK, max_size=1)

    def sometimes_junk(valid: st.SearchStrategy) -> st.SearchStrategy:
        return rolls.flatmap(lambda junk: JUNK if junk else valid)

    def obj(required: dict | None = None, optional: dict | None = None, *, extras: bool = True, required_too: tuple = ()) -> st.SearchStrategy:
        """An object with the ``required`` fields, some ``optional`` ones (``required_too`` of them always) and maybe an unknown one."""
        optional = dict(optional or {})
        required = {**(required or {}), **{name: optional.pop(name) for name in required_too}}
        fields = {name: sometimes_junk(value) for name, value in required.items()}
        others = {name: sometimes_junk(value) for name, value in optional.items()}
        base = st.fixed_dictionaries(fields, optional=others)
        if extras:
            base = st.tuples(base, unknown_fields).map(lambda pair: {**pair[1], **pair[0]})
        return sometimes_junk(base)

    def lists(item: st.SearchStrategy, *, min_size: int = 0, max_size: int = 3) -> st.SearchStrategy:
        return sometimes_junk(st.lists(item, min_size=min_size, max_size=max_size))

    names = st.sampled_from(["get_weather", "lookup", "respond_with_json", "f", ""])
    type_names = st.sampled_from(["object", "string", "integer", "number", "boolean", "array", "null"])
    schemas = st.recursive(
        st.fixed_dictionaries({}, optional={"type": sometimes_junk(type_names), "description": sometimes_junk(TEXT)}),
        lambda inner: st.fixed_dictionaries(
            {},
            optional={
                "type": sometimes_junk(st.one_of(type_names, st.lists(type_names, max_size=3))),
                "properties": sometimes_junk(st.dictionaries(st.sampled_from(["a", "b", "format", "properties", "type"]), inner, max_size=3)),
                "items": sometimes_junk(st.one_of(inner, st.lists(inner, max_size=2), st.booleans())),
                "anyOf": sometimes_junk(st.lists(st.one_of(inner, st.booleans()), max_size=3)),
                "oneOf": sometimes_junk(st.lists(inner, max_size=2)),
                "allOf": sometimes_junk(st.lists(inner, max_size=2)),
                "required": sometimes_junk(st.lists(TEXT, max_size=2)),
                "enum": sometimes_junk(st.lists(JUNK, max_size=3)),
                "format": sometimes_junk(st.sampled_from(["date-time", "email", "int32", "enum"])),
                "additionalProperties": sometimes_junk(st.one_of(st.booleans(), inner)),
                "$ref": sometimes_junk(
                    st.sampled_from(["#/$defs/a", "#/$defs/b", "#", "#/properties", "#/properties/a", "#/default", "#/enum", "#/nowhere", "http://x/s"])
                ),
                "$defs": sometimes_junk(st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2)),
                "default": JUNK,
                "const": JUNK,
                "not": inner,
                "minimum": sometimes_junk(NUMBERS),
                "maxItems": sometimes_junk(st.integers(0, 10)),
            },
        ),
        max_leaves=10,
    )
    images = st.sampled_from(
        ["data:image/png;base64,AAAA", "data:image/jpeg;base64,/9j/"]
        + ([] if translatable else ["https://x.test/i.png", "data:text/plain,hi", "ftp://x", ""])
    )
    image_url = st.one_of(images, obj({"url": images}, {"detail": st.sampled_from(["auto", "low", "high"])}))
    text_part = obj({"type": st.just("text"), "text": TEXT})
    parts = st.one_of(
        text_part,
        obj({"type": st.just("image_url"), "image_url": image_url}),
        obj({"type": st.just("refusal"), "refusal": TEXT}),
        TEXT,
        *(
            ()
            if translatable
            else (
                obj({"type": st.just("input_audio"), "input_audio": obj({"data": TEXT, "format": st.sampled_from(["wav", "mp3"])})}),
                obj({"type": st.just("file"), "file": obj({}, {"filename": TEXT, "file_data": TEXT, "file_id": TEXT})}),
                obj({"type": st.sampled_from(["input_text", "video_url", "image", "input_image"])}, {"text": TEXT}),
            )
        ),
    )
    content = st.one_of(st.none(), TEXT, lists(parts, max_size=3))
    text_content = st.one_of(TEXT, lists(text_part, max_size=2))
    arguments = st.one_of(st.sampled_from(['{"city": "Paris"}', DEEP_STRING, "{}", "", "[1]", "not json"]), st.dictionaries(KEYS, JUNK, max_size=2))
    call_ids = st.sampled_from(["call_1"] if translatable else ["call_1", "call_2", "nope", ""])
    tool_call = obj(
        {"id": call_ids, "type": st.sampled_from(["function"] if translatable else ["function", "function", "custom"])},
        {
            "function": obj({"name": names}, {"arguments": arguments}, required_too=("arguments",) if translatable else ()),
            "custom": obj({"name": names, "input": TEXT}),
        },
        required_too=("function",) if translatable else (),
    )
    assistant = obj({"role": st.just("assistant")}, {"content": content, "tool_calls": lists(tool_call, max_size=2), "refusal": TEXT, "name": TEXT})
    tool_result = obj({"role": st.just("tool"), "content": st.one_of(text_content, st.just(DEEP_STRING)), "tool_call_id": call_ids})
    # A tool-call turn: the user asks, the assistant calls, the tool answers.
    turn = st.tuples(
        obj({"role": st.just("user"), "content": st.one_of(TEXT, lists(parts, min_size=1))}),
        obj({"role": st.just("assistant"), "tool_calls": lists(tool_call, min_size=1, max_size=2)}, {"content": content}),
        tool_result,
    ).map(list)
    messages = st.one_of(
        obj({"role": st.sampled_from(["system", "developer"]), "content": text_content}, {"name": TEXT}),
        obj({"role": st.just("user"), "content": content}, {"name": TEXT}),
        assistant,
        *(() if translatable else (tool_result, obj({"role": st.just("function"), "content": content, "name": names}))),
    )
    conversation = st.one_of(turn, st.lists(messages, min_size=1, max_size=4))
    tools = lists(
        obj(
            {"type": st.sampled_from(["function"] if translatable else ["function", "function", "custom", "web_search"])},
            {
                "function": obj({"name": names}, {"description": TEXT, "parameters": schemas, "strict": st.booleans()}),
                "custom": obj({"name": names}, {"description": TEXT}),
            },
            required_too=("function",) if translatable else (),
        ),
        max_size=3,
    )
    tool_choice = st.one_of(
        st.sampled_from(["auto", "none", "required", "any"]),
        obj({"type": st.sampled_from(["function", "custom", "allowed_tools"])}, {"function": obj({"name": names}), "custom": obj({"name": names})}),
    )
    response_format = obj(
        {"type": st.sampled_from(["text", "json_object", "json_schema", "json_schema"] + ([] if translatable else ["regex"]))},
        {"json_schema": obj({"name": TEXT}, {"schema": schemas, "strict": st.booleans(), "description": TEXT})},
    )
    translated = {
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "top_k": st.integers(-1, 100),
        "max_tokens": st.integers(1, 10**6),
        "max_completion_tokens": st.integers(1, 10**6),
        "stop": st.one_of(TEXT, st.lists(TEXT, max_size=5)),
        "user": TEXT,
        "stream": st.booleans(),
        "stream_options": obj({}, {"include_usage": st.booleans()}),
        "tools": tools,
        "tool_choice": tool_choice,
        "response_format": response_format,
    }
    openai_only = {
        "presence_penalty": st.floats(-2, 2),
        "frequency_penalty": st.floats(-2, 2),
        "n": st.integers(1, 3),
        "seed": INT64,
        "logprobs": st.booleans(),
        "top_logprobs": st.integers(0, 21),
        "logit_bias": st.dictionaries(st.sampled_from(["50256", "1"]), st.integers(-100, 100), max_size=2),
        "safety_identifier": TEXT,
        "reasoning_effort": st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh", "max", "extreme"]),
        "metadata": st.dictionaries(TEXT, TEXT, max_size=2),
        "store": st.booleans(),
        "modalities": st.lists(st.sampled_from(["text", "audio"]), max_size=2),
        "audio": obj({"voice": st.one_of(st.sampled_from(["alloy", "marin"]), obj({"id": TEXT})), "format": st.sampled_from(["wav", "mp3"])}),
        "prediction": obj({"type": st.just("content"), "content": st.one_of(TEXT, st.lists(text_part, max_size=2))}),
        "service_tier": st.sampled_from(["auto", "default", "flex"]),
        "prompt_cache_key": TEXT,
        "verbosity": st.sampled_from(["low", "medium", "high"]),
        "parallel_tool_calls": st.booleans(),
        "something_new": JUNK,
    }
    chat = obj(
        {"model": st.sampled_from(["gpt-test"] * 9 + ([] if translatable else [""])), "messages": sometimes_junk(conversation)},
        translated if translatable else {**translated, **openai_only},
        extras=not translatable,
    )
    embedding_inputs = st.one_of(
        TEXT,
        st.lists(TEXT, max_size=3),
        st.lists(st.integers(0, 100_000), max_size=4),
        st.lists(st.lists(st.integers(0, 100_000), max_size=3), max_size=3),
        st.lists(JUNK, max_size=3),
    )
    embeddings = obj(
        {"model": st.just("embed-test"), "input": embedding_inputs},
        {"encoding_format": st.sampled_from(["float", "base64", "int8"]), "dimensions": st.integers(0, 4096), "user": TEXT},
        extras=not translatable,
    )
    return Bodies(chat, embeddings)


MALFORMED = bodies(junk_one_in=5, translatable=False)
TRANSLATABLE = bodies(junk_one_in=100, translatable=True)
