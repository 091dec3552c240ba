"""Client authentication: bearer keys to ``Principal``.

Keys are looked up by their SHA-256 digest and the match is confirmed with
``hmac.compare_digest``, so timing reveals nothing about a key's characters: an attacker can
only learn about digests of guesses. The raw client key is never stored on the request, logged
or forwarded upstream; ``Principal.id`` (``ck-`` plus 8 hex digits of the digest) stands for it.

Keys come from the config (``api_keys[]``) and, at run time, from the store (``app.clients``:
created through the admin API, only their digests stored).

``Authorization`` values that authenticated are remembered (at most ``ACCEPTED_MAX``), so a
client's next request skips the digest: a dictionary hit on the exact value. Only accepted
values are kept, and a lookup compares strings only when their (randomly seeded) hashes are
equal, so this teaches a guesser nothing about a key either; a miss takes the digest path.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from app.errors import AuthenticationFailed

ACCEPTED_MAX = 1024  # remembered Authorization values (clients' keys, as sent)


@dataclass(frozen=True, slots=True)
class Rules:
    """A client's own limits and budgets (``app.governance`` enforces them); ``None``: none."""

    req_per_min: int | None = None
    tokens_per_min: int | None = None
    usd_per_day: float | None = None
    usd_per_month: float | None = None

    @property
    def windowed(self) -> bool:
        return self.req_per_min is not None or self.tokens_per_min is not None

    @property
    def budgeted(self) -> bool:
        return self.usd_per_day is not None or self.usd_per_month is not None


def rules_from(limits, budgets) -> Rules | None:
    """``Rules`` from ``ClientLimits`` / ``ClientBudgets``-shaped values, or None when they set nothing."""
    rules = Rules(limits.req_per_min, limits.tokens_per_min, budgets.usd_per_day, budgets.usd_per_month)
    return rules if rules.windowed or rules.budgeted else None


@dataclass(frozen=True, slots=True)
class Principal:
    id: str  # masked client key id (``ck-...``) or runtime client id (``cl_...``): safe for logs, metrics and cache namespaces
    description: str = ""  # a runtime client's name, a config key's description
    allowed: frozenset[str] | None = None  # None: every provider
    models: frozenset[str] | None = None  # model names / aliases it may request; None: any
    rules: Rules | None = None  # None: no limits, no budgets (enforcement costs nothing)
    expires_at: float | None = None  # unix seconds; None: never
    revoked: bool = False
    cache_namespace: str | None = None  # None: the principal's own id

    def allows(self, provider_id: str) -> bool:
        return self.allowed is None or provider_id in self.allowed


ANONYMOUS = Principal(id="anonymous", description="open access (no api_keys configured)")


def client_key_id(key: str) -> str:
    return "ck-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def principal_for(client) -> Principal:
    """The ``Principal`` a configured client key (``ClientKey``) authenticates as."""
    allowed = None if client.allowed_providers == "*" else frozenset(client.allowed_providers)
    rules = rules_from(client.limits, client.budgets)
    return Principal(client_key_id(client.key), client.description, allowed, rules=rules, cache_namespace=client.cache_namespace)


class Authenticator:
    """Maps ``Authorization: Bearer <key>`` to a ``Principal``.

    Config keys are indexed once here; runtime clients come from an ``app.clients.ClientDirectory``
    (``attach``): its per-process index, and for a digest it does not know, the store
    (``look_up``, the one awaiting step). ``authenticate`` answers None exactly when only the
    store can tell. The gateway is open (everyone is ``ANONYMOUS``) only while no config key
    exists and the directory, once loaded, holds no client. A revoked or expired key is refused
    (401 ``api_key_revoked`` / ``api_key_expired``); expiry is checked on every request. Every
    directory reload forgets the remembered values, so a change takes effect on the next request.
    """

    def __init__(self, client_keys, directory=None) -> None:
        self._by_digest: dict[bytes, tuple[bytes, Principal]] = {}
        self._accepted: dict[str, Principal] = {}  # Authorization value -> who it authenticated
        self._directory = None
        for client in client_keys:
            digest = hashlib.sha256(client.key.encode()).digest()
            self._by_digest[digest] = (digest, principal_for(client))
        if directory is not None:
            self.attach(directory)

    def attach(self, directory) -> None:
        self._directory = directory
        directory.on_change(self._accepted.clear)

    @property
    def open(self) -> bool:
        return not self._by_digest and (self._directory is None or self._directory.empty)

    def authenticate(self, authorization: str | None) -> Principal | None:
        if self.open:
            return ANONYMOUS
        known = self._accepted.get(authorization) if authorization else None
        if known is not None:
            if known.expires_at is not None and time.time() >= known.expires_at:
                raise AuthenticationFailed("This API key has expired.", code="api_key_expired")
            return known
        digest = _digest(authorization)
        found = self._by_digest.get(digest)
        if found is None and self._directory is not None:
            found = self._directory.find(digest)
            if found is None:
                return None  # perhaps a runtime client this process has not read yet: ``look_up``
        return self._confirm(authorization, digest, found)

    async def look_up(self, authorization: str | None) -> Principal:
        """The slow path after ``authenticate`` answered None: ask the store."""
        digest = _digest(authorization)
        return self._confirm(authorization, digest, await self._directory.look_up(digest))

    def _confirm(self, authorization: str, digest: bytes, found: tuple[bytes, Principal] | None) -> Principal:
        if found is None or not hmac.compare_digest(found[0], digest):
            raise AuthenticationFailed("Incorrect API key provided.")
        principal = found[1]
        if principal.revoked:
            raise AuthenticationFailed("This API key has been revoked.", code="api_key_revoked")
        if principal.expires_at is not None and time.time() >= principal.expires_at:
            raise AuthenticationFailed("This API key has expired.", code="api_key_expired")
        if len(self._accepted) < ACCEPTED_MAX:
            self._accepted[authorization] = principal
        return principal


def _digest(authorization: str | None) -> bytes:
    if not authorization:
        raise AuthenticationFailed("Missing API key. Send it as 'Authorization: Bearer <key>'.", code="missing_api_key")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("Malformed Authorization header; expected 'Bearer <key>'.")
    return hashlib.sha256(_header_bytes(token)).digest()


def _header_bytes(value: str) -> bytes:
    """A header value's bytes as sent: Sanic decodes bytes that are not UTF-8 as surrogates,
    which a plain ``encode()`` refuses (a 500 for any client sending them)."""
    return value.encode("utf-8", "surrogateescape")


def check_admin(authorization: str | None, admin_key: str) -> bool:
    """True if the header carries the admin bearer key (constant-time compare)."""
    if not authorization:
        return False
    scheme, _, token = authorization.strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(_header_bytes(token.strip()), admin_key.encode())
