"""Front doors: what differs between ``/v1/chat/completions``, ``/v1/embeddings`` and the others.

The service (``app.service``) runs every request the same way; an ``Endpoint`` tells it the few
things that depend on the API the client speaks. Per target (provider type), it:

- ``build(call, adapter, target)`` makes the upstream request (pure; ``AdapterError`` when the
  provider cannot honour the request, which rules that target out);
- ``parse(call, adapter, body)`` turns an upstream answer into the client's answer and its usage;
- ``stream_translator(call, adapter)`` gives the per-stream translator whose frames the client gets;
- ``replay(call, body)`` turns a cached answer into the frames its stream would have sent, and
  ``assembler(call)`` rebuilds a cacheable answer from the frames a stream sent (or None: a
  streamed answer of this endpoint is not cached).

``name`` is part of every cache key (one endpoint's answer is never served to another) and of
queued-retry payloads (``ENDPOINTS`` finds the endpoint again in the worker).
"""

from __future__ import annotations

from typing import Protocol

from adapters import Adapter, ChatResult, UpstreamRequest
from adapters.base import StreamTranslator
from app.cache import StreamAssembler, replay_frames


class Endpoint(Protocol):
    name: str
    streams: bool  # stream: true is possible

    def build(self, call, adapter: Adapter, target) -> UpstreamRequest: ...

    def parse(self, call, adapter: Adapter, body: bytes) -> ChatResult: ...

    def stream_translator(self, call, adapter: Adapter) -> StreamTranslator: ...

    def replay(self, call, body: bytes) -> list[bytes]: ...

    def assembler(self, call) -> StreamAssembler | None: ...


class ChatEndpoint:
    """``POST /v1/chat/completions``: the hub shape itself, so every adapter speaks it directly."""

    name = "chat"
    streams = True

    def build(self, call, adapter: Adapter, target) -> UpstreamRequest:
        return adapter.build_chat(call.body, target, stream=call.stream)

    def parse(self, call, adapter: Adapter, body: bytes) -> ChatResult:
        return adapter.parse_chat(body, model=call.model)

    def stream_translator(self, call, adapter: Adapter) -> StreamTranslator:
        return adapter.stream_translator(model=call.model, include_usage=call.include_usage)

    def replay(self, call, body: bytes) -> list[bytes]:
        return replay_frames(body, include_usage=call.include_usage)

    def assembler(self, call) -> StreamAssembler:
        return StreamAssembler()


class EmbeddingsEndpoint:
    """``POST /v1/embeddings``: OpenAI's list format; never streamed."""

    name = "embeddings"
    streams = False

    def build(self, call, adapter: Adapter, target) -> UpstreamRequest:
        return adapter.build_embeddings(call.body, target)

    def parse(self, call, adapter: Adapter, body: bytes) -> ChatResult:
        return adapter.parse_embeddings(body, model=call.model, request=call.body)

    def stream_translator(self, call, adapter: Adapter) -> StreamTranslator:
        raise TypeError("embeddings are not streamed")

    def replay(self, call, body: bytes) -> list[bytes]:
        raise TypeError("embeddings are not streamed")

    def assembler(self, call) -> None:
        return None


CHAT = ChatEndpoint()
EMBEDDINGS = EmbeddingsEndpoint()
ENDPOINTS: dict[str, Endpoint] = {endpoint.name: endpoint for endpoint in (CHAT, EMBEDDINGS)}
