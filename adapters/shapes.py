"""Reading OpenAI request shapes and building OpenAI response shapes, for the translating adapters.

Every translator (Anthropic, Gemini) reads the same client shapes (message content parts, tool
calls, data URLs) and writes the same answer shapes (``chat.completion``, its stream chunks,
embeddings lists). Those pieces live here once.
"""

from __future__ import annotations

import base64
import os
import re
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import orjson

from adapters.base import AdapterError, Usage, usage_to_openai
from adapters.sse import frame

# How deeply arrays and objects may nest in anything a client sends. orjson reads 1,024 levels but
# writes only 254, so JSON the gateway decodes (the body, tool-call arguments sent as strings) is
# checked before it is written again; 64 leaves room for every wrapping an adapter adds.
MAX_NESTING = 64

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+\-]+/[\w.+\-]+)?(?:;[^,;]*)*?;base64,(?P<data>.*)$", re.S)


# ------------------------------------------------------------------ reading client requests


def nesting_exceeds(value: Any, limit: int) -> bool:
    """True when arrays/objects in ``value`` nest more than ``limit`` levels (``[]`` is one, a scalar none)."""
    if type(value) is dict:
        children: Any = value.values()
    elif type(value) is list:
        children = value
    else:
        return False
    if limit < 1:
        return True
    for child in children:
        if (type(child) is dict or type(child) is list) and nesting_exceeds(child, limit - 1):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Image:
    """An ``image_url`` part: either inline bytes (``mime`` + base64 ``data``) or a remote ``url``."""

    mime: str | None = None
    data: str | None = None
    url: str | None = None
    where: str = ""  # the part's place in the request, e.g. messages[0].content[1], for errors


def content_parts(content: Any, where: str) -> Iterator[str | Image]:
    """The text pieces and images of a message ``content`` (a string or a list of parts), in order.

    Raises ``AdapterError`` naming ``where`` (e.g. ``messages[2].content[1]``) for part types no
    translator carries (audio, files) and for malformed image parts.
    """
    if content is None:
        return
    if isinstance(content, str):
        if content:
            yield content
        return
    if not isinstance(content, list):
        raise AdapterError(f"{where} must be a string or an array of content parts.", param=where, code="invalid_type")
    for index, part in enumerate(content):
        here = f"{where}[{index}]"
        if isinstance(part, str):  # tolerated: some clients send bare strings
            if part:
                yield part
            continue
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "input_text", "refusal"):
            text = part.get("text") if kind != "refusal" else part.get("refusal")
            if isinstance(text, str) and text:
                yield text
        elif kind == "image_url":
            yield image_of(part.get("image_url"), here)
        else:
            raise AdapterError(f"{here}: content parts of type {kind!r} cannot be sent to this provider.", param=here)


def image_of(image_url: Any, where: str) -> Image:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url:
        raise AdapterError(f"{where}.image_url.url must be a data: or http(s):// URL.", param=where, code="invalid_value")
    if url.startswith("data:"):
        match = _DATA_URL.match(url)
        if not match:
            raise AdapterError(f"{where}: only base64 data URLs are supported for images.", param=where, code="invalid_value")
        return Image(mime=match.group("mime") or "image/png", data=match.group("data"), where=where)
    if url.startswith(("http://", "https://")):
        return Image(url=url, where=where)
    raise AdapterError(f"{where}.image_url.url must be a data: or http(s):// URL.", param=where, code="invalid_value")


def text_of(content: Any, where: str) -> str:
    """The text of a message ``content``; images are not allowed here (system, tool results)."""
    pieces = []
    for piece in content_parts(content, where):
        if isinstance(piece, Image):
            raise AdapterError(f"{where}: images are only supported in user messages.", param=where)
        pieces.append(piece)
    return "\n".join(pieces)


def tool_call_arguments(call: Any, where: str) -> tuple[str, str, dict]:
    """``(id, name, arguments as an object)`` of an assistant ``tool_calls`` entry."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise AdapterError(f"{where} must be a function tool call with a name.", param=where, code="invalid_value")
    raw = function.get("arguments")
    if raw in (None, ""):
        arguments: Any = {}
    elif isinstance(raw, dict):
        arguments = raw
    else:
        try:
            arguments = orjson.loads(raw)
        except (orjson.JSONDecodeError, TypeError):
            raise AdapterError(f"{where}.function.arguments is not valid JSON.", param=where, code="invalid_value") from None
    if not isinstance(arguments, dict):
        raise AdapterError(f"{where}.function.arguments must be a JSON object.", param=where, code="invalid_value")
    if nesting_exceeds(arguments, MAX_NESTING):
        raise AdapterError(
            f"{where}.function.arguments nests arrays and objects more than {MAX_NESTING} levels deep.", param=where, code="invalid_value"
        )
    return str(call.get("id") or ""), function["name"], arguments


def function_tools(tools: Any) -> list[dict]:
    """The ``function`` objects of ``tools``; other tool types cannot be translated."""
    if not isinstance(tools, list):
        raise AdapterError("'tools' must be an array.", param="tools", code="invalid_type")
    out = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(function, dict):
            raise AdapterError(f"tools[{index}]: only function tools can be sent to this provider.", param=f"tools[{index}]")
        if not isinstance(function.get("name"), str) or not function["name"]:
            raise AdapterError(f"tools[{index}].function.name is required.", param=f"tools[{index}].function.name")
        out.append(function)
    return out


def named_tool_choice(choice: Any) -> str | None:
    """The function name of ``{"type": "function", "function": {"name": ...}}``, else None."""
    if isinstance(choice, dict):
        function = choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return function["name"]
        raise AdapterError("'tool_choice' must be none, auto, required or a named function.", param="tool_choice", code="invalid_value")
    return None


def requested_max_tokens(chat: dict, target) -> int | None:
    """``max_completion_tokens`` or ``max_tokens``, capped at the provider's ``limits.max_tokens``."""
    value = chat.get("max_completion_tokens") or chat.get("max_tokens")
    if value is None:
        return None
    cap = target.max_tokens
    return min(value, cap) if cap else value


# ------------------------------------------------------------------ building OpenAI answers


class _Entropy:
    """Random bytes from the operating system's generator, drawn a block at a time: ids need
    its unpredictability, not a system call each (several ids a request). A forked child
    drops the block it inherited, so no two processes hand out the same bytes."""

    BLOCK = 4096

    def __init__(self) -> None:
        self._block = b""
        self._at = 0
        self._lock = threading.Lock()  # answers parsed on a thread make ids too
        os.register_at_fork(after_in_child=self._drop)

    def _drop(self) -> None:
        self._block, self._at = b"", 0
        self._lock = threading.Lock()

    def hex(self, nbytes: int) -> str:
        if nbytes > self.BLOCK:
            return os.urandom(nbytes).hex()
        with self._lock:
            if self._at + nbytes > len(self._block):
                self._block, self._at = os.urandom(self.BLOCK), 0
            start = self._at
            self._at = start + nbytes
            return self._block[start : start + nbytes].hex()


_entropy = _Entropy()


def random_hex(nbytes: int) -> str:
    """``2 * nbytes`` random hex digits, as unpredictable as ``secrets.token_hex(nbytes)``."""
    return _entropy.hex(nbytes)


def new_id(prefix: str = "chatcmpl-") -> str:
    return prefix + random_hex(12)


def now() -> int:
    return int(time.time())


def tool_call(call_id: str, name: str, arguments: Any) -> dict:
    """An OpenAI ``tool_calls`` entry; ``arguments`` (an object) becomes a JSON string."""
    text = arguments if isinstance(arguments, str) else orjson.dumps(arguments if arguments is not None else {}).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def choice(
    index: int, content: str | None, tool_calls: list[dict], finish_reason: str, refusal: str | None = None, *, logprobs: dict | None = None
) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": finish_reason}


def usage_object(usage: Usage, reasoning_tokens: int = 0) -> dict:
    out = usage_to_openai(usage)
    if reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return out


def completion(response_id: str, model: str, choices: list[dict], usage: dict | None) -> dict:
    out = {"id": response_id, "object": "chat.completion", "created": now(), "model": model, "choices": choices}
    if usage is not None:
        out["usage"] = usage
    return out


@dataclass(slots=True)
class ChunkHead:
    """What every chunk of one stream repeats: id, creation time and model."""

    id: str
    model: str
    created: int

    def chunk(self, index: int, delta: dict, finish_reason: str | None = None, *, logprobs: dict | None = None) -> bytes:
        return frame(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}],
            }
        )

    def usage_chunk(self, usage: dict) -> bytes:
        return frame(
            {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model, "choices": [], "usage": usage}
        )


def embedding_vector(values: list[float], encoding_format: str | None) -> list[float] | str:
    """OpenAI's ``encoding_format: base64`` is little-endian float32 bytes, base64-encoded."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
    return values


def embeddings_list(model: str, vectors: list[list[float]], prompt_tokens: int, encoding_format: str | None) -> dict:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": embedding_vector(v, encoding_format)} for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
