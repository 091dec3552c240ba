"""The Gemini translator, fed with requests and with written wire cases (``tests/fixtures``)."""

from __future__ import annotations

import base64
import json
import struct

import orjson
import pytest

from adapter_cases import chat, sent, target, user, written
from adapters import AdapterError, UpstreamError
from adapters.base import SSEEvent
from adapters.gemini import GeminiAdapter, gemini_finish_reason_to_finish_reason, json_schema_to_gemini
from balancer.health import Outcome
from streams import assemble, chunks_of, events_of, replay

ADAPTER = GeminiAdapter()
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}}}]


def build(request: dict, stream: bool = False, **target_fields) -> dict:
    return sent(ADAPTER.build_chat(request, target("gemini", **target_fields), stream=stream))


def test_urls_and_the_key_in_a_header_never_the_url():
    plain = ADAPTER.build_chat(chat(user("hi")), target("gemini", base_url="http://g.test", model="gemini-2.5-flash"), stream=False)
    assert plain.url == "http://g.test/v1beta/models/gemini-2.5-flash:generateContent"
    streaming = ADAPTER.build_chat(chat(user("hi")), target("gemini", base_url="http://g.test/v1", model="models/x"), stream=True)
    assert streaming.url == "http://g.test/v1/models/x:streamGenerateContent?alt=sse"
    assert ADAPTER.auth_headers("AIza-secret") == {"x-goog-api-key": "AIza-secret"}
    assert "key=" not in plain.url and "AIza" not in plain.url


def test_roles_system_instruction_and_function_calls_round_trip():
    messages = [
        {"role": "system", "content": "Be brief."},
        user("weather in Hanoi?"),
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Hanoi"}'}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": '{"temp_c": 31}'},
        {"role": "tool", "tool_call_id": "call_9", "content": "plain text result"},
        {"role": "assistant", "content": "It is 31C."},
        user("thanks"),
    ]
    body = build(chat(*messages, tools=TOOLS))
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user", "model", "user"]
    call = body["contents"][1]["parts"][0]
    assert call["functionCall"] == {"name": "get_weather", "args": {"city": "Hanoi"}}
    assert call["thoughtSignature"]  # Gemini 3 refuses history calls without one
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"temp_c": 31}}},
        {"functionResponse": {"name": "get_weather", "response": {"result": "plain text result"}}},
    ]
    assert body["tools"] == [{"functionDeclarations": [{"name": "get_weather", "description": "Weather now", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}]


def test_a_tool_result_for_an_unknown_call_is_a_400():
    with pytest.raises(AdapterError) as caught:
        build(chat(user("x"), {"role": "tool", "tool_call_id": "call_nowhere", "content": "1"}))
    assert caught.value.param == "messages[1].tool_call_id"


def test_images_inline_data_and_remote_urls_rejected():
    content = [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]
    assert build(chat(user(content)))["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}
    with pytest.raises(AdapterError) as caught:
        build(chat(user([{"type": "image_url", "image_url": {"url": "https://img.test/a.png"}}])))
    assert caught.value.param == "messages[0].content[0]" and "data: URL" in caught.value.message


def test_generation_config_from_the_table():
    body = build(chat(user("x"), max_tokens=99, temperature=0.1, top_p=0.5, stop=["A", "B"], seed=4, n=2, presence_penalty=0.3, reasoning_effort="low", user="u"))
    assert body["generationConfig"] == {
        "maxOutputTokens": 99, "temperature": 0.1, "topP": 0.5, "stopSequences": ["A", "B"], "seed": 4,
        "candidateCount": 2, "presencePenalty": 0.3, "thinkingConfig": {"thinkingBudget": 1024},
    }
    assert "user" not in body
    assert build(chat(user("x"), max_tokens=5000), max_tokens=1000)["generationConfig"]["maxOutputTokens"] == 1000


@pytest.mark.parametrize(
    "choice,expected",
    [
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        ("none", {"mode": "NONE"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
    ],
)
def test_tool_choice(choice, expected):
    assert build(chat(user("x"), tools=TOOLS, tool_choice=choice))["toolConfig"] == {"functionCallingConfig": expected}


@pytest.mark.parametrize(
    "params,param",
    [({"top_logprobs": 3}, "top_logprobs"), ({"parallel_tool_calls": False}, "parallel_tool_calls"), ({"reasoning_effort": "extreme"}, "reasoning_effort"),
     ({"modalities": ["text", "audio"]}, "modalities"), ({"unknown_thing": 1}, "unknown_thing")],
)
def test_what_gemini_cannot_honour_is_a_400(params, param):
    with pytest.raises(AdapterError) as caught:
        build(chat(user("x"), **params))
    assert caught.value.param == param


def test_log_probabilities_asked_and_translated(schemas_if_present):
    config = build(chat(user("x"), logprobs=True, top_logprobs=3))["generationConfig"]
    assert (config["responseLogprobs"], config["logprobs"]) == (True, 3)
    assert "logprobs" not in build(chat(user("x"), logprobs=True, top_logprobs=0))["generationConfig"]
    body = orjson.loads(ADAPTER.parse_chat(written("gemini/logprobs.json"), model="m").body)
    if schemas_if_present:
        schemas_if_present.check("CreateChatCompletionResponse", body)
    [answer] = body["choices"]
    assert answer["logprobs"] == {"refusal": None, "content": [
        {"token": "Yes", "logprob": -0.02, "bytes": [89, 101, 115], "top_logprobs": [
            {"token": "Yes", "logprob": -0.02, "bytes": [89, 101, 115]}, {"token": "No", "logprob": -4.1, "bytes": [78, 111]}]},
        {"token": ",", "logprob": -0.3, "bytes": [44], "top_logprobs": [
            {"token": ",", "logprob": -0.3, "bytes": [44]}, {"token": ".", "logprob": -1.5, "bytes": [46]}]},
        {"token": " ok", "logprob": -0.9, "bytes": [32, 111, 107], "top_logprobs": [
            {"token": " ok", "logprob": -0.9, "bytes": [32, 111, 107]}, {"token": " café", "logprob": -1.1, "bytes": list(" café".encode())}]},
    ]}
    chunks = chunks_of(replay(ADAPTER.stream_translator(model="m", include_usage=False), events_of(written("gemini/logprobs.sse"))))
    for chunk in chunks:
        if schemas_if_present:
            schemas_if_present.check("CreateChatCompletionStreamResponse", chunk)
    per_chunk = [[s["token"] for s in c["choices"][0]["logprobs"]["content"]] for c in chunks if c["choices"] and c["choices"][0]["logprobs"]]
    assert per_chunk == [["Yes", ","], [" ok"]]  # each chunk carries its own steps, once
    assert assemble(chunks).content == "Yes, ok"
    plain = orjson.loads(ADAPTER.parse_chat(written("gemini/two_candidates.json"), model="m").body)
    assert all(c["logprobs"] is None for c in plain["choices"])


def test_response_format_becomes_mime_type_and_schema():
    schema = {
        "type": "object",
        "$defs": {"unit": {"type": "string", "enum": ["c", "f"]}},
        "properties": {
            "city": {"type": "string", "format": "uri-reference"},
            "unit": {"$ref": "#/$defs/unit"},
            "note": {"type": ["string", "null"]},
            "alt": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"const": "x"}},
        },
        "required": ["city"],
        "additionalProperties": False,
    }
    config = build(chat(user("x"), response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema, "strict": True}}))["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "note": {"type": "string", "nullable": True},
            "alt": {"type": "integer", "nullable": True},
            "tags": {"type": "array", "items": {"enum": ["x"]}},
        },
        "required": ["city"],
    }
    assert build(chat(user("x"), response_format={"type": "json_object"}))["generationConfig"] == {"responseMimeType": "application/json"}


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"child": {"$ref": "#"}}},
        {"type": "object", "not": {"required": ["a"]}},
        {"type": ["string", "integer"]},
    ],
    ids=["recursive", "not", "two-types"],
)
def test_schemas_gemini_cannot_express_are_a_400(schema):
    with pytest.raises(AdapterError) as caught:
        json_schema_to_gemini(schema, "response_format.json_schema.schema")
    assert caught.value.param.startswith("response_format.json_schema.schema")


def test_stream_with_thoughts_parallel_calls_and_cached_tokens(schemas_if_present):
    translator = ADAPTER.stream_translator(model="m", include_usage=True)
    chunks = chunks_of(replay(translator, events_of(written("gemini/parallel_calls.sse"))))
    for chunk in chunks:
        if schemas_if_present:
            schemas_if_present.check("CreateChatCompletionStreamResponse", chunk)
    got = assemble(chunks)
    assert got.content == "Looking up both."
    assert [(c["name"], json.loads(c["arguments"])) for _, c in sorted(got.tool_calls.items())] == [("get_weather", {"city": "Hanoi"}), ("get_weather", {"city": "Hue"})]
    ids = [c["id"] for c in got.tool_calls.values()]
    assert all(ids) and len(set(ids)) == 2
    assert got.finish_reasons == ["tool_calls"] and got.roles == ["assistant"]
    assert got.usage == [{"prompt_tokens": 1200, "completion_tokens": 65, "total_tokens": 1265,
                          "prompt_tokens_details": {"cached_tokens": 1000}, "completion_tokens_details": {"reasoning_tokens": 40}}]
    assert chunks[0]["id"] == "resp-written-1" and chunks[0]["model"] == "gemini-written"


def test_blocked_prompt_is_a_content_filter_answer(schemas_if_present):
    body = orjson.loads(ADAPTER.parse_chat(written("gemini/prompt_blocked.json"), model="m").body)
    if schemas_if_present:
        schemas_if_present.check("CreateChatCompletionResponse", body)
    [choice] = body["choices"]
    assert choice["finish_reason"] == "content_filter" and choice["message"]["content"] is None
    assert "SAFETY" in choice["message"]["refusal"]
    assert body["usage"]["prompt_tokens"] == 14
    got = assemble(chunks_of(replay(ADAPTER.stream_translator(model="m", include_usage=False), events_of(written("gemini/prompt_blocked.sse")))))
    assert got.finish_reasons == ["content_filter"] and "PROHIBITED_CONTENT" in got.refusal


def test_several_candidates_become_choices_and_unknown_reasons_warn(schemas_if_present, warnings_logged):
    body = orjson.loads(ADAPTER.parse_chat(written("gemini/two_candidates.json"), model="m").body)
    if schemas_if_present:
        schemas_if_present.check("CreateChatCompletionResponse", body)
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in body["choices"]] == [
        (0, "A fine answer.", "stop"), (1, "An answer cut", "content_filter"), (2, "A third.", "stop")]
    assert body["usage"]["prompt_tokens"] == 14  # tool-use prompt tokens are billed as prompt
    assert [r["extra"].get("finish_reason") for r in warnings_logged] == ["SOMETHING_NEW"]


def test_several_candidates_streamed_keep_their_own_index_and_finish(schemas_if_present):
    chunks = chunks_of(replay(ADAPTER.stream_translator(model="m", include_usage=True), events_of(written("gemini/two_candidates.sse"))))
    for chunk in chunks:
        if schemas_if_present:
            schemas_if_present.check("CreateChatCompletionStreamResponse", chunk)
    by_index: dict[int, dict] = {}
    for chunk in chunks:
        for c in chunk["choices"]:  # one choice per chunk, as OpenAI streams n > 1
            entry = by_index.setdefault(c["index"], {"roles": [], "content": "", "finish": []})
            entry["roles"] += [c["delta"]["role"]] if c["delta"].get("role") else []
            entry["content"] += c["delta"].get("content") or ""
            entry["finish"] += [c["finish_reason"]] if c["finish_reason"] else []
    assert by_index == {0: {"roles": ["assistant"], "content": "Red apple", "finish": ["length"]},
                        1: {"roles": ["assistant"], "content": "Blue sky", "finish": ["stop"]}}
    assert all(len(chunk["choices"]) == 1 for chunk in chunks[:-1]) and chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 6  # the last usage, counted once
    assert len({chunk["id"] for chunk in chunks}) == 1


def test_usage_repeated_on_every_chunk_counts_once():
    translator = ADAPTER.stream_translator(model="m", include_usage=True)
    chunk = {"candidates": [{"content": {"parts": [{"text": "a"}]}, "index": 0}], "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 1}}
    for _ in range(3):
        translator.feed(SSEEvent(orjson.dumps(chunk)))
    last = {"candidates": [{"content": {"parts": [{"text": "b"}]}, "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 4}}
    translator.feed(SSEEvent(orjson.dumps(last)))
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens) == (7, 4)


def test_stream_error_object_and_stream_without_finish():
    translator = ADAPTER.stream_translator(model="m", include_usage=False)
    events = events_of(written("gemini/midstream_error.sse"))
    assert b"Partial" in translator.feed(events[0])[0]
    with pytest.raises(UpstreamError) as caught:
        translator.feed(events[1])
    assert caught.value.outcome is Outcome.OVERLOADED and caught.value.envelope["error"]["code"] == "unavailable"
    cut = ADAPTER.stream_translator(model="m", include_usage=False)
    cut.feed(events[0])
    with pytest.raises(UpstreamError, match="finishReason"):
        cut.finish()


@pytest.mark.parametrize(
    "reason,tools,finish",
    [("STOP", False, "stop"), ("STOP", True, "tool_calls"), ("MAX_TOKENS", False, "length"), ("SAFETY", False, "content_filter"),
     ("RECITATION", False, "content_filter"), ("BLOCKLIST", False, "content_filter"), ("PROHIBITED_CONTENT", False, "content_filter"), ("SPII", False, "content_filter")],
)
def test_finish_reasons(reason, tools, finish):
    assert gemini_finish_reason_to_finish_reason(reason, has_tool_calls=tools) == finish


def test_rate_limit_uses_retry_delay_and_a_bad_key_is_auth():
    raw = orjson.dumps({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "20s"}]}})
    limited = ADAPTER.parse_error(429, {}, raw)
    assert (limited.outcome, limited.retry_after, limited.envelope["error"]["type"]) == (Outcome.RATE_LIMITED, 20.0, "rate_limit_error")
    assert ADAPTER.parse_error(429, {"retry-after": "3"}, raw).retry_after == 3.0  # a header wins
    bad_key = ADAPTER.parse_error(400, {}, written("gemini/api_key_invalid.json"))
    assert bad_key.outcome is Outcome.AUTH
    invalid = ADAPTER.parse_error(400, {}, orjson.dumps({"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}))
    assert invalid.outcome is Outcome.CLIENT_ERROR and not invalid.outcome.retryable
    for status, state in ((503, "UNAVAILABLE"), (500, "INTERNAL")):
        error = ADAPTER.parse_error(status, {}, orjson.dumps({"error": {"code": status, "message": "x", "status": state}}))
        assert error.outcome.retryable


def test_embeddings_batch_and_back_to_the_openai_list():
    request = {"model": "client-emb", "input": ["hello world", "bye"], "dimensions": 3, "encoding_format": "base64"}
    upstream = ADAPTER.build_embeddings(request, target("gemini", model="text-embedding-004", base_url="http://g.test"))
    assert upstream.url == "http://g.test/v1beta/models/text-embedding-004:batchEmbedContents"
    assert sent(upstream) == {"requests": [
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "hello world"}]}, "outputDimensionality": 3},
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "bye"}]}, "outputDimensionality": 3},
    ]}
    result = ADAPTER.parse_embeddings(orjson.dumps({"embeddings": [{"values": [0.5, -1.0, 2.0]}, {"values": [0.0, 0.25, 1.5]}]}), model="client-emb", request=request)
    body = orjson.loads(result.body)
    assert body["object"] == "list" and body["model"] == "client-emb" and [d["index"] for d in body["data"]] == [0, 1]
    assert list(struct.unpack("<3f", base64.b64decode(body["data"][0]["embedding"]))) == [0.5, -1.0, 2.0]
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3} and result.usage.prompt_tokens == 3
    with pytest.raises(AdapterError) as caught:
        ADAPTER.build_embeddings({"model": "m", "input": [[1, 2, 3]]}, target("gemini"))
    assert caught.value.param == "input"
