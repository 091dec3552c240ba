"""Client authentication: bearer keys to ``Principal``.

Keys are looked up by their SHA-256 digest and the match is confirmed with
``hmac.compare_digest``, so timing reveals nothing about a key's characters: an attacker can
only learn about digests of guesses. The raw client key is never stored on the request, logged
or forwarded upstream; ``Principal.id`` (``ck-`` plus 8 hex digits of the digest) stands for it.

``Authorization`` values that authenticated are remembered (at most ``ACCEPTED_MAX``), so a
client's next request skips the digest: a dictionary hit on the exact value. Only accepted
values are kept, and a lookup compares strings only when their (randomly seeded) hashes are
equal, so this teaches a guesser nothing about a key either; a miss takes the digest path.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from app.errors import AuthenticationFailed

ACCEPTED_MAX = 1024  # remembered Authorization values (clients' keys, as sent)


@dataclass(frozen=True, slots=True)
class Principal:
    id: str  # masked client key id, safe for logs, metrics and cache namespaces
    description: str = ""
    allowed: frozenset[str] | None = None  # None: every provider

    def allows(self, provider_id: str) -> bool:
        return self.allowed is None or provider_id in self.allowed


ANONYMOUS = Principal(id="anonymous", description="open access (no api_keys configured)")


def client_key_id(key: str) -> str:
    return "ck-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def principal_for(client) -> Principal:
    """The ``Principal`` a configured client key (``ClientKey``) authenticates as."""
    allowed = None if client.allowed_providers == "*" else frozenset(client.allowed_providers)
    return Principal(client_key_id(client.key), client.description, allowed)


class Authenticator:
    """Maps ``Authorization: Bearer <key>`` to a ``Principal``; open when no keys are configured."""

    def __init__(self, client_keys) -> None:
        self._by_digest: dict[bytes, tuple[bytes, Principal]] = {}
        self._accepted: dict[str, Principal] = {}  # Authorization value -> who it authenticated
        for client in client_keys:
            digest = hashlib.sha256(client.key.encode()).digest()
            self._by_digest[digest] = (digest, principal_for(client))

    @property
    def open(self) -> bool:
        return not self._by_digest

    def authenticate(self, authorization: str | None) -> Principal:
        if self.open:
            return ANONYMOUS
        known = self._accepted.get(authorization) if authorization else None
        if known is not None:
            return known
        if not authorization:
            raise AuthenticationFailed(
                "Missing API key. Send it as 'Authorization: Bearer <key>'.", code="missing_api_key"
            )
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationFailed("Malformed Authorization header; expected 'Bearer <key>'.")
        digest = hashlib.sha256(token.encode()).digest()
        found = self._by_digest.get(digest)
        if found is None or not hmac.compare_digest(found[0], digest):
            raise AuthenticationFailed("Incorrect API key provided.")
        if len(self._accepted) < ACCEPTED_MAX:
            self._accepted[authorization] = found[1]
        return found[1]


def check_admin(authorization: str | None, admin_key: str) -> bool:
    """True if the header carries the admin bearer key (constant-time compare)."""
    if not authorization:
        return False
    scheme, _, token = authorization.strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), admin_key.encode())
