"""The schema checks used by the translation tests must be able to fail."""

from __future__ import annotations

import pytest

from openai_schema import nullable_to_null_type

GOOD_CHUNK = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "delta": {"content": "hi"}, "logprobs": None, "finish_reason": None}],
}


def test_nullable_becomes_a_null_type_and_enum_member():
    converted = nullable_to_null_type({"type": "string", "enum": ["stop"], "nullable": True, "properties": {"x": {"type": "integer", "nullable": True}}})
    assert converted == {"type": ["string", "null"], "enum": ["stop", None], "properties": {"x": {"type": ["integer", "null"]}}}
    assert nullable_to_null_type({"$ref": "#/x", "nullable": True}) == {"anyOf": [{"$ref": "#/x"}, {"type": "null"}]}


def test_valid_chunk_passes(openai_schemas):
    openai_schemas.check("CreateChatCompletionStreamResponse", GOOD_CHUNK)


@pytest.mark.parametrize(
    "broken",
    [
        {**GOOD_CHUNK, "choices": [{**GOOD_CHUNK["choices"][0], "finish_reason": "finished"}]},
        {**GOOD_CHUNK, "object": "chat.completion"},
        {**GOOD_CHUNK, "choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": "{}"}}]}, "finish_reason": None}]},
        {key: value for key, value in GOOD_CHUNK.items() if key != "id"},
    ],
    ids=["unknown-finish-reason", "wrong-object", "tool-call-without-index", "missing-id"],
)
def test_broken_chunks_fail(openai_schemas, broken):
    with pytest.raises(AssertionError):
        openai_schemas.check("CreateChatCompletionStreamResponse", broken)


def test_response_without_refusal_fails(openai_schemas):
    body = {
        "id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "logprobs": None, "finish_reason": "stop"}],
    }
    with pytest.raises(AssertionError):
        openai_schemas.check("CreateChatCompletionResponse", body)
    body["choices"][0]["message"]["refusal"] = None
    openai_schemas.check("CreateChatCompletionResponse", body)
