"""The admin dashboard: one web page at ``/admin/``, shipped inside the package, no build step.

``app/dashboard/static`` holds the page (``index.html``), its style sheet, its script (vanilla
JavaScript, charts drawn as SVG by hand) and its icon; they are read once, at import, and served
from memory. The page only loads when the admin API is on (``server.admin_api_key``), like the
API itself, and holds no data: every number, id and name comes from the admin JSON API
(``/admin/v1/...``), which the page calls with the admin key.

Sign-in: the page asks for the admin key, checks it with one API call and keeps it in the
tab's ``sessionStorage`` (gone when the tab closes; never in a cookie, never on the server).
Every call sends it as ``Authorization: Bearer``. A browser never attaches that header to a
request another site makes, so the state-changing calls (purge, reset, revoke) need no CSRF
token, and any number of gateway processes behind a load balancer accept the session with
nothing shared between them. What could still read the key is script running in the page,
so the page is served with a Content-Security-Policy that allows only its own script file
(no inline script, no other origin, no framing) and its script writes data into the page as
text, never as HTML.
"""

from __future__ import annotations

from importlib.resources import files

from sanic import Blueprint, HTTPResponse, Request
from sanic.response import redirect

from app.errors import NotFound

STATIC = files(__package__) / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The page's own files only: no inline script or style, nothing from another origin, no frames.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def _load_assets() -> dict[str, tuple[bytes, str]]:
    assets = {}
    for entry in STATIC.iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        if suffix in CONTENT_TYPES:
            assets[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    return assets


ASSETS = _load_assets()
PAGE = "index.html"

bp = Blueprint("dashboard")


@bp.on_request
def dashboard_enabled(request: Request) -> None:
    if not request.app.ctx.settings.server.admin_api_key:
        raise NotFound("The admin dashboard is disabled; set server.admin_api_key to enable it.", code="admin_disabled")


def _asset(name: str) -> HTTPResponse:
    found = ASSETS.get(name)
    if found is None:
        raise NotFound("No such dashboard file.")
    body, content_type = found
    return HTTPResponse(body, status=200, headers=SECURITY_HEADERS, content_type=content_type)


@bp.get("/admin", strict_slashes=True)
async def dashboard_redirect(request: Request):
    return redirect("/admin/", status=308)


@bp.get("/admin/", strict_slashes=True)
async def dashboard_page(request: Request):
    return _asset(PAGE)


@bp.get("/admin/assets/<name>")
async def dashboard_asset(request: Request, name: str):
    return _asset(name)
