"""What every page shares: rendering with the common context, and the CSRF check of forms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from lifeveil import __version__
from lifeveil.console.formatting import FILTERS

TEMPLATES = Path(__file__).parent / "templates"
NAV = (
    ("/vault", "Vault"),
    ("/log", "Transparency log"),
    ("/budget", "Privacy budget"),
    ("/status", "Status"),
)


def make_templates() -> Jinja2Templates:
    """The console's Jinja2 environment (autoescaping on, the formatting filters added)."""
    templates = Jinja2Templates(directory=TEMPLATES)
    templates.env.filters.update(FILTERS)
    templates.env.globals.update(nav=NAV, version=__version__)
    return templates


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """Render a page with the shared context (CSRF token, vault lock state, current path)."""
    app = request.app
    context.update(
        request=request,
        csrf=app.state.security.csrf_token,
        vault_configured=app.state.vault.configured,
        vault_unlocked=app.state.vault.unlocked,
        path=request.url.path,
    )
    return app.state.templates.TemplateResponse(request, template, context, status_code=status_code)


def check_csrf(request: Request, csrf: str | None) -> None:
    """Refuse a POST without this session's CSRF token (CsrfError: a 403 page)."""
    request.app.state.security.check_csrf(request, csrf)
