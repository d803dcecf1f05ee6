"""Device/user-side HTTPS client for registration and queries: queries go up, answers come down.

JSON bodies are padded to power-of-two lengths (see :mod:`lifeveil.transport.padding`).
Every POST carries a fresh nonce and the client clock (see
:mod:`lifeveil.transport.protocol`); the server rejects a reused nonce with 409. Query
vectors pass the same :class:`~lifeveil.transport.guard.EgressGuard` checks as the uplink.
The server never returns stored z vectors, only identifiers, timestamps, scores and labels.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from lifeveil.errors import (
    AuthError,
    InputError,
    NameTakenError,
    ProtocolError,
    ReplayError,
    ShapeError,
    UnknownNameError,
)
from lifeveil.transport.frame import WireSpec
from lifeveil.transport.guard import EgressGuard
from lifeveil.transport.padding import pad_json
from lifeveil.transport.protocol import (
    CLASSIFY_PATH,
    DEVICES_PATH,
    HEADS_PATH,
    INFO_PATH,
    KNN_PATH,
    NONCE_HEADER,
    TIMELINE_PATH,
    TIMESTAMP_HEADER,
    UPLINK_PATH,
)
from lifeveil.transport.uplink import client_ssl_context

#: Representation spaces (issue 14): register, list, choose the default, migrate.
SPACES_PATH = "/v1/spaces"
DEFAULT_SPACE_PATH = SPACES_PATH + "/default"
MIGRATIONS_PATH = SPACES_PATH + "/migrations"


@dataclass(frozen=True)
class DeviceCredentials:
    """Returned once by device registration; the server keeps only a hash of ``token``."""

    device: str
    token: str
    uplink_url: str


@dataclass(frozen=True)
class Neighbor:
    """One k-NN answer: which stored record, when it was captured, cosine similarity."""

    device: str
    seq: int
    timestamp_us: int
    score: float


@dataclass(frozen=True)
class Prediction:
    """One classification answer: the most probable label and all class probabilities."""

    label: str
    confidence: float
    probabilities: dict[str, float]


@dataclass(frozen=True)
class Segment:
    """A timeline segment: consecutive records with the same predicted label.

    ``start_us``/``end_us`` are the capture times of the first and last record (inclusive).
    """

    label: str
    start_us: int
    end_us: int
    n: int
    mean_confidence: float


_ERRORS: dict[int, type[Exception]] = {
    401: AuthError,
    403: AuthError,
    404: UnknownNameError,
    409: ReplayError,
    422: ShapeError,
}


class QueryClient:
    """HTTPS JSON client for one principal (a user or a device token).

    Args:
        base_url: ``https://HOST:PORT``.
        token: user or device token.
        wire: the server's wire spec (query z is checked against its ``z_dim``).
        cafile: PEM to trust, e.g. the server's self-signed ``cert.pem``.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        wire: WireSpec | None = None,
        cafile: str | Path | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if not base_url.startswith("https://"):
            raise ProtocolError(f"{base_url!r} is not https://; queries are only sent over TLS")
        self.base_url = base_url.rstrip("/")
        self._guard = EgressGuard(wire or WireSpec())
        self._http = httpx.Client(
            base_url=self.base_url,
            verify=client_ssl_context(cafile),
            headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"},
            timeout=timeout_s,
            trust_env=False,
        )

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._http.close()

    def __enter__(self) -> QueryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def info(self) -> dict[str, Any]:
        """Server wire spec and limits (no authentication needed)."""
        return self._request("GET", INFO_PATH)

    def register_device(self, name: str) -> DeviceCredentials:
        """Register a device in this user's tenant; the token is shown only in this answer."""
        data = self._request("POST", DEVICES_PATH, {"name": name})
        wss = "wss://" + self.base_url.removeprefix("https://")
        return DeviceCredentials(data["device"], data["token"], wss + UPLINK_PATH)

    def knn(
        self, z: np.ndarray, k: int = 10, device: str | None = None, *, space: str | None = None
    ) -> list[Neighbor]:
        """The ``k`` stored records of this tenant most cosine-similar to ``z`` (shape ``(d,)``),
        among the z of privatizer version ``space`` (default: the tenant's default space)."""
        body = {"z": self._guard.check_query_z(z).tolist(), "k": k, "device": device}
        return [
            Neighbor(**n)
            for n in self._request("POST", KNN_PATH, _spaced(body, space))["neighbors"]
        ]

    def classify(self, head: str, z: np.ndarray, *, space: str | None = None) -> list[Prediction]:
        """Apply the tenant's head ``head`` to z of shape ``(d,)`` or ``(n, d)``; ``space``
        names the privatizer version the z came from (the head must be of that space)."""
        rows = z[None, :] if z.ndim == 1 else z
        body = {"head": head, "z": [self._guard.check_query_z(row).tolist() for row in rows]}
        answer = self._request("POST", CLASSIFY_PATH, _spaced(body, space))
        return [Prediction(**p) for p in answer["predictions"]]

    def timeline(
        self,
        head: str,
        t_start_us: int,
        t_end_us: int,
        *,
        device: str | None = None,
        max_gap_us: int = 60_000_000,
        space: str | None = None,
    ) -> list[Segment]:
        """What was happening between two capture times, as labelled segments from ``head``
        over the z of ``space`` (default: the tenant's default space)."""
        body = {
            "head": head,
            "t_start_us": t_start_us,
            "t_end_us": t_end_us,
            "device": device,
            "max_gap_us": max_gap_us,
        }
        answer = self._request("POST", TIMELINE_PATH, _spaced(body, space))
        return [Segment(**s) for s in answer["segments"]]

    def devices(self) -> list[dict[str, Any]]:
        """The tenant's devices (those this token may see) with record counts and times."""
        return self._request("GET", DEVICES_PATH)["devices"]

    def heads(self) -> list[dict[str, Any]]:
        """The tenant's trained heads: name, classes, training size and accuracy."""
        return self._request("GET", HEADS_PATH)["heads"]

    def train_head(
        self, name: str, labels: list[tuple[str, int, str]], *, space: str | None = None
    ) -> dict[str, Any]:
        """Train (or replace) head ``name`` from ``(device, seq, label)`` of stored records of
        ``space`` (default: the tenant's default space); the head belongs to that space."""
        examples = [{"device": d, "seq": s, "label": lab} for d, s, lab in labels]
        body = _spaced({"examples": examples}, space)
        return self._request("POST", f"{HEADS_PATH}/{name}/train", body)

    # -- representation spaces (issue 14) ------------------------------------------------------
    def register_space(self, version: str, z_dim: int) -> dict[str, Any]:
        """Declare privatizer ``version`` (16 hex digits) to the server, so it stores z of it.

        Idempotent. Needs a device token (upload) or a user token (manage). Returns the space:
        ``version``, ``tag`` (the 16-bit wire tag), ``z_dim``, ``registered_us``,
        ``is_default``, ``n_records``. Raises NameTakenError (409) if another version of the
        tenant has the same tag, ShapeError/InputError (422) if ``z_dim`` is not the server's.
        """
        return self._request("POST", SPACES_PATH, {"version": version, "z_dim": int(z_dim)})

    def spaces(self) -> list[dict[str, Any]]:
        """The tenant's representation spaces with record counts (see :meth:`register_space`)."""
        return self._request("GET", SPACES_PATH)["spaces"]

    def set_default_space(self, version: str) -> dict[str, Any]:
        """Make ``version`` the space that queries naming none use (user token, manage)."""
        return self._request("PUT", DEFAULT_SPACE_PATH, {"version": version})

    def start_migration(self, adapter_path: str | Path) -> dict[str, Any]:
        """Send an adapter file (``lifeveil adapt`` output) for the server to migrate the
        tenant's stored z of its old version into its new one; runs in the background.

        Returns the migration (id, versions, status, done count); follow it with
        :meth:`migrations`. Only the adapter's weights travel, never z.
        """
        data = Path(adapter_path).read_bytes()
        body = {"adapter": base64.b64encode(data).decode("ascii")}
        return self._request("POST", MIGRATIONS_PATH, body)

    def migrations(self) -> list[dict[str, Any]]:
        """The tenant's migrations, newest first, with their progress."""
        return self._request("GET", MIGRATIONS_PATH)["migrations"]

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers, content = {}, None
        if method in ("POST", "PUT"):
            headers = {
                NONCE_HEADER: secrets.token_urlsafe(24),
                TIMESTAMP_HEADER: f"{time.time():.6f}",  # fixed width: header size is constant
                "Content-Type": "application/json",
            }
            content = pad_json(json.dumps(body, separators=(",", ":")).encode())
        response = self._http.request(method, path, content=content, headers=headers)
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json()


def _spaced(body: dict[str, Any], space: str | None) -> dict[str, Any]:
    """``body`` with ``"space"`` added when one is named (older servers know no such field)."""
    return body if space is None else {**body, "space": space}


def _error_from(response: httpx.Response) -> Exception:
    try:
        payload = response.json()
        message = payload.get("message") or str(payload)
        code = payload.get("error", "")
    except ValueError:
        message, code = response.text[:200], ""
    if code == "name_taken":
        return NameTakenError(message)
    fallback = InputError if response.status_code < 500 else ProtocolError
    kind = _ERRORS.get(response.status_code, fallback)
    return kind(f"HTTP {response.status_code}: {message}")
