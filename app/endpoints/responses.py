"""``/v1/responses``: the OpenAI Responses API as a front door (see ``app.endpoints.base``).

To most targets the request goes through the chat hub: the route translated it once
(``adapters.responses.responses_request_to_chat``, kept in ``call.extra["chat"]``), every
adapter sends that chat request, and the chat answer or chunk stream comes back as a
``response`` object or Responses events. An OpenAI-type provider configured with
``responses_api: native`` gets the request untranslated at its own ``/responses``; the gateway
keeps the conversation either way (``previous_response_id`` is replayed as input, and the
upstream is asked not to store), so every provider continues every conversation.

``call.extra`` (JSON-able, so a queued retry carries it) holds ``id`` and ``created_at`` (the
response this call answers with), ``previous_response_id``, ``chat``, ``history`` (chat messages
of the earlier turns), ``prior_items`` (the same turns as Responses items, for native targets)
and ``input_items`` (this turn's input with ids, for ``GET .../input_items``).
"""

from __future__ import annotations

import orjson

from adapters import Adapter, ChatResult, UpstreamRequest
from adapters.base import load_json
from adapters.hub import HubStream
from adapters.openai import api_base
from adapters.responses_objects import read_response_usage
from adapters.responses_stream import NativeResponsesStream, ResponsesStream, error_envelope_to_response_error, response_to_events
from app.endpoints.base import EndpointDefaults, FinalAnswer
from app.responses_store import ResponseStore

# Responses fields the gateway itself answers for: never sent to a native upstream.
_GATEWAY_FIELDS = ("previous_response_id", "store")


def native_body(call, target) -> dict:
    """The request for a provider that speaks ``/responses``: the client's, with the earlier
    turns replayed as input and the upstream asked not to keep it (the gateway does)."""
    body = {name: value for name, value in call.body.items() if name not in _GATEWAY_FIELDS}
    body["model"] = target.model
    body["store"] = False
    prior = call.extra.get("prior_items") or []
    if prior:
        current = body.get("input")
        current = [{"type": "message", "role": "user", "content": current}] if isinstance(current, str) else list(current or ())
        body["input"] = prior + current
    return body


class ResponsesEndpoint(EndpointDefaults):
    name = "responses"
    streams = True

    def build(self, call, adapter: Adapter, target) -> UpstreamRequest:
        if target.native_responses:
            return UpstreamRequest(api_base(target.base_url) + "/responses", orjson.dumps(native_body(call, target)))
        return adapter.build_chat(call.extra["chat"], target, stream=call.stream)

    def parse(self, call, adapter: Adapter, target, body: bytes) -> ChatResult:
        if target.native_responses:
            usage, unreadable = read_response_usage(load_json(body, "a response"))
            return ChatResult(body, usage, usage_unreadable=unreadable)
        result = adapter.parse_chat(body, model=call.model)
        from adapters.responses_objects import chat_completion_to_response

        response = chat_completion_to_response(
            orjson.loads(result.body),
            request=call.body,
            response_id=call.extra["id"],
            created_at=call.extra["created_at"],
            previous_response_id=call.extra.get("previous_response_id"),
        )
        return result.with_body(orjson.dumps(response))

    def stream_translator(self, call, adapter: Adapter, target):
        if target.native_responses:
            return NativeResponsesStream()
        front = ResponsesStream(call.body, call.extra["id"], call.extra["created_at"], call.extra.get("previous_response_id"))
        return HubStream(adapter.stream_translator(model=call.model, include_usage=True), front)

    def error_frames(self, call, envelope: dict, translator=None) -> list[bytes]:
        front = getattr(translator, "front", None)
        if isinstance(front, ResponsesStream):
            return front.fail(envelope)
        error = error_envelope_to_response_error(envelope)
        return [b"event: error\ndata: " + orjson.dumps({"type": "error", "code": error.get("code"), "message": error.get("message"), "param": None}) + b"\n\n"]

    def cached(self, call, body: bytes) -> bytes:
        """A cached response, as this call's own: its id, time and conversation."""
        response = orjson.loads(body)
        response.update(id=call.extra["id"], created_at=call.extra["created_at"], previous_response_id=call.extra.get("previous_response_id"))
        return orjson.dumps(response)

    def replay(self, call, body: bytes) -> list[bytes]:
        return response_to_events(orjson.loads(body))

    def assembler(self, call, translator, *, caching: bool) -> FinalAnswer:
        def final() -> bytes | None:
            front = getattr(translator, "front", translator)
            response = front.response if front.done else None
            return None if response is None else orjson.dumps(response)

        return FinalAnswer(final)

    async def keep(self, service, call, body: bytes) -> None:
        if call.body.get("store") is not False:
            await ResponseStore.of(service).save(call, orjson.loads(body))


RESPONSES = ResponsesEndpoint()
