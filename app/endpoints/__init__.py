"""The front doors the service serves (``app.endpoints.base`` has the contract), by name."""

from __future__ import annotations

from app.endpoints.base import Endpoint
from app.endpoints.chat import CHAT, EMBEDDINGS
from app.endpoints.messages import MESSAGES
from app.endpoints.responses import RESPONSES

ENDPOINTS: dict[str, Endpoint] = {endpoint.name: endpoint for endpoint in (CHAT, EMBEDDINGS, RESPONSES, MESSAGES)}

__all__ = ["CHAT", "EMBEDDINGS", "ENDPOINTS", "Endpoint", "MESSAGES", "RESPONSES"]
