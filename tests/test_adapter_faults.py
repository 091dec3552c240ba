"""Upstream faults, table-driven across every provider type: bytes go through ``SSEDecoder`` and
the translators exactly as ``app.dispatch`` drives them (``streams.replay``).

Classes covered: streams that end early or carry non-JSON data must fail, never pass as
complete; unreadable token counts make the usage unknown (flagged), never a traceback; error
envelopes keep string-or-null fields whatever the upstream put there; Gemini 3 function calls
streamed in ``partialArgs`` pieces assemble into whole calls, streamed and unary; a Gemini
stream (or answer) of only usage is an empty completion, and the stream sends a frame before it
ends, so dispatch keeps it instead of calling another upstream.
"""

from __future__ import annotations

import json
import math

import orjson
import pytest

from adapter_cases import written
from adapters import adapter_for
from adapters.base import Outcome, UpstreamError
from streams import assemble, chunks_of, events_of, replay

TYPES = ["openai", "custom", "anthropic", "gemini"]


def sse(*payloads: dict | bytes, events: tuple[str, ...] = ()) -> bytes:
    """Wire bytes: one ``data:`` frame per payload (bytes are sent as they are)."""
    out = []
    for number, payload in enumerate(payloads):
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        name = b"event: " + events[number].encode() + b"\n" if events else b""
        out.append(name + b"data: " + data + b"\n\n")
    return b"".join(out)


# ------------------------------------------------------------------ one small answer per provider


def openai_chunk(delta: dict | None = None, finish: str | None = None, index: int = 0, **extra) -> dict:
    choices = [] if delta is None else [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices, **extra}


def openai_wire(usage: object = None, *, done: bool = True, finish: bool = True) -> bytes:
    usage = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6} if usage is None else usage
    frames: list = [openai_chunk({"role": "assistant", "content": ""}), openai_chunk({"content": "hi"})]
    if finish:
        frames.append(openai_chunk({}, "stop"))
    frames.append(openai_chunk(None, usage=usage))
    return sse(*frames) + (b"data: [DONE]\n\n" if done else b"")


def openai_body(usage: object) -> bytes:
    return orjson.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "usage": usage, "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": None}, "logprobs": None, "finish_reason": "stop"}]})


ANTHROPIC_EVENTS = ("message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop")


def anthropic_wire(start_usage: dict, end_usage: dict, *, stop: bool = True) -> bytes:
    payloads = [
        {"type": "message_start", "message": {"id": "msg_1", "model": "claude-x", "usage": start_usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": end_usage},
        {"type": "message_stop"},
    ]
    count = len(payloads) if stop else len(payloads) - 1
    return sse(*payloads[:count], events=ANTHROPIC_EVENTS[:count])


def anthropic_body(usage: dict) -> bytes:
    return orjson.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "stop_reason": "end_turn",
                         "content": [{"type": "text", "text": "hi"}], "usage": usage})


def gemini_chunk(text: str | None, meta: dict | None, finish: str | None = None) -> dict:
    out: dict = {"modelVersion": "gemini-x", "responseId": "r1"}
    if text is not None or finish:
        candidate: dict = {"content": {"role": "model", "parts": [{"text": text or ""}]}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        out["candidates"] = [candidate]
    if meta is not None:
        out["usageMetadata"] = meta
    return out


def gemini_wire(meta: dict, *, finish: bool = True) -> bytes:
    first = {"promptTokenCount": 5, "candidatesTokenCount": 1}
    return sse(gemini_chunk("hi", first), *([gemini_chunk("", meta, "STOP")] if finish else []))


def gemini_body(meta: dict) -> bytes:
    return orjson.dumps({**gemini_chunk("hi", meta, "STOP")})


def translate(kind: str, wire: bytes, *, include_usage: bool = True):
    translator = adapter_for(kind).stream_translator(model="m", include_usage=include_usage)
    return translator, replay(translator, events_of(wire))


# ------------------------------------------------------------------ 1. streams must never lie


def custom_two_choices_one_unfinished() -> bytes:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    return sse(openai_chunk({"role": "assistant", "content": "a"}, index=0), openai_chunk({"role": "assistant", "content": "b"}, index=1),
               openai_chunk({}, "stop", index=0), openai_chunk(None, usage=usage))


ENDED_EARLY = [
    ("openai", openai_wire(done=False), "openai: finish and usage, but no [DONE]"),
    ("openai", openai_wire(done=False, finish=False), "openai: no finish, no [DONE]"),
    ("custom", openai_wire(done=False, finish=False), "custom: usage but no finish_reason"),
    ("custom", sse(openai_chunk({"role": "assistant", "content": "hi"}), openai_chunk({}, "stop")), "custom: finish_reason but no usage"),
    ("custom", custom_two_choices_one_unfinished(), "custom: one of two choices never finished"),
    ("anthropic", anthropic_wire({"input_tokens": 5}, {"output_tokens": 1}, stop=False), "anthropic: no message_stop"),
    ("gemini", gemini_wire({"promptTokenCount": 5}, finish=False), "gemini: no finishReason"),
    ("gemini", sse(gemini_chunk(None, {"promptTokenCount": 9}), gemini_chunk("cut", {"promptTokenCount": 9})), "gemini: usage, then content, no finishReason"),
]


@pytest.mark.parametrize("kind,wire", [(k, w) for k, w, _ in ENDED_EARLY], ids=[i for _, _, i in ENDED_EARLY])
def test_a_stream_that_ends_before_its_end_marker_is_a_server_error(kind, wire):
    translator = adapter_for(kind).stream_translator(model="m", include_usage=True)
    for event in events_of(wire):
        translator.feed(event)
    with pytest.raises(UpstreamError) as caught:
        translator.finish()
    assert caught.value.outcome is Outcome.SERVER_ERROR and caught.value.outcome.retryable


VALID_PREFIX = {
    "openai": sse(openai_chunk({"role": "assistant", "content": ""}), openai_chunk({"content": "hi"})),
    "custom": sse(openai_chunk({"role": "assistant", "content": ""}), openai_chunk({"content": "hi"})),
    "anthropic": sse(*[{"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 1}}},
                       {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                       {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}], events=ANTHROPIC_EVENTS[:3]),
    "gemini": sse(gemini_chunk("hi", None), gemini_chunk(" there", None)),
}
NOT_JSON = {
    "a word": b"data: oops\n\n",
    "an HTML error page": b"data: <html><body>502 Bad Gateway</body></html>\n\n",
    "a cut frame": b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"x\n\n',
    "two frames in one event": b'data: {"id":"c1","choices":[]}\ndata: {"id":"c1","choices":[]}\n\n',
    "a JSON string": b'data: "just a string"\n\n',
    "5000 bytes of noise": b"data: " + b"noise " * 833 + b"\n\n",
}


@pytest.mark.parametrize("kind", TYPES)
@pytest.mark.parametrize("case", list(NOT_JSON))
def test_non_json_data_after_valid_frames_is_an_error_naming_it(kind, case):
    translator = adapter_for(kind).stream_translator(model="m", include_usage=False)
    events = events_of(VALID_PREFIX[kind])
    assert [frame for event in events for frame in translator.feed(event)], "the valid prefix is relayed"
    [bad] = events_of(NOT_JSON[case])
    with pytest.raises(UpstreamError) as caught:
        translator.feed(bad)
    message = caught.value.message
    assert caught.value.outcome is Outcome.SERVER_ERROR
    assert repr(bad.data[:20])[2:-1] in message, "the raw text is in the message"
    assert len(message) < 400, "and truncated"


# ------------------------------------------------------------------ 2. unreadable usage


BAD_COUNTS = {"a word": "abc", "a list": [5], "an object": {"n": 5}, "a boolean": True, "negative": -5, "huge": 10**19, "a huge float": 1e30,
              "a fraction": 2.5, "a numeric string": "12"}


def unary_with_bad_count(kind: str, bad: object) -> bytes:
    if kind in ("openai", "custom"):
        return openai_body({"prompt_tokens": bad, "completion_tokens": 1, "total_tokens": 6})
    if kind == "anthropic":
        return anthropic_body({"input_tokens": 5, "output_tokens": bad})
    return gemini_body({"promptTokenCount": 5, "candidatesTokenCount": 1, "thoughtsTokenCount": bad})


def stream_with_bad_count(kind: str, bad: object) -> bytes:
    if kind in ("openai", "custom"):
        return openai_wire({"prompt_tokens": 5, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": bad}})
    if kind == "anthropic":
        return anthropic_wire({"input_tokens": 5, "cache_read_input_tokens": bad}, {"output_tokens": 1})
    return gemini_wire({"promptTokenCount": bad, "candidatesTokenCount": 2})


@pytest.mark.parametrize("kind", TYPES)
@pytest.mark.parametrize("bad", list(BAD_COUNTS))
def test_an_unreadable_count_makes_a_unary_answers_usage_unknown(kind, bad, schemas_if_present):
    result = adapter_for(kind).parse_chat(unary_with_bad_count(kind, BAD_COUNTS[bad]), model="m")
    assert result.usage is None and result.usage_unreadable is True
    body = orjson.loads(result.body)
    assert body["choices"][0]["message"]["content"] == "hi" and body["choices"][0]["finish_reason"] == "stop"
    if schemas_if_present and kind not in ("openai",):  # openai passes the upstream's body through untouched
        schemas_if_present.check("CreateChatCompletionResponse", body)


@pytest.mark.parametrize("kind", TYPES)
@pytest.mark.parametrize("bad", list(BAD_COUNTS))
def test_an_unreadable_count_makes_a_streams_usage_unknown(kind, bad, schemas_if_present):
    translator, frames = translate(kind, stream_with_bad_count(kind, BAD_COUNTS[bad]))
    chunks = chunks_of(frames)
    got = assemble(chunks)
    assert (got.content, got.finish_reasons) == ("hi", ["stop"]), "the answer still completes"
    assert got.usage == [], "an unknown usage is not relayed"
    assert translator.usage is None and translator.usage_unreadable is True
    for chunk in chunks:
        if schemas_if_present:
            schemas_if_present.check("CreateChatCompletionStreamResponse", chunk)


@pytest.mark.parametrize("kind", TYPES)
def test_readable_usage_is_not_flagged(kind):
    good = {"openai": openai_body({"prompt_tokens": 5, "completion_tokens": 1.0}), "anthropic": anthropic_body({"input_tokens": 5, "output_tokens": 1}),
            "gemini": gemini_body({"promptTokenCount": 5, "candidatesTokenCount": 1})}
    result = adapter_for(kind).parse_chat(good["openai" if kind == "custom" else kind], model="m")
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage_unreadable) == (5, 1, False)
    wires = {"openai": openai_wire(), "anthropic": anthropic_wire({"input_tokens": 5}, {"output_tokens": 1}), "gemini": gemini_wire({"promptTokenCount": 5, "candidatesTokenCount": 1})}
    translator, _ = translate(kind, wires["openai" if kind == "custom" else kind])
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens, translator.usage_unreadable) == (5, 1, False)


@pytest.mark.parametrize(
    "value,count",
    [(None, 0), (0, 0), (7, 7), (7.0, 7), (10**9, 10**9), ("abc", None), ("7", None), ([7], None), ({"n": 7}, None), (True, None),
     (False, None), (-1, None), (7.5, None), (math.nan, None), (math.inf, None), (-math.inf, None), (10**30, None), (1e300, None)],
)
def test_read_count(value, count):
    from adapters.base import read_count  # imported here so the rest of the module runs on builds without it

    assert read_count(value) == count


# ------------------------------------------------------------------ 3. error fields that are not strings


ODD_FIELDS = {"message": {"detail": "bad key sk-live-123"}, "type": ["invalid_request_error"], "param": {"name": "tools"}, "code": [429, "slow"]}


def check_envelope(envelope: dict) -> dict:
    error = envelope["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert all(value is None or isinstance(value, str) for value in error.values()), error
    assert isinstance(error["message"], str) and error["message"]
    return error


def odd_error_body(kind: str) -> bytes:
    if kind in ("openai", "custom"):
        return orjson.dumps({"error": ODD_FIELDS})
    if kind == "anthropic":
        return orjson.dumps({"type": "error", "error": {"type": ODD_FIELDS["type"], "message": ODD_FIELDS["message"]}})
    return orjson.dumps({"error": {"code": "429", "message": ODD_FIELDS["message"], "status": ODD_FIELDS["param"], "details": 5}})


@pytest.mark.parametrize("kind", TYPES)
def test_error_fields_that_are_not_strings_become_compact_json(kind):
    error = adapter_for(kind).parse_error(400, {}, odd_error_body(kind))
    fields = check_envelope(error.envelope)
    assert fields["message"] == '{"detail":"bad key sk-live-123"}' == error.message  # text the redactor can scrub
    assert error.outcome is Outcome.CLIENT_ERROR
    if kind in ("openai", "custom"):
        assert (fields["param"], fields["code"]) == ('{"name":"tools"}', '[429,"slow"]')


@pytest.mark.parametrize(
    "kind,wire,message",
    [
        ("openai", sse(openai_chunk({"content": "a"}), {"error": ODD_FIELDS}), '{"detail":"bad key sk-live-123"}'),
        ("custom", sse(openai_chunk({"content": "a"}), {"error": {"message": ["one", 2], "param": 3, "code": {"c": True}, "type": None}}), '["one",2]'),
        ("anthropic", sse({"type": "error", "error": {"type": {"t": 1}, "message": ["busy"]}}, events=("error",)), '["busy"]'),
        ("gemini", sse(gemini_chunk("a", None), {"error": {"code": True, "message": {"m": 1}, "status": 3, "details": "x"}}), '{"m":1}'),
    ],
    ids=["openai", "custom", "anthropic", "gemini"],
)
def test_stream_error_events_with_odd_fields_still_make_an_envelope(kind, wire, message):
    translator = adapter_for(kind).stream_translator(model="m", include_usage=False)
    with pytest.raises(UpstreamError) as caught:
        for event in events_of(wire):
            translator.feed(event)
    assert check_envelope(caught.value.envelope)["message"] == message
    assert caught.value.status is None  # a stream error has no HTTP status of its own


@pytest.mark.parametrize(
    "kind,body",
    [("anthropic", b'{"type": "error", "error": "plain words"}'), ("gemini", b'{"error": {"message": "plain words", "details": 7}}'),
     ("openai", b'{"error": {"message": "plain words", "type": 7}}')],
)
def test_error_envelopes_from_odd_shapes(kind, body):
    error = adapter_for(kind).parse_error(503, {}, body)
    assert check_envelope(error.envelope)["message"] == "plain words"
    assert error.outcome is Outcome.OVERLOADED


# ------------------------------------------------------------------ 4. Gemini 3 function-call arguments in pieces


BOOK_TABLE = {"restaurant": "Quán Ăn Ngon", "party": {"size": 4, "highChair": True}, "notes": None, "times": ["19:00", "19:30"]}
SEND_SMS = {"to": "+84 900 000 000", "text body": 'Table "booked"'}


def test_partial_args_stream_into_two_whole_calls(schemas_if_present):
    translator, frames = translate("gemini", written("gemini/partial_args.sse"))
    chunks = chunks_of(frames)
    for chunk in chunks:
        if schemas_if_present:
            schemas_if_present.check("CreateChatCompletionStreamResponse", chunk)
    deltas = [call for c in chunks for choice in c["choices"] for call in choice["delta"].get("tool_calls") or []]
    assert [json.loads(d["function"]["arguments"]) for d in deltas] == [BOOK_TABLE, SEND_SMS], "each call once, its JSON complete"
    got = assemble(chunks)
    assert [(c["name"], json.loads(c["arguments"])) for _, c in sorted(got.tool_calls.items())] == [("book_table", BOOK_TABLE), ("send_sms", SEND_SMS)]
    assert len({c["id"] for c in got.tool_calls.values()}) == 2 and all(c["id"] for c in got.tool_calls.values())
    assert (got.content, got.finish_reasons, got.roles) == ("Setting both.", ["tool_calls"], ["assistant"])
    assert translator.usage.completion_tokens == 20


def test_partial_args_in_a_unary_answer(schemas_if_present):
    body = orjson.loads(adapter_for("gemini").parse_chat(written("gemini/partial_args.json"), model="m").body)
    if schemas_if_present:
        schemas_if_present.check("CreateChatCompletionResponse", body)
    [choice] = body["choices"]
    calls = [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in choice["message"]["tool_calls"]]
    assert calls == [("fc-1", "book_table", {"restaurant": "Quán Ăn Ngon", "party": {"size": 4}}),
                     ("fc-2", "send_sms", {"to": "+84 900 000 000", "text": "ok"})]
    assert choice["finish_reason"] == "tool_calls"


def gemini_call_parts(*calls: dict, finish: str | None = "STOP") -> bytes:
    return sse(*[gemini_chunk(None, None) | {"candidates": [{"content": {"role": "model", "parts": [{"functionCall": c}]}, "index": 0,
                                                              **({"finishReason": finish} if finish and n == len(calls) - 1 else {})}]}
                 for n, c in enumerate(calls)])


@pytest.mark.parametrize(
    "calls,arguments",
    [
        ([{"name": "f", "willContinue": True}, {"partialArgs": [{"jsonPath": "$.a[1].b", "numberValue": 1.5}], "willContinue": True}, {}],
         [{"a": [None, {"b": 1.5}]}]),
        ([{"name": "f", "partialArgs": [{"jsonPath": "$['x.y']", "structValue": {"k": [1]}}, {"jsonPath": '$["q"]', "listValue": [True]}]}],
         [{"x.y": {"k": [1]}, "q": [True]}]),
        ([{"name": "f", "partialArgs": [{"jsonPath": "$.s", "stringValue": "ab", "willContinue": True}], "willContinue": True},
          {"partialArgs": [{"jsonPath": "$.s", "stringValue": "cd"}], "willContinue": True}], [{"s": "abcd"}]),  # still open at finishReason
        ([{"name": "f", "args": {}}, {}, {"name": "g", "args": {"z": 0}}], [{}, {"z": 0}]),  # whole calls, a stray terminator between
    ],
    ids=["nested-path", "bracket-names-and-containers", "open-at-finish", "whole-calls"],
)
def test_partial_arg_paths_and_boundaries(calls, arguments):
    _, frames = translate("gemini", gemini_call_parts(*calls))
    got = assemble(chunks_of(frames))
    assert [json.loads(c["arguments"]) for _, c in sorted(got.tool_calls.items())] == arguments


@pytest.mark.parametrize("path", ["$..a", "$.a[*]", "a b", "$[-1]", "$.a[01"])
def test_a_json_path_it_cannot_follow_is_a_server_error(path):
    translator = adapter_for("gemini").stream_translator(model="m", include_usage=False)
    [event] = events_of(gemini_call_parts({"name": "f", "partialArgs": [{"jsonPath": path, "stringValue": "x"}]}))
    with pytest.raises(UpstreamError) as caught:
        translator.feed(event)
    assert caught.value.outcome is Outcome.SERVER_ERROR and path in caught.value.message


# ------------------------------------------------------------------ 5. a Gemini stream of only usage


USAGE_ONLY = {
    "one usage chunk": sse(gemini_chunk(None, {"promptTokenCount": 9, "totalTokenCount": 9})),
    "several": sse(gemini_chunk(None, {"promptTokenCount": 9}), gemini_chunk(None, {"promptTokenCount": 9, "candidatesTokenCount": 0})),
    "empty candidates": sse({"candidates": [{"content": {"role": "model"}, "index": 0}], "usageMetadata": {"promptTokenCount": 9}}),
}


@pytest.mark.parametrize("case", list(USAGE_ONLY))
@pytest.mark.parametrize("include_usage", [True, False])
def test_a_gemini_stream_of_only_usage_is_an_empty_completion(case, include_usage, schemas_if_present):
    translator = adapter_for("gemini").stream_translator(model="m", include_usage=include_usage)
    fed = [frame for event in events_of(USAGE_ONLY[case]) for frame in translator.feed(event)]
    assert fed, "a frame before the stream ends: dispatch's prime() keeps this upstream instead of retrying"
    chunks = chunks_of(fed + translator.finish())
    for chunk in chunks:
        if schemas_if_present:
            schemas_if_present.check("CreateChatCompletionStreamResponse", chunk)
    got = assemble(chunks)
    assert (got.roles, got.content, got.finish_reasons, got.tool_calls) == (["assistant"], "", ["stop"], {})
    assert got.usage == ([{"prompt_tokens": 9, "completion_tokens": 0, "total_tokens": 9}] if include_usage else [])
    assert translator.usage.prompt_tokens == 9



def test_a_gemini_answer_of_only_usage_is_an_empty_answer(schemas_if_present):
    result = adapter_for("gemini").parse_chat(orjson.dumps({"usageMetadata": {"promptTokenCount": 9}, "modelVersion": "g"}), model="m")
    body = orjson.loads(result.body)
    if schemas_if_present:
        schemas_if_present.check("CreateChatCompletionResponse", body)
    [choice] = body["choices"]
    assert (choice["message"]["content"], choice["finish_reason"], result.usage.prompt_tokens) == ("", "stop", 9)
