"""What a front door tells the service (``app.service``): the ``Endpoint`` contract.

The service runs every request the same way; an ``Endpoint`` says the few things that depend on
the API the client speaks. Per target (provider type), it:

- ``build(call, adapter, target)`` makes the upstream request (pure; ``AdapterError`` when the
  provider cannot honour the request, which rules that target out);
- ``parse(call, adapter, target, body)`` turns an upstream answer into the client's answer and
  its usage;
- ``stream_translator(call, adapter, target)`` gives the per-stream translator whose frames the
  client gets, and ``error_frames(call, envelope, translator)`` the frames that end a stream
  that broke after its first byte;
- ``replay(call, body)`` turns a cached answer into the frames its stream would have sent;
  ``cached(call, body)`` is the cached answer as this call gets it (front doors whose answers
  carry ids give it new ones); ``assembler(call, translator, caching)`` rebuilds the unary answer
  from a stream (None: no use for it);
- ``keep(service, call, body)`` runs after a successful answer (stored responses).

``name`` is part of every cache key (one endpoint's answer is never served to another) and of
call payloads (``app.calls``: queued retries, cache warming, batches find the endpoint again).
"""

from __future__ import annotations

from typing import Protocol

from adapters import Adapter, ChatResult, UpstreamRequest
from adapters.base import StreamTranslator
from adapters.sse import frame


class Assembler(Protocol):
    failed: bool

    def feed(self, piece: bytes) -> None: ...

    def completion(self, usage: dict | None) -> bytes | None: ...


class Endpoint(Protocol):
    name: str
    streams: bool  # stream: true is possible

    def build(self, call, adapter: Adapter, target) -> UpstreamRequest: ...

    def parse(self, call, adapter: Adapter, target, body: bytes) -> ChatResult: ...

    def stream_translator(self, call, adapter: Adapter, target) -> StreamTranslator: ...

    def error_frames(self, call, envelope: dict, translator=None) -> list[bytes]: ...

    def replay(self, call, body: bytes) -> list[bytes]: ...

    def cached(self, call, body: bytes) -> bytes: ...

    def assembler(self, call, translator, *, caching: bool) -> Assembler | None: ...

    async def keep(self, service, call, body: bytes) -> None: ...


class EndpointDefaults:
    """What most endpoints share: OpenAI error frames, cached answers as stored, nothing to keep."""

    def error_frames(self, call, envelope: dict, translator=None) -> list[bytes]:
        return [frame(envelope)]

    def cached(self, call, body: bytes) -> bytes:
        return body

    async def keep(self, service, call, body: bytes) -> None:
        return None


class FinalAnswer:
    """An ``Assembler`` for front doors whose stream translator builds the whole answer itself
    (``answer()`` of the translator once it completed; None while it has not)."""

    def __init__(self, answer) -> None:
        self._answer = answer
        self.failed = False

    def feed(self, piece: bytes) -> None:
        return None

    def completion(self, usage: dict | None) -> bytes | None:
        return None if self.failed else self._answer()
