"""Every error a client can see, as one exception tree.

Each class knows its HTTP status, its OpenAI error ``type`` and ``code``, so a handler only
has to ``raise``; ``envelope()`` renders ``{"error": {"message", "type", "param", "code"}}``.
``retry_later`` says whether waiting (a queue-backed retry) can help: no key had room, or every
target failed in a way a later try may fix. It is data set where the error is made, never
re-derived from codes.

    GatewayError                       500 server_error
    ├── InvalidRequest                 400 invalid_request_error (also 405 method_not_allowed)
    ├── AuthenticationFailed           401 invalid_request_error / invalid_api_key
    ├── PermissionDenied               403 permission_error / provider_not_allowed
    ├── NotFound                       404 invalid_request_error / not_found
    │   └── ModelNotFound              404 invalid_request_error / model_not_found
    ├── PayloadTooLarge                413 invalid_request_error / request_too_large
    ├── NoCapacity                     429 rate_limit_error / rate_limit_exceeded (+ Retry-After)
    ├── UpstreamRejected               4xx the upstream's own client error, passed through
    └── UpstreamFailed                 502 upstream_error (503 / 504 by subclass)
        ├── UpstreamUnavailable        503 upstream_unavailable (+ Retry-After when known)
        └── UpstreamTimeout            504 upstream_timeout

Messages never contain provider keys: upstream text is scrubbed before it is wrapped here.
"""

from __future__ import annotations

import math

import orjson


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
        self.message = message
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
