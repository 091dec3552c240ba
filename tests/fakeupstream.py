"""A scriptable fake LLM provider: a real aiohttp server on 127.0.0.1, in a background thread.

It speaks the OpenAI Chat Completions and Embeddings wire formats. Behaviour is scripted per
API key and per call with ``Step``s: each call by a key takes that key's next queued step, or
its default step, or the server-wide default. A step can answer with a status and body, add
``Retry-After`` (or any) headers, sleep first, stream N chunks, put usage on the finish chunk,
answer with a tool call, or drop the connection (before answering, or mid-stream).

Every call is recorded (``calls``: key -> count, ``requests``: the parsed bodies in order), so
tests can prove which key received what.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Step:
    status: int = 200
    body: Any = None  # JSON-able body to send instead of the generated one
    raw: bytes | None = None  # exact bytes to send (wins over body)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    chunk_delay: float = 0.0  # seconds between stream chunks
    chunks: int = 3  # content chunks in a stream
    reply: str | None = None  # answer text (default: "echo: <last user text>")
    tool_call: dict | None = None  # {"name": ..., "arguments": {...}} -> answer with a tool call
    usage_on_finish: bool = False  # stream: usage rides on the finish chunk (vLLM-style)
    no_usage: bool = False  # stream/non-stream: send no usage at all
    drop: bool = False  # close the connection without answering
    drop_after: int | None = None  # stream: close the connection after this many chunks
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass
class Call:
    key: str
    path: str
    body: Any
    headers: dict[str, str]
    at: float


class FakeUpstream:
    def __init__(self) -> None:
        self._queues: dict[str, deque[Step]] = defaultdict(deque)
        self._defaults: dict[str, Step] = {}
        self.default = Step()
        self.calls: Counter[str] = Counter()
        self.requests: list[Call] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ scripting

    def script(self, key: str, *steps: Step) -> None:
        """Queue ``steps`` for the next calls made with ``key``."""
        with self._lock:
            self._queues[key].extend(steps)

    def set_default(self, key: str, step: Step) -> None:
        with self._lock:
            self._defaults[key] = step

    def reset(self) -> None:
        with self._lock:
            self._queues.clear()
            self._defaults.clear()
            self.default = Step()
            self.calls.clear()
            self.requests.clear()

    def count(self, key: str) -> int:
        with self._lock:
            return self.calls[key]

    def _next_step(self, key: str) -> Step:
        with self._lock:
            queue = self._queues.get(key)
            if queue:
                return queue.popleft()
            return self._defaults.get(key, self.default)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FakeUpstream":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start_server())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    async def _start_server(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # ------------------------------------------------------------------ serving

    @staticmethod
    def key_of(request: web.Request) -> str:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return request.headers.get("x-api-key") or request.headers.get("x-goog-api-key") or ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw
        key = self.key_of(request)
        with self._lock:
            self.calls[key] += 1
            self.requests.append(Call(key, request.path, body, dict(request.headers), time.time()))
        step = self._next_step(key)
        if step.delay:
            await asyncio.sleep(step.delay)
        if step.drop:
            request.transport.close()
            return web.Response()  # written to a closed transport: the client sees a dropped connection
        if step.raw is not None or step.body is not None or step.status >= 300:
            payload = step.raw if step.raw is not None else orjson.dumps(step.body if step.body is not None else _error_body(step.status))
            return web.Response(body=payload, status=step.status, headers=step.headers, content_type="application/json")
        path = request.path
        if path.endswith("/chat/completions"):
            if isinstance(body, dict) and body.get("stream"):
                return await self._openai_stream(request, body, step)
            return web.Response(body=orjson.dumps(self.openai_completion(body, step)), headers=step.headers, content_type="application/json")
        if path.endswith("/embeddings"):
            return web.Response(body=orjson.dumps(openai_embeddings(body, step)), headers=step.headers, content_type="application/json")
        return web.Response(status=404, body=orjson.dumps(_error_body(404)), content_type="application/json")

    # ------------------------------------------------------------------ OpenAI wire format

    def openai_completion(self, body: dict, step: Step) -> dict:
        text = reply_text(body, step)
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        finish = "stop"
        if step.tool_call:
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": f"call_fake{next(self._ids)}",
                    "type": "function",
                    "function": {"name": step.tool_call["name"], "arguments": orjson.dumps(step.tool_call.get("arguments", {})).decode()},
                }
            ]
            finish = "tool_calls"
        out = {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "system_fingerprint": "fp_fake",
        }
        if not step.no_usage:
            out["usage"] = usage_for(body, text, step)
        return out

    async def _openai_stream(self, request: web.Request, body: dict, step: Step) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"content-type": "text/event-stream", **step.headers})
        await response.prepare(request)
        text = reply_text(body, step)
        head = {"id": f"chatcmpl-fake{next(self._ids)}", "object": "chat.completion.chunk", "created": int(time.time()), "model": body.get("model")}
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage")) and not step.no_usage
        frames: list[dict] = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
        finish = "stop"
        if step.tool_call:
            arguments = orjson.dumps(step.tool_call.get("arguments", {})).decode()
            pieces = split(arguments, max(1, step.chunks))
            call_id = f"call_fake{next(self._ids)}"
            first = {"index": 0, "id": call_id, "type": "function", "function": {"name": step.tool_call["name"], "arguments": ""}}
            frames.append({**head, "choices": [{"index": 0, "delta": {"tool_calls": [first]}, "finish_reason": None}]})
            for piece in pieces:
                delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                frames.append({**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            finish = "tool_calls"
        else:
            for piece in split(text, max(1, step.chunks)):
                frames.append({**head, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        usage = usage_for(body, text, step)
        finish_frame = {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        if wants_usage and step.usage_on_finish:
            finish_frame["usage"] = usage
        frames.append(finish_frame)
        if wants_usage and not step.usage_on_finish:
            frames.append({**head, "choices": [], "usage": usage})
        for number, payload in enumerate(frames):
            if step.drop_after is not None and number >= step.drop_after:
                request.transport.close()
                return response
            await response.write(b"data: " + orjson.dumps(payload) + b"\n\n")
            if step.chunk_delay:
                await asyncio.sleep(step.chunk_delay)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def reply_text(body: Any, step: Step) -> str:
    if step.reply is not None:
        return step.reply
    last = ""
    if isinstance(body, dict):
        for message in body.get("messages") or []:
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    last = content
                elif isinstance(content, list):
                    last = " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return f"echo: {last}"


def split(text: str, parts: int) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def usage_for(body: Any, text: str, step: Step) -> dict:
    prompt = step.prompt_tokens
    if prompt is None:
        prompt = 10 + len(orjson.dumps((body or {}).get("messages", []))) // 4 if isinstance(body, dict) else 10
    completion = step.completion_tokens if step.completion_tokens is not None else max(1, len(text) // 4)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def openai_embeddings(body: Any, step: Step) -> dict:
    inputs = body.get("input") if isinstance(body, dict) else None
    items = inputs if isinstance(inputs, list) else [inputs]
    data = [{"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2, 0.3]} for i in range(len(items))]
    tokens = step.prompt_tokens if step.prompt_tokens is not None else sum(max(1, len(str(x)) // 4) for x in items)
    return {"object": "list", "data": data, "model": body.get("model"), "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _error_body(status: int) -> dict:
    kinds = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error", 429: "rate_limit_exceeded"}
    return {"error": {"message": f"fake upstream says {status}", "type": kinds.get(status, "server_error"), "param": None, "code": None}}


__all__ = ["Call", "FakeUpstream", "Step", "replace"]
