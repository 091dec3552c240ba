"""Every error a client can see, as one exception tree.

Each class knows its HTTP status, its OpenAI error ``type`` and ``code``, so a handler only
has to ``raise``; ``envelope()`` renders ``{"error": {"message", "type", "param", "code"}}``.
``retry_later`` says whether waiting (a queue-backed retry) can help: no key had room, or every
target failed in a way a later try may fix. It is data set where the error is made, never
re-derived from codes.

    GatewayError                       500 server_error
    ├── InvalidRequest                 400 invalid_request_error (also 405 method_not_allowed)
    ├── AuthenticationFailed           401 invalid_request_error / invalid_api_key
    │                                      (also missing_api_key, api_key_revoked, api_key_expired)
    ├── PermissionDenied               403 permission_error / provider_not_allowed
    │                                      (also model_not_allowed, model_unpriced)
    ├── NotFound                       404 invalid_request_error / not_found
    │   └── ModelNotFound              404 invalid_request_error / model_not_found
    ├── PayloadTooLarge                413 invalid_request_error / request_too_large
    ├── NoCapacity                     429 rate_limit_error / rate_limit_exceeded (+ Retry-After)
    ├── ClientRateLimited              429 rate_limit_error / rate_limit_exceeded (+ Retry-After): the client's own window
    ├── BudgetExceeded                 429 insufficient_quota / budget_exceeded (+ Retry-After)
    ├── StorageUnavailable             503 server_error / storage_unavailable
    ├── UpstreamRejected               4xx the upstream's own client error, passed through
    └── UpstreamFailed                 502 upstream_error (503 / 504 by subclass)
        ├── UpstreamUnavailable        503 upstream_unavailable (+ Retry-After when known)
        └── UpstreamTimeout            504 upstream_timeout

Messages never contain provider keys: upstream text is scrubbed before it is wrapped here. They
are always valid Unicode (``valid_text``), so every envelope can be written.
"""

from __future__ import annotations

import math
import re

import orjson

_SURROGATE = re.compile("[\ud800-\udfff]")


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = "internal_error"
    retry_later = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        retry_later: bool | None = None,
    ):
        super().__init__(message)
        self.message = message if message.isascii() else valid_text(message)
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.retry_after = retry_after
        if retry_later is not None:
            self.retry_later = retry_later

    def envelope(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def body(self) -> bytes:
        return orjson.dumps(self.envelope())

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"retry-after": str(retry_after_seconds(self.retry_after))}


def valid_text(text: str) -> str:
    """``text`` as valid Unicode: a message may quote header bytes that are not UTF-8, which
    Sanic hands over as lone surrogates, and no JSON encoder writes those (the error handler
    itself failed, a plain-text 500). Each such character becomes U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def retry_after_seconds(seconds: float) -> int:
    """``Retry-After`` is whole seconds; round up so a client never comes back too early."""
    return max(1, math.ceil(seconds))


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = None


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "provider_not_allowed"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class NoCapacity(GatewayError):
    """Every candidate key is at its limit or cooling down; ``retry_after`` says when one frees."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    retry_later = True


class ClientRateLimited(GatewayError):
    """The client's own ``req_per_min`` / ``tokens_per_min`` window is full; waiting is the
    client's to do, so it is never queued (``retry_later`` False)."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceeded(GatewayError):
    """The client's USD budget for the UTC day or month has no room for this request's worst case."""

    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


class StorageUnavailable(GatewayError):
    """The runtime store did not answer a call that must not be answered from memory."""

    status = 503
    type = "server_error"
    code = "storage_unavailable"

    def __init__(self, error: BaseException | None = None, *, retry_after: float | None = 1.0) -> None:
        cause = f" ({type(error).__name__})" if error is not None else ""
        super().__init__(f"The runtime store is unavailable{cause}; try again shortly.", retry_after=retry_after)


class UpstreamRejected(GatewayError):
    """An upstream 4xx that is the client's to fix; status and envelope pass through."""

    type = "invalid_request_error"
    code = None

    def __init__(self, message: str, *, status: int, envelope: dict | None = None, **kwargs):
        super().__init__(message, status=status, **kwargs)
        self._envelope = envelope

    def envelope(self) -> dict:
        return self._envelope or super().envelope()


class UpstreamFailed(GatewayError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamUnavailable(UpstreamFailed):
    status = 503
    code = "upstream_unavailable"


class UpstreamTimeout(UpstreamFailed):
    status = 504
    code = "upstream_timeout"
