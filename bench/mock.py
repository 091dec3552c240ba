"""The upstream mock: nginx answering every request with a fixed body, from a generated config.

Each path prefix stands for one upstream and answers any request under it (whatever the method,
path tail or body) with one fixed body:

- ``/openai/``            an OpenAI ``chat.completion``
- ``/openai-stream/``     an OpenAI SSE stream: 50 content chunks, a usage chunk, ``[DONE]``
- ``/anthropic/``         an Anthropic Messages response
- ``/anthropic-stream/``  an Anthropic Messages SSE stream (50 text deltas, usage on
  ``message_start`` and ``message_delta``)
- ``/rejecting/``         HTTP 400 with an OpenAI error body (the upstream refuses the request)

Bodies live in the config and are sent with ``return <status>``: nginx's static-file handler refuses
POST (405), while ``return`` answers any method and sets ``Content-Length``. One config token may
not exceed 4 KB, so each body is cut into pieces held by constant ``map`` variables and
``return`` joins them.
"""

from __future__ import annotations

from pathlib import Path

import orjson

STREAM_CHUNKS = 50
PROMPT_TOKENS = 24
COMPLETION_TOKENS = STREAM_CHUNKS
CREATED = 1764201600

OPENAI = "/openai"
OPENAI_STREAM = "/openai-stream"
ANTHROPIC = "/anthropic"
ANTHROPIC_STREAM = "/anthropic-stream"
REJECTING = "/rejecting"

_WORDS = [f"word{n} " for n in range(STREAM_CHUNKS)]
TEXT = "".join(_WORDS)


def _sse(payload: dict, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(payload) + b"\n\n"


def openai_chat() -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": CREATED,
            "model": "gpt-bench",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": TEXT}, "logprobs": None, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS},
        }
    )


def openai_stream() -> bytes:
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED, "model": "gpt-bench"}
    frames = []
    for n, word in enumerate(_WORDS):
        delta = {"role": "assistant", "content": word} if n == 0 else {"content": word}
        last = n == STREAM_CHUNKS - 1
        frames.append(_sse({**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": "stop" if last else None}]}))
    usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}
    frames.append(_sse({**head, "choices": [], "usage": usage}))
    frames.append(b"data: [DONE]\n\n")
    return b"".join(frames)


def anthropic_message() -> bytes:
    return orjson.dumps(
        {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": "claude-bench",
            "content": [{"type": "text", "text": TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS},
        }
    )


def anthropic_stream() -> bytes:
    message = {
        "id": "msg_bench", "type": "message", "role": "assistant", "content": [], "model": "claude-bench",
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1},
    }
    frames = [
        _sse({"type": "message_start", "message": message}, "message_start"),
        _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}, "content_block_start"),
        _sse({"type": "ping"}, "ping"),
    ]
    for word in _WORDS:
        frames.append(_sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}, "content_block_delta"))
    frames += [
        _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        _sse(
            {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": COMPLETION_TOKENS}},
            "message_delta",
        ),
        _sse({"type": "message_stop"}, "message_stop"),
    ]
    return b"".join(frames)


def openai_rejection() -> bytes:
    error = {"message": "This model's maximum context length is 128000 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}
    return orjson.dumps({"error": error})


def routes() -> dict[str, tuple[str, bytes, int]]:
    """Path prefix -> (content type, body, status)."""
    return {
        OPENAI: ("application/json", openai_chat(), 200),
        OPENAI_STREAM: ("text/event-stream", openai_stream(), 200),
        ANTHROPIC: ("application/json", anthropic_message(), 200),
        ANTHROPIC_STREAM: ("text/event-stream", anthropic_stream(), 200),
        REJECTING: ("application/json", openai_rejection(), 400),
    }


def nginx_quote(body: bytes) -> str:
    """``body`` as an nginx single-quoted string. nginx would expand ``$name`` inside it, so the
    fixed bodies must not contain ``$`` (they are generated here, and do not)."""
    text = body.decode()
    if "$" in text:
        raise ValueError("nginx return text cannot contain '$'")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


PIECE = 3000  # bytes of body per config token (nginx allows 4096 per token, escapes included)


def body_variables(name: str, body: bytes) -> tuple[list[str], str]:
    """``map`` blocks holding ``body`` in pieces, and the ``return`` text that joins them."""
    text = body.decode()
    pieces = [text[i : i + PIECE] for i in range(0, len(text), PIECE)] or [""]
    maps, refs = [], []
    for n, piece in enumerate(pieces):
        variable = f"$body_{name}_{n}"
        maps.append(f"  map $request_method {variable} {{ default {nginx_quote(piece.encode())}; }}")
        refs.append(variable)
    return maps, '"' + "".join(refs) + '"'


def nginx_config(workdir: Path, port: int) -> str:
    """A complete nginx.conf: one process, no daemon, everything inside ``workdir``."""
    maps, locations = [], []
    for prefix, (ctype, body, status) in routes().items():
        variables, joined = body_variables(prefix.strip("/").replace("-", "_"), body)
        maps += variables
        locations.append(f"    location {prefix}/ {{\n      default_type {ctype};\n      return {status} {joined};\n    }}")
    temp = workdir / "nginx-temp"
    maps_text = "\n".join(maps)
    locations_text = "\n".join(locations)
    return f"""# generated by bench/mock.py
daemon off;
master_process off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_buffer_size 64k;
  client_max_body_size 16m;
  client_body_temp_path {temp}/body;
  proxy_temp_path {temp}/proxy;
  fastcgi_temp_path {temp}/fastcgi;
  uwsgi_temp_path {temp}/uwsgi;
  scgi_temp_path {temp}/scgi;
  map_hash_bucket_size 128;
{maps_text}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
{locations_text}
    location / {{ return 404; }}
  }}
}}
"""


def write_config(workdir: Path, port: int) -> Path:
    (workdir / "nginx-temp").mkdir(parents=True, exist_ok=True)
    path = workdir / "nginx.conf"
    path.write_text(nginx_config(workdir, port))
    return path
