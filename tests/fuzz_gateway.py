"""What the issue 11 tests share: one gateway config with a provider of every type, the check
that an error body is the envelope its route promises, and a raw HTTP/1.1 client (any bytes out,
one answer back) for requests no HTTP library would send.

The providers all point at the fake upstream, each with its own random-looking key secret
(``test_conformance.K``: the gateway redacts every 8-character run of a secret from its logs).
"""

from __future__ import annotations

import socket
from typing import Any

import orjson

from gateway import config, provider
from test_conformance import K

KINDS = ("openai", "custom", "anthropic", "gemini")
EMBEDDING_KINDS = ("openai", "custom", "gemini")  # Anthropic has no embeddings: a 400
CLIENT_KEY = "client-key"
ADMIN_KEY = "admin-secret-key"
CHAT_MODELS = {kind: f"chat-{kind}" for kind in KINDS}
EMBEDDING_MODELS = {kind: f"emb-{kind}" for kind in KINDS}
MODELS = (*CHAT_MODELS.values(), *EMBEDDING_MODELS.values())


GOVERNED_KEY = "governed-client-key"  # a config client with limits and budgets (never reached)
PRICING = {"input_token_cost": 1.0, "output_token_cost": 2.0}  # USD per 1K tokens


def fleet_providers(url: str) -> list[dict]:
    """One provider per type, serving ``chat-<type>`` and ``emb-<type>``, priced."""
    return [
        provider(kind, url + "/v1" if kind == "custom" else url, [K(f"fuzz-{kind}")], type=kind, models=[CHAT_MODELS[kind], EMBEDDING_MODELS[kind]], pricing=PRICING)
        for kind in KINDS
    ]


def governed_fleet_config(url: str, **extra) -> dict:
    """``fleet_config`` with the response cache on and a second client key whose limits and
    budgets are far from reached, so requests also go through the cache and the governor."""
    clients = [
        {"key": CLIENT_KEY, "allowed_providers": ["*"]},
        {"key": GOVERNED_KEY, "limits": {"req_per_min": 1_000_000, "tokens_per_min": 10**12}, "budgets": {"usd_per_day": 10**6, "usd_per_month": 10**7}},
    ]
    return config(fleet_providers(url), client_keys=clients, policy={"cache": {"enabled": True}}, **extra)


def fleet_config(url: str, **extra) -> dict:
    return config(fleet_providers(url), **extra)


def assert_error_envelope(body: Any, *, anthropic: bool) -> None:
    """OpenAI's ``{"error": {"message", "type", "param", "code"}}``, or on ``/v1/messages``
    Anthropic's ``{"type": "error", "error": {"type", "message"}}``; messages never empty."""
    assert isinstance(body, dict), body
    error = body.get("error")
    assert isinstance(error, dict), body
    assert isinstance(error.get("message"), str) and error["message"], body
    assert isinstance(error.get("type"), str) and error["type"], body
    if anthropic:
        assert body.get("type") == "error", body
    else:
        assert {"param", "code"} <= error.keys(), body
        assert error["param"] is None or isinstance(error["param"], str), body
        assert error["code"] is None or isinstance(error["code"], str), body


class RawResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return orjson.loads(self.body)


def raw_request(port: int, data: bytes, *, timeout: float = 10.0) -> RawResponse:
    """Send ``data`` (any bytes: well-formed HTTP or not; ``Connection: close`` where it is a
    request at all) on a new connection, read until the gateway closes it, and parse the last
    answer (after any ``100 Continue``). AssertionError when no answer comes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    assert received.startswith(b"HTTP/1."), f"no answer: {received[:200]!r}"
    while True:
        head, _, rest = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        if status != 100:
            break
        received = rest
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            body, rest = body + rest[:size], rest[size + 2 :]
            if size == 0:
                break
        return RawResponse(status, headers, body)
    if "content-length" in headers:
        rest = rest[: int(headers["content-length"])]
    return RawResponse(status, headers, rest)


def http_request(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes | None = None) -> bytes:
    """An HTTP/1.1 request as bytes, with ``Host``, ``Connection: close`` and (for a body) its length."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body is not None:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")
