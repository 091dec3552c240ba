"""Stored responses (``/v1/responses`` with ``store``, the default): one document per response
in the runtime store (collection ``responses``), kept ``responses.store_ttl`` (config).

A document holds the owner (the client's masked id: a client reads, continues or deletes only
its own responses, others get 404), the request, the response, and what a continuation needs:
the chat history before this turn, the same turns as Responses items (for providers that get the
request natively), and this turn's input items with their ids.
"""

from __future__ import annotations

import time

from loguru import logger

from adapters.responses import replay_messages
from app.errors import GatewayError, NotFound
from storage import StoreUnavailable

COLLECTION = "responses"


def _unavailable() -> GatewayError:
    return GatewayError("Stored responses are unavailable right now (the runtime store cannot be reached); try again shortly.", status=503, code="storage_unavailable")


class ResponseStore:
    def __init__(self, store, *, ttl: float) -> None:
        self.store = store
        self.ttl = ttl

    @classmethod
    def of(cls, service) -> "ResponseStore":
        return cls(service.store, ttl=service.settings.responses.store_ttl)

    async def save(self, call, response: dict) -> None:
        """Keep ``response`` (best effort: a store outage costs the conversation, not the answer)."""
        extra = call.extra
        doc = {
            "owner": call.principal.id,
            "request": call.body,
            "response": response,
            "history": extra.get("history") or [],
            "prior_items": extra.get("prior_items") or [],
            "input_items": extra.get("input_items") or [],
        }
        try:
            await self.store.doc_put(COLLECTION, response["id"], doc, ttl=self.ttl, now=time.time())
        except StoreUnavailable:
            logger.warning("a response could not be stored (runtime store unavailable)", response_id=response.get("id"))

    async def load(self, response_id: str, principal, *, param: str = "previous_response_id") -> dict:
        """The stored document of ``response_id`` if ``principal`` owns it; else 404 (never 403:
        another client's ids must not be confirmed)."""
        try:
            doc = await self.store.doc_get(COLLECTION, response_id, now=time.time())
        except StoreUnavailable:
            raise _unavailable() from None
        if doc is None or doc.get("owner") != principal.id:
            raise NotFound(f"Response with id '{response_id}' not found.", param=param, code="response_not_found")
        return doc

    async def delete(self, response_id: str, principal) -> None:
        await self.load(response_id, principal, param="response_id")
        try:
            await self.store.doc_delete(COLLECTION, response_id)
        except StoreUnavailable:
            raise _unavailable() from None


def continuation(doc: dict) -> tuple[list[dict], list[dict]]:
    """``(history, prior_items)`` for a request continuing the stored response ``doc``."""
    history = replay_messages(doc["request"], doc["response"], history=doc.get("history") or [])
    prior_items = (doc.get("prior_items") or []) + (doc.get("input_items") or []) + list(doc["response"].get("output") or [])
    return history, prior_items
