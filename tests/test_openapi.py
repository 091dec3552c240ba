"""The OpenAPI document (``app.openapi``) is a valid one, and true to the router and the boundary."""

from __future__ import annotations

import re

import httpx
import orjson
import pytest
from openapi_spec_validator import validate

from adapters.messages import DROPPED_FIELDS, TRANSLATED_FIELDS
from app.config import settings_from_data
from app.openapi import DOCUMENT, DOCUMENT_JSON
from app.server import create_app
from fuzz_gateway import fleet_config

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def test_the_document_is_valid_openapi():
    validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1")
    assert orjson.loads(DOCUMENT_JSON) == DOCUMENT


def routed(app) -> set[tuple[str, str]]:
    """(method, OpenAPI path) for every route the Sanic app registered: ``<name:type>`` -> ``{name}``."""
    out = set()
    for route in app.router.routes:
        path = "/" + re.sub(r"<([^:>]+)(:[^>]*)?>", r"{\1}", route.path)
        out |= {(method.lower(), path) for method in route.methods}
    return out


def described() -> set[tuple[str, str]]:
    return {(method, path) for path, item in DOCUMENT["paths"].items() for method in item if method in METHODS}


def test_every_route_is_described_and_every_described_route_exists(upstream):
    app = create_app(settings_from_data(fleet_config(upstream.url)), name="openapi_routes")
    assert routed(app) == described()


def test_path_parameters_match_the_path():
    for path, item in DOCUMENT["paths"].items():
        in_path = set(re.findall(r"{([^}]+)}", path))
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == in_path, (method, path)


def test_operations_are_named_once_and_secured_by_a_known_scheme():
    operations = [op for item in DOCUMENT["paths"].values() for op in item.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))
    schemes = set(DOCUMENT["components"]["securitySchemes"])
    for path, item in DOCUMENT["paths"].items():
        for operation in item.values():
            used = {name for requirement in operation["security"] for name in requirement}
            assert used <= schemes
            if path.startswith("/admin/v1"):
                assert used == {"adminKey"}, path
            elif path.startswith("/v1/messages"):
                assert used == {"anthropicKey", "clientKey"}, path
            elif path.startswith("/v1/"):
                assert used == {"clientKey"}, path
            else:
                assert used == set(), path
            assert "400" in operation["responses"] and "405" in operation["responses"], path


def properties(schema: str) -> set[str]:
    return set(DOCUMENT["components"]["schemas"][schema]["properties"])


def test_request_schemas_name_every_field_the_boundary_reads():
    from adapters import responses
    from app import inbound
    from app.clients import ClientInput

    assert properties("ChatRequest") == set(inbound._CHAT_FIELDS) | {"messages"}
    assert properties("EmbeddingsRequest") == set(inbound._EMBEDDING_FIELDS) | {"input"}
    assert properties("ResponsesRequest") == set(responses._KNOWN)
    assert properties("MessagesRequest") == set(TRANSLATED_FIELDS)
    assert not properties("MessagesRequest") & set(DROPPED_FIELDS)
    assert properties("ClientInput") == properties("ClientChange") == set(ClientInput.model_fields)


@pytest.fixture(scope="module")
def gw(start_gateway, upstream):
    return start_gateway(fleet_config(upstream.url))


def test_the_gateway_serves_the_document_without_a_key(gw):
    response = httpx.get(gw.url + "/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == DOCUMENT
