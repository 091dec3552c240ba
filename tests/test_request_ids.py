"""Request ids the gateway makes: ``req_`` + 32 hex digits, never repeated; a sane client id is kept."""

from __future__ import annotations

import re

import httpx

from gateway import config, provider


def test_request_ids_are_well_formed_and_distinct(fake, start_gateway):
    gateway = start_gateway(config([provider("p1", fake.url, ["sk-ids-1"])]))
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": "Bearer client-key"}
    ids = [httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=headers, timeout=10).headers["x-request-id"] for _ in range(5)]
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    kept = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers={**headers, "x-request-id": "client-trace-7"}, timeout=10)
    assert kept.headers["x-request-id"] == "client-trace-7"
