"""The OpenAI pass-through and the ``custom`` type's repairs of common server deviations."""

from __future__ import annotations

import json

import orjson
import pytest

from adapter_cases import sent, target, written
from adapters.base import SSEEvent, UpstreamError
from adapters.openai import OpenAIAdapter
from streams import assemble, chunks_of, events_of, replay

OPENAI, CUSTOM = OpenAIAdapter("openai"), OpenAIAdapter("custom")
PLAIN = b'{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"logprobs":null,"finish_reason":null}]}'


def test_ordinary_frames_are_forwarded_byte_for_byte_by_both():
    for adapter in (OPENAI, CUSTOM):
        translator = adapter.stream_translator(model="m", include_usage=False)
        translator.feed(SSEEvent(PLAIN))  # the first frame fixes the stream's head
        assert translator.feed(SSEEvent(PLAIN)) == [b"data: " + PLAIN + b"\n\n"]


def test_usage_null_frames_go_out_unread_and_a_usage_is_still_taken():
    """OpenAI writes ``"usage":null`` on every chunk of a stream that asked for usage: those go
    out byte for byte; a frame whose usage is an object, or that carries an error, is read."""
    translator = OPENAI.stream_translator(model="m", include_usage=False)
    translator.feed(SSEEvent(PLAIN))
    with_null = PLAIN[:-1] + b',"usage" : null}'
    assert translator.feed(SSEEvent(with_null)) == [b"data: " + with_null + b"\n\n"]
    counted = PLAIN[:-1] + b',"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}'
    (piece,) = translator.feed(SSEEvent(counted))
    assert b'"usage"' not in piece  # taken for the final usage chunk, not forwarded
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens) == (3, 4)
    with pytest.raises(UpstreamError):
        translator.feed(SSEEvent(b'{"usage":null,"error":{"message":"overloaded"}}'))


def test_openai_responses_pass_through_untouched():
    raw = b'{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":null}],"usage":null}'
    assert OPENAI.parse_chat(raw, model="m").body is raw


def test_custom_stream_repairs(schemas_if_present):
    translator = CUSTOM.stream_translator(model="m", include_usage=True)
    chunks = chunks_of(replay(translator, events_of(written("custom/deviant_stream.sse"))))
    for chunk in chunks:
        if schemas_if_present:
            schemas_if_present.check("CreateChatCompletionStreamResponse", chunk)
    got = assemble(chunks)  # concatenates ids and names the way the OpenAI SDK does
    assert got.tool_calls == {
        0: {"id": "call_w1", "name": "get_weather", "arguments": '{"city": "Hanoi"}'},
        1: {"id": "call_w2", "name": "get_time", "arguments": '{"zone":"Asia/Ho_Chi_Minh"}'},
    }
    assert got.finish_reasons == ["tool_calls"]
    assert got.usage == [{"prompt_tokens": 31, "completion_tokens": 17, "total_tokens": 48}] and got.usage_last
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens) == (31, 17)


def test_without_repairs_the_same_stream_would_break_clients():
    translator = OPENAI.stream_translator(model="m", include_usage=False)
    frames = [piece for event in events_of(written("custom/deviant_stream.sse")) for piece in translator.feed(event)]
    chunks = chunks_of(frames + [b"data: [DONE]\n\n"])
    got_ids = [tc.get("id") for c in chunks for ch in c["choices"] for tc in (ch["delta"].get("tool_calls") or [])]
    assert got_ids.count("call_w1") == 2  # what the custom repairs remove
    with pytest.raises(UpstreamError, match=r"\[DONE\]"):
        translator.finish()  # and the openai type, unlike custom, insists on [DONE]


def test_custom_response_repairs(schemas_if_present):
    result = CUSTOM.parse_chat(written("custom/deviant_response.json"), model="client-model")
    body = orjson.loads(result.body)
    if schemas_if_present:
        schemas_if_present.check("CreateChatCompletionResponse", body)
    message = body["choices"][0]["message"]
    assert message["refusal"] is None and body["object"] == "chat.completion" and isinstance(body["created"], int)
    assert [json.loads(c["function"]["arguments"]) for c in message["tool_calls"]] == [{"city": "Hanoi"}, {"zone": "UTC"}]
    assert all(c["id"] and c["type"] == "function" for c in message["tool_calls"])
    assert body["choices"][0]["finish_reason"] == "tool_calls" and "usage" not in body
    assert result.usage is None


def test_a_valid_custom_response_is_not_reserialized():
    raw = orjson.dumps({"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": None}, "logprobs": None, "finish_reason": "stop"}]})
    assert CUSTOM.parse_chat(raw, model="m").body is raw


def test_build_chat_keeps_params_drops_configured_ones_and_caps_tokens():
    chat = {"model": "client", "messages": [{"role": "user", "content": "x"}], "seed": 1, "logprobs": True, "max_tokens": 900, "vendor": {"a": 1}}
    body = sent(CUSTOM.build_chat(chat, target("custom", drop_params=("logprobs",), max_tokens=500), stream=True))
    assert body["model"] == "up-model" and body["seed"] == 1 and body["vendor"] == {"a": 1} and "logprobs" not in body
    assert body["max_tokens"] == 500 and body["stream_options"] == {"include_usage": True}
    assert chat["max_tokens"] == 900  # the client's body is not mutated


def test_embeddings_pass_through():
    request = OPENAI.build_embeddings({"model": "alias", "input": ["a"], "user": "u"}, target("openai", base_url="http://o.test"))
    assert request.url == "http://o.test/v1/embeddings" and sent(request) == {"model": "up-model", "input": ["a"], "user": "u"}
    raw = orjson.dumps({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}], "model": "m", "usage": {"prompt_tokens": 4, "total_tokens": 4}})
    result = OPENAI.parse_embeddings(raw, model="alias", request={})
    assert result.body is raw and result.usage.prompt_tokens == 4
