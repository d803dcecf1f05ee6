"""Run the console: bind 127.0.0.1 (a free port or the one asked for), print the one-time URL,
serve until Ctrl-C."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable

from lifeveil.console.app import create_app
from lifeveil.console.config import ConsoleConfig
from lifeveil.console.security import TOKEN_PARAM, ConsoleSecurity
from lifeveil.errors import InputError, RuntimeFailure

HOST = "127.0.0.1"  # the console never listens on another interface


def bind(port: int = 0) -> socket.socket:
    """A listening TCP socket on 127.0.0.1 (``port`` 0: a free one chosen by the system)."""
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port} is not a TCP port; give 1-65535, or leave it out")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InputError(
                f"port {port} on {HOST} is in use; choose another --port or leave it out "
                "for a free one"
            ) from None
        raise RuntimeFailure(f"cannot listen on {HOST}:{port} ({exc.strerror})") from None
    sock.listen(64)
    return sock


def console_url(sock: socket.socket, security: ConsoleSecurity) -> str:
    """The one-time URL for the socket's port."""
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}/?{TOKEN_PARAM}={security.token}"


def serve(
    config: ConsoleConfig,
    *,
    port: int = 0,
    announce: Callable[[str], None] = print,
    passphrase: str | None = None,
) -> None:
    """Serve the console on 127.0.0.1 until interrupted.

    ``announce`` receives the one-time URL (the CLI prints it). ``passphrase`` unlocks the
    vault at start (e.g. from ``$LIFEVEIL_VAULT_PASSPHRASE``) and is not kept; without it and
    without ``config.key_file`` the console asks for it on its sign-in page.
    """
    import uvicorn

    security = ConsoleSecurity()
    app = create_app(config, security=security)
    if passphrase:
        app.state.vault.unlock(passphrase)
    sock = bind(port)
    announce(console_url(sock, security))
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, server_header=False)
    )
    try:
        server.run(sockets=[sock])
    finally:
        app.state.vault.lock()
        sock.close()
