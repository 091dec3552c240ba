"""Replaying upstream streams through a translator, and reading the result as a client would."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from adapters.base import SSEEvent
from adapters.sse import SSEDecoder


def events_of(raw: bytes, *, json_lines: bool = False) -> list[SSEEvent]:
    """SSE events from raw wire bytes, or from vercel/ai's one-JSON-payload-per-line captures."""
    if json_lines:
        return [SSEEvent(line) for line in raw.splitlines() if line.strip()]
    decoder = SSEDecoder()
    return decoder.feed(raw) + decoder.close()


def replay(translator, events: list[SSEEvent]) -> list[bytes]:
    """Every frame the client would get, as dispatch drives a translator (stop once ``done``)."""
    frames: list[bytes] = []
    for event in events:
        if translator.done:
            break
        frames.extend(translator.feed(event))
    return frames + translator.finish()


def chunks_of(frames: list[bytes]) -> list[dict]:
    """The JSON chunks of SSE frames; asserts the stream ends with exactly one ``[DONE]``."""
    payloads = []
    for piece in frames:
        assert piece.startswith(b"data: ") and piece.endswith(b"\n\n"), piece
        payloads.append(piece[6:-2])
    assert payloads[-1] == b"[DONE]" and payloads.count(b"[DONE]") == 1
    return [orjson.loads(p) for p in payloads[:-1]]


@dataclass
class Assembled:
    """A stream put together the way the OpenAI SDK's accumulator does."""

    content: str = ""
    refusal: str = ""
    roles: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict] = field(default_factory=dict)  # index -> {id, name, arguments}
    finish_reasons: list[str] = field(default_factory=list)
    usage: list[dict] = field(default_factory=list)
    usage_last: bool = True


def assemble(chunks: list[dict]) -> Assembled:
    out = Assembled()
    for number, chunk in enumerate(chunks):
        if chunk.get("usage"):
            out.usage.append(chunk["usage"])
            out.usage_last = out.usage_last and number == len(chunks) - 1 and chunk["choices"] == []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("role"):
                out.roles.append(delta["role"])
            out.content += delta.get("content") or ""
            out.refusal += delta.get("refusal") or ""
            for call in delta.get("tool_calls") or []:
                entry = out.tool_calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
                function = call.get("function") or {}
                entry["id"] += call.get("id") or ""
                entry["name"] += function.get("name") or ""
                entry["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                out.finish_reasons.append(choice["finish_reason"])
    return out
