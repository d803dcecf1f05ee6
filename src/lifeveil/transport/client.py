"""Device/user-side HTTPS client for registration and queries: queries go up, answers come down.

JSON bodies are padded to power-of-two lengths (see :mod:`lifeveil.transport.padding`).
Every POST carries a fresh nonce and the client clock (see
:mod:`lifeveil.transport.protocol`); the server rejects a reused nonce with 409. Query
vectors pass the same :class:`~lifeveil.transport.guard.EgressGuard` checks as the uplink.
The server never returns stored z vectors, only identifiers, timestamps, scores and labels.
"""

from __future__ import annotations

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

    def knn(self, z: np.ndarray, k: int = 10, device: str | None = None) -> list[Neighbor]:
        """The ``k`` stored records of this tenant most cosine-similar to ``z`` (shape ``(d,)``)."""
        body = {"z": self._guard.check_query_z(z).tolist(), "k": k, "device": device}
        return [Neighbor(**n) for n in self._request("POST", KNN_PATH, body)["neighbors"]]

    def classify(self, head: str, z: np.ndarray) -> list[Prediction]:
        """Apply the tenant's head ``head`` to z of shape ``(d,)`` or ``(n, d)``."""
        rows = z[None, :] if z.ndim == 1 else z
        body = {"head": head, "z": [self._guard.check_query_z(row).tolist() for row in rows]}
        return [Prediction(**p) for p in self._request("POST", CLASSIFY_PATH, body)["predictions"]]

    def timeline(
        self,
        head: str,
        t_start_us: int,
        t_end_us: int,
        *,
        device: str | None = None,
        max_gap_us: int = 60_000_000,
    ) -> list[Segment]:
        """What was happening between two capture times, as labelled segments from ``head``."""
        body = {
            "head": head,
            "t_start_us": t_start_us,
            "t_end_us": t_end_us,
            "device": device,
            "max_gap_us": max_gap_us,
        }
        return [Segment(**s) for s in self._request("POST", TIMELINE_PATH, body)["segments"]]

    def devices(self) -> list[dict[str, Any]]:
        """The tenant's devices (those this token may see) with record counts and times."""
        return self._request("GET", DEVICES_PATH)["devices"]

    def heads(self) -> list[dict[str, Any]]:
        """The tenant's trained heads: name, classes, training size and accuracy."""
        return self._request("GET", HEADS_PATH)["heads"]

    def train_head(self, name: str, labels: list[tuple[str, int, str]]) -> dict[str, Any]:
        """Train (or replace) head ``name`` from ``(device, seq, label)`` of stored records."""
        examples = [{"device": d, "seq": s, "label": lab} for d, s, lab in labels]
        return self._request("POST", f"{HEADS_PATH}/{name}/train", {"examples": examples})

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers, content = {}, None
        if method == "POST":
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
