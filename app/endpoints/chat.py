"""``/v1/chat/completions`` and ``/v1/embeddings``: the hub shapes themselves, so every adapter
speaks them directly (see ``app.endpoints.base`` for the contract)."""

from __future__ import annotations

from adapters import Adapter, ChatResult, UpstreamRequest
from adapters.base import StreamTranslator
from app.cache import StreamAssembler, replay_frames
from app.endpoints.base import EndpointDefaults


class ChatEndpoint(EndpointDefaults):
    name = "chat"
    streams = True

    def build(self, call, adapter: Adapter, target) -> UpstreamRequest:
        return adapter.build_chat(call.body, target, stream=call.stream)

    def parse(self, call, adapter: Adapter, target, body: bytes) -> ChatResult:
        return adapter.parse_chat(body, model=call.model)

    def stream_translator(self, call, adapter: Adapter, target) -> StreamTranslator:
        return adapter.stream_translator(model=call.model, include_usage=call.include_usage)

    def replay(self, call, body: bytes) -> list[bytes]:
        return replay_frames(body, include_usage=call.include_usage)

    def assembler(self, call, translator, *, caching: bool) -> StreamAssembler | None:
        return StreamAssembler() if caching else None


class EmbeddingsEndpoint(EndpointDefaults):
    """OpenAI's embeddings list; never streamed."""

    name = "embeddings"
    streams = False

    def build(self, call, adapter: Adapter, target) -> UpstreamRequest:
        return adapter.build_embeddings(call.body, target)

    def parse(self, call, adapter: Adapter, target, body: bytes) -> ChatResult:
        return adapter.parse_embeddings(body, model=call.model, request=call.body)

    def stream_translator(self, call, adapter: Adapter, target) -> StreamTranslator:
        raise TypeError("embeddings are not streamed")

    def replay(self, call, body: bytes) -> list[bytes]:
        raise TypeError("embeddings are not streamed")

    def assembler(self, call, translator, *, caching: bool) -> None:
        return None


CHAT = ChatEndpoint()
EMBEDDINGS = EmbeddingsEndpoint()
