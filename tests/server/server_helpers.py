"""Helpers for server tests: a real SQLite data dir with two tenants and an HTTPS TestClient."""

from __future__ import annotations

import secrets
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from fastapi.testclient import TestClient

from lifeveil.server import admin
from lifeveil.server.app import create_app
from lifeveil.server.config import ServerConfig
from lifeveil.server.store import ZStore
from lifeveil.transport.frame import WireSpec, encode_cover_frame, encode_frame
from lifeveil.transport.protocol import NONCE_HEADER, TIMESTAMP_HEADER
from lifeveil.transport.record import ZRecord

Z_DIM = 16
STORE_Z_DIM = 8  # the store suites' z (the ``backend`` and ``store`` fixtures)


@dataclass
class Backend:
    """A store backend under test; ``open(z_dim)`` opens a new store on the same database."""

    name: str
    open: Callable[..., ZStore]


@dataclass
class World:
    """A server with tenants ``a`` and ``b``; each has a user and a device token."""

    config: ServerConfig
    store: ZStore
    client: TestClient
    admin_token: str
    tokens: dict[str, str]  # "a_user", "a_dev", "b_user", "b_dev"

    @property
    def wire(self) -> WireSpec:
        return self.config.wire


def server_config(data_dir: Path, **overrides: object) -> ServerConfig:
    """A small-d config so that tests build vectors by hand."""
    return ServerConfig(data_dir=data_dir, z_dim=Z_DIM, **overrides)  # type: ignore[arg-type]


def make_world(data_dir: Path, **overrides: object) -> World:
    config = server_config(data_dir, **overrides)
    report = admin.init_data_dir(config)
    store = admin.open_store(config)
    tokens = {}
    for name in ("a", "b"):
        tenant, user = admin.create_tenant(store, name)
        assert user is not None
        tokens[f"{name}_user"] = user.token
        tokens[f"{name}_dev"] = admin.issue_principal(store, "device", f"cam-{name}", tenant).token
    client = TestClient(create_app(config, store), base_url="https://testserver")
    assert report.admin_token
    return World(config, store, client, report.admin_token, tokens)


def auth(token: str, fresh: bool = True) -> dict[str, str]:
    """Authorization header, plus a fresh nonce and timestamp for POSTs."""
    headers = {"Authorization": f"Bearer {token}"}
    if fresh:
        headers[NONCE_HEADER] = secrets.token_urlsafe(16)
        headers[TIMESTAMP_HEADER] = str(time.time())
    return headers


def vec(seed: int, z_dim: int = Z_DIM) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(z_dim).astype(np.float32)


def frames(wire: WireSpec, records: list[ZRecord | None]) -> bytes:
    """Concatenated frames; None entries become cover frames."""
    return b"".join(
        encode_cover_frame(wire) if r is None else encode_frame(r, wire) for r in records
    )


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``lifeveil server run`` in a subprocess (real uvicorn, real TLS), for integration tests."""

    def __init__(self, config: ServerConfig, port: int, log_path: Path) -> None:
        self.config, self.port, self.log_path = config, port, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        cmd = [sys.executable, "-m", "lifeveil.cli.main", "server", "run"]
        cmd += ["--data-dir", str(self.config.data_dir), "--port", str(self.port)]
        log = open(self.log_path, "ab")  # noqa: SIM115  (closed with the process)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        ctx = ssl.create_default_context(cafile=str(self.config.cert_path))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.base_url + "/v1/health", verify=ctx, timeout=1).is_success:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server not ready in {timeout_s} s:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flush, like a power cut of the process."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` every 20 ms; AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


# -- k-NN index tests (test_ann.py, test_knn_process.py) ------------------------------------------
ANN_DIM = 16


def ann_records(start: int, n: int, seed: int = 0) -> list[ZRecord]:
    """``n`` clustered z (20 centres, dimension :data:`ANN_DIM`) with seqs from ``start``."""
    rng = np.random.default_rng(seed + start)
    centres = rng.standard_normal((20, ANN_DIM))
    z = centres[rng.integers(0, 20, n)] + 0.5 * rng.standard_normal((n, ANN_DIM))
    return [ZRecord(start + i, 1000 + start + i, z[i].astype(np.float32)) for i in range(n)]


def ann_device(store: ZStore, tenant: str, name: str = "cam"):
    """A device principal of ``tenant`` (created if missing)."""
    t = store.get_tenant(tenant) or store.create_tenant(tenant)
    return store.add_principal("device", name, f"h-{tenant}-{name}", t.id)


def hit_keys(hits) -> list[tuple[str, int]]:
    """(device, seq) of k-NN hits, in order."""
    return [(h.device, h.seq) for h in hits]
