"""Who may use the console: the holder of a one-time link, in a browser on this machine.

* The server listens on 127.0.0.1 only (see :mod:`lifeveil.console.serve`), and refuses a
  ``Host`` header that is not the loopback address (a DNS-rebinding page gets 403).
* ``lifeveil console`` prints a URL with a random one-time token. The first request that
  carries it gets a session cookie (HttpOnly, SameSite=Strict) and a redirect to the same page
  without the token; the token is then spent. Every request without the cookie gets 403.
* Every POST carries a CSRF token (a hidden form field, compared in constant time) and, when
  the browser sends an ``Origin``, it must be this console's.
* Responses forbid framing, sniffing, caching and cross-origin referrers, and allow only this origin's
  scripts, styles and media.
"""

from __future__ import annotations

import secrets
import threading
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

SESSION_COOKIE = "lifeveil_console"
TOKEN_PARAM = "token"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # no-referrer would make chromium post Origin: null
    "Cache-Control": "no-store",
}
FORBIDDEN_PAGE = (
    "<!doctype html><title>LifeVeil console: 403</title><h1>403: not signed in</h1>"
    "<p>{reason}</p><p>Open the link that <code>lifeveil console</code> printed, in the browser "
    "you want to use; it works once. Restart <code>lifeveil console</code> for a new one.</p>"
)


class CsrfError(Exception):
    """A POST without this session's CSRF token, or from another origin."""


class ConsoleSecurity:
    """The one-time token, the session cookie value and the CSRF token of one console run.

    Args:
        token: the one-time token for the printed URL (default: 32 random bytes, base64url).
    """

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(32)
        self.csrf_token = secrets.token_urlsafe(32)
        self._session: str | None = None
        self._lock = threading.Lock()

    def redeem(self, token: str) -> str | None:
        """Spend the one-time token: the new session cookie value, or None if wrong or spent."""
        with self._lock:
            if self._session is not None or not _same(token, self.token):
                return None
            self._session = secrets.token_urlsafe(32)
            return self._session

    def is_session(self, cookie: str | None) -> bool:
        """Whether ``cookie`` is the session cookie handed out by :meth:`redeem`."""
        session = self._session
        return bool(cookie and session and _same(cookie, session))

    def check_csrf(self, request: Request, submitted: str | None) -> None:
        """Raise CsrfError unless ``submitted`` is this session's CSRF token and the request
        comes from this console's origin (when the browser says where it comes from)."""
        if not submitted or not _same(submitted, self.csrf_token):
            raise CsrfError("the form's CSRF token is missing or wrong; reload the page")
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).hostname not in LOOPBACK_HOSTS:
            raise CsrfError(f"a form posted from {origin}, not from this console")


class SecurityMiddleware:
    """ASGI middleware: loopback Host only, one-time token -> cookie, cookie on every request,
    security headers on every response."""

    def __init__(self, app: ASGIApp, security: ConsoleSecurity) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # the console has none: refuse before accepting
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = self._gate(request)
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, _with_headers(send))

    def _gate(self, request: Request) -> Response | None:
        """A response that ends the request (403, or the redirect that sets the cookie)."""
        if (request.url.hostname or "") not in LOOPBACK_HOSTS:
            return forbidden("this console answers only on 127.0.0.1")
        token = request.query_params.get(TOKEN_PARAM)
        if token is not None:
            return self._redeem(request, token)
        if not self.security.is_session(request.cookies.get(SESSION_COOKIE)):
            return forbidden("this browser has no console session")
        return None

    def _redeem(self, request: Request, token: str) -> Response:
        session = self.security.redeem(token)
        if session is None:
            return forbidden("this link was already used (or is wrong)")
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != TOKEN_PARAM]
        path = "/" + request.url.path.lstrip("/")  # never "//host": that would leave the console
        target = path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE, session, httponly=True, samesite="strict", path="/", secure=False
        )
        _add_headers(response.headers)
        return response


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes non-ASCII input (str compare_digest raises)."""
    return secrets.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def forbidden(reason: str) -> Response:
    """The 403 page, with the security headers."""
    response = HTMLResponse(FORBIDDEN_PAGE.format(reason=reason), status_code=403)
    _add_headers(response.headers)
    return response


def _add_headers(headers: object) -> None:
    for name, value in SECURITY_HEADERS.items():
        headers[name] = value  # type: ignore[index]


def _with_headers(send: Send) -> Send:
    """Wrap ``send`` so every response start carries the security headers."""

    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            names = {k.lower() for k, _ in message.get("headers", [])}
            extra = [
                (k.lower().encode(), v.encode())
                for k, v in SECURITY_HEADERS.items()
                if k.lower().encode() not in names
            ]
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return wrapped
