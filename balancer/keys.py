"""Provider keys and their identity.

A key's runtime state (windows, in-flight count, health, cooldown, history) is stored under
``ProviderKey.id``: a digest of the provider id and the secret, so the state follows the key
itself. Reordering, adding or removing keys in the config, or another process listing other
keys on the same store, never hands one key's windows or cooldown to another. ``label``
(``openai#2``: the provider id and the key's position in the config) is what people see: logs,
metrics, response headers and the admin API. State of a key nobody uses any more expires
(``storage`` gives every key's state a time to live).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ProviderKey:
    id: str  # stable state id: ``key_id(provider_id, secret)``
    label: str  # masked display name: ``<provider id>#<position>``
    provider_id: str
    secret: str = field(repr=False)


def key_id(provider_id: str, secret: str) -> str:
    """``k`` + 16 hex digits of SHA-256 over the provider id and the secret (reveals neither)."""
    return "k" + hashlib.sha256(f"{provider_id}\0{secret}".encode()).hexdigest()[:16]


def provider_keys(provider) -> tuple[ProviderKey, ...]:
    """A provider's keys, labelled ``<id>#1``, ``<id>#2``... in config order."""
    return tuple(
        ProviderKey(key_id(provider.id, secret), f"{provider.id}#{n}", provider.id, secret)
        for n, secret in enumerate(provider.api_keys, 1)
    )
