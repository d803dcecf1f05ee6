"""Turn any failure of a command into one line a person can act on, and an exit code.

The convention for every ``lifeveil`` verb: ``error: what happened - how to fix it``; exit
code 2 when the input was wrong (a missing file, a bad flag, an existing output) and 1 when the
environment failed (server down, TLS, a revoked token, a full disk) or LifeVeil has a bug.
Network libraries are recognised by their class names, so this module imports none of them
(``lifeveil --help`` must stay fast).
"""

from __future__ import annotations

import errno
import ssl

from lifeveil.errors import LifeVeilError

USAGE, RUNTIME = 2, 1

_TLS_HINT = (
    "the server's TLS certificate is not trusted - pass --cafile with the CA the server "
    "printed at start (DATA_DIR/tls/ca.pem), or use the http:// URL of a local test server"
)
_DOWN_HINT = "is the server running, and are the URL and port right?"


def describe_failure(exc: BaseException) -> tuple[str, int]:
    """One line (without the ``error:`` prefix) and the exit code for ``exc``."""
    if isinstance(exc, LifeVeilError):
        return str(exc), exc.exit_code
    for describe in (_network, _filesystem):
        found = describe(exc)
        if found is not None:
            return found
    return (
        f"unexpected {type(exc).__name__}: {exc} - this is a bug in LifeVeil; rerun with "
        "--debug for the traceback and report it",
        RUNTIME,
    )


def _class_names(exc: BaseException) -> set[str]:
    """``module.Class`` for every class of ``exc``, so third-party errors match by name."""
    return {f"{c.__module__.split('.')[0]}.{c.__name__}" for c in type(exc).__mro__}


def _network(exc: BaseException) -> tuple[str, int] | None:
    """Server down, TLS trust, HTTP status and WebSocket refusals."""
    names = _class_names(exc)
    text = str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return _TLS_HINT, RUNTIME
    if "httpx.HTTPStatusError" in names:
        return _http_status(exc.response.status_code, text), RUNTIME  # type: ignore[attr-defined]
    if "websockets.InvalidStatus" in names:
        return _http_status(exc.response.status_code, text), RUNTIME  # type: ignore[attr-defined]
    if names & {"httpx.TimeoutException", "TimeoutError"}:
        return f"the server did not answer in time ({text or 'timeout'}) - {_DOWN_HINT}", RUNTIME
    if names & {"httpx.ConnectError", "httpx.NetworkError", "builtins.ConnectionError"}:
        return f"cannot reach the server ({text or type(exc).__name__}) - {_DOWN_HINT}", RUNTIME
    if names & {"httpx.InvalidURL", "httpx.UnsupportedProtocol", "websockets.InvalidURI"}:
        return f"bad server URL ({text}) - give it as https://HOST:PORT", USAGE
    if "websockets.ConnectionClosed" in names:
        return f"the server closed the connection ({text}) - {_DOWN_HINT}", RUNTIME
    return None


def _http_status(status: int, text: str) -> str:
    """What an HTTP refusal means for the user."""
    if status == 401:
        return (
            "the server refused the token (HTTP 401): it is unknown or revoked - check "
            "--token-file, or ask the server's admin for a new token"
        )
    if status == 403:
        return (
            "the token may not do this (HTTP 403) - ask the server's admin for a token with "
            "the right scope"
        )
    if status == 429:
        return "the server is rate-limiting this token (HTTP 429) - wait and retry"
    return f"the server answered HTTP {status}: {text}"


def _filesystem(exc: BaseException) -> tuple[str, int] | None:
    """Missing, existing, unreadable or full: the OSError family."""
    if not isinstance(exc, OSError):
        return None
    where = exc.filename if exc.filename is not None else ""
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder: {where} - check the path", USAGE
    if isinstance(exc, FileExistsError):
        return (
            f"{where} already exists - choose another path, or pass --force where the "
            "command offers it",
            USAGE,
        )
    if isinstance(exc, IsADirectoryError | NotADirectoryError):
        return f"{exc.strerror}: {where} - check the path", USAGE
    if isinstance(exc, PermissionError):
        return f"permission denied: {where} - check the owner and mode of the path", RUNTIME
    if exc.errno == errno.ENOSPC:
        return f"no space left on the disk holding {where} - free some space and rerun", RUNTIME
    return f"{exc.strerror or exc}{': ' + str(where) if where else ''}", RUNTIME
