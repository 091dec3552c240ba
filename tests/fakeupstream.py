"""A scriptable fake LLM provider: a real aiohttp server on 127.0.0.1, in a background thread.

It speaks the OpenAI (chat completions, embeddings), Anthropic Messages (``/v1/messages``, with
``event:`` SSE streams) and Gemini (``generateContent``, ``streamGenerateContent?alt=sse``,
``batchEmbedContents``) wire formats, chosen by the request path; ``fake_wire`` generates each.
Behaviour is scripted per API key and per call with ``Step``s: each call by a key takes that
key's next queued step, or its default step, or the server-wide default. A step can answer with
a status (in the provider's error envelope) and body, add ``Retry-After`` (or any) headers, sleep
first, stream N chunks, put usage on the finish chunk, answer with a tool call, send an error
event mid-stream, or drop the connection (before answering, or mid-stream).

Every call is recorded (``calls``: key -> count, from ``Authorization``, ``x-api-key`` or
``x-goog-api-key``; ``requests``: path, parsed body and headers in order), so tests can prove
which key received what.

A body the fake cannot read (``KeyError``, ``TypeError``... while answering it: fuzzed fields the
gateway passes through) gets the wire's 400, as a real provider would answer, not a 500.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from aiohttp import web

import fake_wire


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
    stream_error_after: int | None = None  # stream: send the wire's error event after this many frames
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None  # part of the prompt read from the provider's cache
    reasoning_tokens: int | None = None  # Gemini thoughts, billed as output
    stop_reason: str | None = None  # the provider's own finish/stop reason to answer with
    retry_delay: str | None = None  # Gemini 429: RetryInfo.retryDelay in the error body, e.g. "20s"


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
        found = fake_wire.route(request.path, body)
        wire, operation = found if found else (fake_wire.OPENAI, None)
        if step.raw is not None or step.body is not None or step.status >= 300:
            payload = step.raw if step.raw is not None else orjson.dumps(step.body if step.body is not None else wire.error(step.status, step))
            return web.Response(body=payload, status=step.status, headers=step.headers, content_type="application/json")
        if operation is None:
            return web.Response(status=404, body=orjson.dumps(wire.error(404, step)), content_type="application/json")
        try:
            problem = wire.problem(body, request.query)
            if not problem:
                if operation == "stream":
                    frames = wire.stream(body, step, fake_wire.ids)
                else:
                    answer = wire.embeddings(body, step) if operation == "embeddings" else wire.completion(body, step, fake_wire.ids)
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            # A body this fake cannot read (fuzzed pass-through fields): a real provider's 400.
            problem = f"the fake upstream cannot read this request ({type(error).__name__}: {error})"
        if problem:
            error = wire.error(400, step)
            (error["error"] if "error" in error else error)["message"] = problem
            return web.Response(status=400, body=orjson.dumps(error), content_type="application/json")
        if operation == "stream":
            return await self._stream(request, frames, step)
        return web.Response(body=orjson.dumps(answer), headers=step.headers, content_type="application/json")

    async def _stream(self, request: web.Request, frames: list[bytes], step: Step) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"content-type": "text/event-stream", **step.headers})
        await response.prepare(request)
        for number, piece in enumerate(frames):
            if step.drop_after is not None and number >= step.drop_after:
                request.transport.close()
                return response
            await response.write(piece)
            if step.chunk_delay:
                await asyncio.sleep(step.chunk_delay)
        await response.write_eof()
        return response


__all__ = ["Call", "FakeUpstream", "Step", "replace"]
