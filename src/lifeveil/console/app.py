"""The console's FastAPI application: pages rendered by Jinja2, plain forms, one small script.

:func:`create_app` wires the security gate (:mod:`lifeveil.console.security`), the vault
(:mod:`lifeveil.console.vault_access`) and the two groups of pages: the vault
(:mod:`lifeveil.console.vault_pages`) and the device's log, budget and status
(:mod:`lifeveil.console.device_pages`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from lifeveil import __version__
from lifeveil.console import device_pages, vault_pages
from lifeveil.console.config import ConsoleConfig
from lifeveil.console.rendering import make_templates, render
from lifeveil.console.security import ConsoleSecurity, CsrfError, SecurityMiddleware
from lifeveil.console.vault_access import VaultAccess, VaultLockedError
from lifeveil.errors import LifeVeilError, SegmentNotFoundError

STATIC = Path(__file__).parent / "static"


def create_app(
    config: ConsoleConfig,
    *,
    security: ConsoleSecurity | None = None,
    vault: VaultAccess | None = None,
) -> FastAPI:
    """The console app for the device state in ``config``.

    ``security`` holds the one-time token (a fresh one by default: ``app.state.security``);
    ``vault`` is the vault handle (by default opened from ``config``, with its key file if
    one is given, else locked until the owner signs in).
    """
    app = FastAPI(
        title="LifeVeil console",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # no schema endpoint: the console is pages, not an API
    )
    app.state.config = config
    app.state.security = security or ConsoleSecurity()
    app.state.vault = vault or VaultAccess(config.vault, config.key_file)
    app.state.templates = make_templates()
    app.add_middleware(SecurityMiddleware, security=app.state.security)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(vault_pages.router)
    app.include_router(device_pages.router)
    _add_handlers(app)

    @app.get("/")
    def home() -> RedirectResponse:
        return RedirectResponse("/status", status_code=303)

    return app


def _add_handlers(app: FastAPI) -> None:
    @app.exception_handler(CsrfError)
    def csrf_failed(request: Request, exc: CsrfError) -> Response:
        return render(request, "error.html", 403, title="Refused", message=str(exc))

    @app.exception_handler(VaultLockedError)
    def locked(request: Request, exc: VaultLockedError) -> Response:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    @app.exception_handler(LifeVeilError)
    def failed(request: Request, exc: LifeVeilError) -> Response:
        status = 404 if isinstance(exc, SegmentNotFoundError) else 400
        return render(request, "error.html", status, title="Error", message=str(exc))
