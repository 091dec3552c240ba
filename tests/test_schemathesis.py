"""schemathesis against a real gateway, driven by the gateway's own OpenAPI document (issue 11).

One ``coo-llm serve`` process whose providers are the fake upstream, one of each type (openai,
custom, anthropic, gemini), is called with every operation of ``/openapi.json``: data that fits
the document (positive) and data that breaks it (negative), with the client key on ``/v1`` and
the admin key on ``/admin``, in schemathesis' examples, coverage (boundary values, unexpected
methods) and fuzzing phases. The checks: no status of 500 or more; the status, content type and
body are ones the document names for the operation; every 4xx body is the route's error
envelope (Anthropic's on ``/v1/messages``). Positive bodies name a configured model most of
the time, so they get as far as a provider's adapter and the fake upstream.
"""

from __future__ import annotations

import os

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from app.openapi import DOCUMENT
from fuzz_gateway import ADMIN_KEY, CLIENT_KEY, MODELS, assert_error_envelope, governed_fleet_config

# Fuzzed cases per operation and generation mode: the module takes about 40 s on 2 cores
# (COO_FUZZ_EXAMPLES=500 for a longer hunt).
EXAMPLES = int(os.environ.get("COO_FUZZ_EXAMPLES", "50"))

SCHEMA = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            "generation": {"mode": "all", "max-examples": EXAMPLES, "with-security-parameters": False},
            "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "stateful": {"enabled": False}},
        }
    ),
)


@pytest.fixture(scope="module")
def gw(start_gateway, upstream):
    return start_gateway(governed_fleet_config(upstream.url))


@pytest.fixture(scope="module")
def session():
    with requests.Session() as http:
        yield http


def auth_headers(path: str) -> dict[str, str]:
    if path.startswith("/admin/v1"):
        return {"authorization": f"Bearer {ADMIN_KEY}"}
    if path.startswith("/v1/"):
        return {"authorization": f"Bearer {CLIENT_KEY}"}
    return {}


@schemathesis.hook
def flatmap_body(context, body):
    """Name a configured model in most bodies that name one, so they reach a provider."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return st.just(body)
    return st.sampled_from([*MODELS, None]).map(lambda model: body if model is None else {**body, "model": model})


@SCHEMA.parametrize()
@hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck), derandomize=True)
def test_no_server_errors(case, gw, session):
    response = case.call(base_url=gw.url, session=session, headers=auth_headers(case.path), timeout=20)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
    if 400 <= response.status_code < 500:
        assert_error_envelope(response.json(), anthropic=case.path.startswith("/v1/messages"))
    case.validate_response(
        response, checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    )
