"""The admin API (``/admin/v1``): off unless ``server.admin_api_key`` is set; bearer-protected."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import json

from app.auth import check_admin
from app.config import ConfigError, masked_dump, parse_settings
from app.errors import AuthenticationFailed, NotFound

bp = Blueprint("admin", url_prefix="/admin/v1")


@bp.on_request
async def require_admin(request: Request):
    admin_key = request.app.ctx.settings.server.admin_api_key
    if not admin_key:
        raise NotFound("The admin API is disabled; set server.admin_api_key to enable it.", code="admin_disabled")
    if not check_admin(request.headers.get("authorization"), admin_key):
        raise AuthenticationFailed("The admin API needs 'Authorization: Bearer <admin_api_key>'.")


@bp.get("/config")
async def effective_config(request: Request):
    return json(masked_dump(request.app.ctx.settings))


@bp.post("/config/validate")
async def validate_config(request: Request):
    """Validate a posted YAML or JSON config; answer ``{"valid", "errors"}`` with ``check``'s paths."""
    text = request.body.decode("utf-8", "replace")
    try:
        parse_settings(text)
    except ConfigError as error:
        return json({"valid": False, "errors": error.problems})
    return json({"valid": True, "errors": []})
