"""A real LifeVeil server in a subprocess on 127.0.0.1, for the demo, benchmarks and load tests.

It runs exactly what an operator runs (``lifeveil server run``: uvicorn, TLS with the
self-signed certificate, SQLite), in a separate process so that it can be killed like a
crashed server and started again on the same data directory and port.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

from lifeveil.errors import LifeVeilError
from lifeveil.server import admin
from lifeveil.server.config import ServerConfig
from lifeveil.transport.protocol import HEALTH_PATH

HOST = "127.0.0.1"  # loopback only: these servers are for local measurements and demos


class LocalServerError(LifeVeilError):
    """The local server subprocess did not start (its log is in the message)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class LocalServer:
    """``lifeveil server run`` on ``127.0.0.1:port`` with its own data directory.

    Args:
        data_dir: server data directory (created with config, database and certificate).
        z_dim / wire_dtype: the wire format, fixed for the database's life.
        port: TCP port (default: a free one, kept across restarts).
        sqlite_synchronous: ``FULL`` (ack = survives power loss) or ``NORMAL``.
        store_dsn: a ``postgresql://`` URL to store in PostgreSQL instead of SQLite.

    Use as a context manager, or ``start`` / ``kill`` / ``stop``.
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        z_dim: int = 64,
        wire_dtype: str = "fp16",
        port: int | None = None,
        sqlite_synchronous: str = "FULL",
        store_dsn: str = "",
    ) -> None:
        self.config = ServerConfig(
            data_dir=Path(data_dir),
            z_dim=z_dim,
            wire_dtype=wire_dtype,
            sqlite_synchronous=sqlite_synchronous,
            store="postgresql" if store_dsn else "sqlite",
            store_dsn=store_dsn,
        )
        self.port = port or free_port()
        self.log_path = self.config.data_dir.parent / f"{self.config.data_dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        admin.init_data_dir(self.config)

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:PORT``."""
        return f"https://{HOST}:{self.port}"

    @property
    def cafile(self) -> str:
        """The server's self-signed certificate, for clients to trust."""
        return str(self.config.cert_path)

    def add_tenant(self, name: str, user: str = "owner") -> str:
        """Create a tenant and its first user directly in the database; returns the user token."""
        store = admin.open_store(self.config)
        try:
            _, issued = admin.create_tenant(store, name, user)
        finally:
            store.close()
        assert issued is not None
        return issued.token

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the subprocess and wait until ``/v1/health`` answers over TLS."""
        cmd = [sys.executable, "-m", "lifeveil.cli.main", "server", "run"]
        cmd += ["--data-dir", str(self.config.data_dir), "--host", HOST, "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        ctx = ssl.create_default_context(cafile=self.cafile)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LocalServerError(f"server exited early:\n{self._log_tail()}")
            try:
                if httpx.get(self.base_url + HEALTH_PATH, verify=ctx, timeout=1).is_success:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise LocalServerError(f"server not ready in {timeout_s:.0f} s:\n{self._log_tail()}")

    def kill(self) -> None:
        """SIGKILL the server: no shutdown handlers run, as in a crash or power cut."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """Terminate the server gracefully (SIGKILL after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
