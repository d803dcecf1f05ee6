"""Tokens and replay protection.

Tokens are 256-bit random strings shown once at creation; the store keeps only their
SHA-256 (a slow password hash is unnecessary for random 256-bit secrets, and a fast one keeps
every request cheap). The prefix (``lva_``, ``lvu_``, ``lvd_``) tells people which kind a
token is; the server does not rely on it.

Replay protection for JSON POSTs: each carries a fresh nonce and the client's clock. The
server refuses timestamps outside ``+-replay_window_s`` (400) and a nonce the same principal
already used inside the window (409, the request is *rejected*, not repeated). Uplink frames
use their sequence numbers instead: a resent ``(device, seq)`` is *idempotently ignored* and
acked as DUPLICATE, because resending is how the device recovers from a lost connection.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets

from lifeveil.errors import AuthError, ProtocolError, ReplayError
from lifeveil.server.store import Principal, PrincipalKind, ZStore
from lifeveil.transport.protocol import NONCE_HEADER, TIMESTAMP_HEADER

TOKEN_PREFIX: dict[str, str] = {"admin": "lva_", "user": "lvu_", "device": "lvd_"}
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,200}$")


def new_token(kind: PrincipalKind) -> str:
    """A fresh random token for a principal of ``kind``."""
    return TOKEN_PREFIX[kind] + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Hex SHA-256 of the token, as stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate(store: ZStore, authorization: str | None) -> Principal:
    """The principal behind an ``Authorization: Bearer TOKEN`` header.

    Raises:
        AuthError: header missing or malformed, or token unknown or revoked.
    """
    if not authorization:
        raise AuthError("missing Authorization header; send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not _TOKEN.match(token):
        raise AuthError("malformed Authorization header; expected 'Bearer <token>'")
    principal = store.find_principal(hash_token(token))
    if principal is None:
        raise AuthError("unknown or revoked token; register again to get a new one")
    return principal


def check_replay(
    store: ZStore,
    principal: Principal,
    nonce: str | None,
    timestamp: str | None,
    *,
    window_s: float,
    now_s: float,
) -> None:
    """Refuse a request whose nonce was seen before or whose timestamp is stale.

    Raises:
        ProtocolError: nonce or timestamp header missing or malformed, or the timestamp is
            more than ``window_s`` seconds from ``now_s``.
        ReplayError: this principal already used ``nonce``.
    """
    if not nonce or not _NONCE.match(nonce):
        raise ProtocolError(
            f"missing or malformed {NONCE_HEADER} header: send a fresh random value of 16-128 "
            "characters [A-Za-z0-9_-] with every POST (lifeveil.transport.QueryClient does)"
        )
    try:
        sent_s = float(timestamp or "")
    except ValueError:
        sent_s = math.nan
    if not math.isfinite(sent_s):
        raise ProtocolError(f"missing or malformed {TIMESTAMP_HEADER} header: Unix seconds")
    skew = sent_s - now_s
    if abs(skew) > window_s:
        raise ProtocolError(
            f"request timestamp is {skew:+.0f} s from server time (allowed +-{window_s:.0f} s); "
            "check the client's clock"
        )
    expires_us = int((max(sent_s, now_s) + window_s) * 1e6)
    if not store.remember_nonce(principal.id, nonce, expires_us, int(now_s * 1e6)):
        raise ReplayError(f"replayed request: nonce {nonce[:8]}... was already used; not repeated")
