"""One-time token -> HttpOnly SameSite=Strict cookie; 403 without it; CSRF on every POST."""

from __future__ import annotations

from fastapi.testclient import TestClient

from lifeveil.console.security import SESSION_COOKIE, SecurityMiddleware

from .support import PASSPHRASE


def test_every_page_is_403_without_the_session(app):
    anonymous = TestClient(app, base_url="http://127.0.0.1")
    for path in ("/", "/status", "/vault", "/log", "/api/log", "/budget", "/static/live.js"):
        response = anonymous.get(path, follow_redirects=False)
        assert response.status_code == 403, path
        assert "lifeveil console" in response.text


def test_the_token_sets_a_strict_httponly_cookie_and_is_spent(app):
    browser = TestClient(app, base_url="http://127.0.0.1")
    first = browser.get(f"/log?token={app.state.security.token}&x=1", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/log?x=1"  # the token leaves the address bar
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert browser.get("/log").status_code == 200

    other = TestClient(app, base_url="http://127.0.0.1")  # the same link again: spent
    assert other.get(f"/?token={app.state.security.token}").status_code == 403
    assert other.get("/status").status_code == 403
    other.cookies.set(SESSION_COOKIE, "forged")
    assert other.get("/status").status_code == 403


def test_the_redirect_never_leaves_the_console(app):
    from starlette.requests import Request

    scope = {
        "type": "http",
        "method": "GET",
        "path": "//evil.example/x",
        "query_string": f"token={app.state.security.token}".encode(),
        "headers": [(b"host", b"127.0.0.1:8000")],
    }
    gate = SecurityMiddleware(app, app.state.security)
    response = gate._gate(Request(scope))  # noqa: SLF001  (a path no HTTP client sends as is)
    assert response.status_code == 303 and response.headers["location"] == "/evil.example/x"


def test_a_wrong_token_does_not_spend_the_real_one(app):
    browser = TestClient(app, base_url="http://127.0.0.1")
    assert browser.get("/?token=guess").status_code == 403
    assert browser.get("/?token=caf\u00e9").status_code == 403  # non-ASCII: 403, not 500
    assert browser.get(f"/?token={app.state.security.token}").status_code == 200


def test_a_foreign_host_header_is_refused_even_with_the_cookie(client: TestClient):
    assert client.get("/status", headers={"host": "attacker.example:8000"}).status_code == 403
    assert client.get("/status", headers={"host": "localhost:8000"}).status_code == 200


def test_responses_carry_the_security_headers(client: TestClient):
    response = client.get("/status")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "same-origin"


def test_posts_need_the_csrf_token(client: TestClient, app):
    csrf = app.state.security.csrf_token
    form = {"passphrase": PASSPHRASE, "next": "/vault"}
    assert client.post("/login", data=form).status_code == 403
    assert client.post("/login", data={**form, "csrf": "wrong"}).status_code == 403
    assert client.post("/login", data={**form, "csrf": "caf\u00e9"}).status_code == 403
    assert not app.state.vault.unlocked
    foreign = {"origin": "https://attacker.example"}
    assert client.post("/login", data={**form, "csrf": csrf}, headers=foreign).status_code == 403
    assert not app.state.vault.unlocked
    assert client.post("/login", data={**form, "csrf": csrf}).status_code == 200
    assert app.state.vault.unlocked
    assert client.post("/lock", data={}).status_code == 403
    assert app.state.vault.unlocked
    assert client.post("/lock", data={"csrf": csrf}).status_code == 200
    assert not app.state.vault.unlocked


def test_a_wrong_passphrase_shows_the_form_again(client: TestClient, app):
    form = {"passphrase": "wrong", "csrf": app.state.security.csrf_token, "next": "/vault"}
    response = client.post("/login", data=form)
    assert response.status_code == 401 and "wrong passphrase" in response.text.lower()
    assert not app.state.vault.unlocked


def test_sign_in_redirects_only_to_console_pages(client: TestClient, app):
    csrf = app.state.security.csrf_token
    for target in ("https://evil.example/", "//evil.example", "/vault//evil"):
        form = {"passphrase": PASSPHRASE, "csrf": csrf, "next": target}
        response = client.post("/login", data=form, follow_redirects=False)
        assert response.headers["location"] == "/vault", target
