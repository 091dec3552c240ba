"""``/v1/messages``: Anthropic Messages as a front door (see ``app.endpoints.base``).

To an Anthropic provider the request goes natively: the body as the client sent it (only
``model`` is the target's, and ``max_tokens`` is capped at the provider's ``limits.max_tokens``),
with the client's ``anthropic-beta`` header, so ``cache_control``, thinking blocks with their
signatures and beta features pass through; the answer and the stream come back as Anthropic sent
them. To OpenAI, custom and Gemini providers the request is translated through the chat hub
(``adapters.messages``: Anthropic-only fields are dropped, never sent upstream), once per provider
type, and the chat answer or chunk stream comes back in Anthropic's shapes
(``adapters.messages_answer``).

``call.extra`` holds ``id`` (the message id a translated answer gets) and, per provider type,
the translated chat request (``chat``).
"""

from __future__ import annotations

import orjson

from adapters import Adapter, ChatResult, UpstreamRequest
from adapters.anthropic import messages_url
from adapters.base import load_json
from adapters.hub import HubStream
from adapters.messages import messages_request_to_chat
from adapters.messages_answer import MessagesStream, anthropic_error_body, chat_completion_to_message, error_frame, message_to_events
from adapters.messages_native import NativeMessagesStream, message_usage, native_messages_request
from app.endpoints.base import EndpointDefaults, FinalAnswer

FORWARDED_HEADERS = ("anthropic-beta",)


def hub_chat(call, kind: str) -> dict:
    """The chat request for provider type ``kind``, translated once per call and type."""
    translated = call.extra.setdefault("chat", {})
    if kind not in translated:
        translated[kind] = messages_request_to_chat(call.body, provider_kind=kind)
    return translated[kind]


def native_body(call, target) -> dict:
    body = call.body
    cap = target.max_tokens
    if cap and isinstance(body.get("max_tokens"), int) and body["max_tokens"] > cap:
        body = {**body, "max_tokens": cap}
    return body


class MessagesEndpoint(EndpointDefaults):
    name = "messages"
    streams = True

    def build(self, call, adapter: Adapter, target) -> UpstreamRequest:
        if target.kind == "anthropic":
            extra = {name: value for name, value in call.forward_headers.items() if name in FORWARDED_HEADERS}
            return UpstreamRequest(messages_url(target.base_url), native_messages_request(native_body(call, target), target.model), headers=extra or None)
        return adapter.build_chat(hub_chat(call, target.kind), target, stream=call.stream)

    def parse(self, call, adapter: Adapter, target, body: bytes) -> ChatResult:
        if target.kind == "anthropic":
            data = load_json(body, "a message")
            usage = message_usage(data) if isinstance(data, dict) else None
            return ChatResult(body, usage, usage_unreadable=usage is None and isinstance(data, dict) and "usage" in data)
        result = adapter.parse_chat(body, model=call.model)
        message = chat_completion_to_message(orjson.loads(result.body), model=call.model, message_id=call.extra["id"])
        return result.with_body(orjson.dumps(message))

    def stream_translator(self, call, adapter: Adapter, target):
        if target.kind == "anthropic":
            return NativeMessagesStream()
        front = MessagesStream(model=call.model, message_id=call.extra["id"], input_tokens_estimate=call.prompt_tokens)
        return HubStream(adapter.stream_translator(model=call.model, include_usage=True), front)

    def error_frames(self, call, envelope: dict, translator=None) -> list[bytes]:
        error = envelope.get("error") if isinstance(envelope.get("error"), dict) else {}
        body = anthropic_error_body(500, str(error.get("message") or "The upstream failed."), openai_type=error.get("type"))
        front = getattr(translator, "front", None)
        if isinstance(front, MessagesStream):
            return front.fail(body["error"]["type"], body["error"]["message"])
        return [error_frame(body["error"]["type"], body["error"]["message"])]

    def cached(self, call, body: bytes) -> bytes:
        message = orjson.loads(body)
        message["id"] = call.extra["id"]
        return orjson.dumps(message)

    def replay(self, call, body: bytes) -> list[bytes]:
        return message_to_events(orjson.loads(body))

    def assembler(self, call, translator, *, caching: bool) -> FinalAnswer | None:
        front = getattr(translator, "front", None)
        if not caching or not isinstance(front, MessagesStream):
            return None  # a native stream passes through unread: not cached
        return FinalAnswer(lambda: orjson.dumps(front.message) if front.done else None)


MESSAGES = MessagesEndpoint()
