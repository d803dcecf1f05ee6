"""Server configuration: typed, saved as ``server.toml`` in the data directory."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from lifeveil.errors import InputError
from lifeveil.io import atomic_open
from lifeveil.transport.frame import WireSpec

CONFIG_FILE = "server.toml"


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs besides host and port.

    Attributes:
        data_dir: holds ``server.toml``, the database and the TLS certificate and key.
        z_dim: dimension d of stored z; fixed for the life of a database.
        wire_dtype: frame payload encoding the uplink accepts (``fp16`` or ``int8``).
        store: name of the store backend (see ``lifeveil.server.store.list_stores``):
            ``sqlite`` (default, one file in the data directory) or ``postgresql``.
        store_dsn: where the ``postgresql`` store connects, e.g.
            ``postgresql://lifeveil@db.example:5432/lifeveil``; leave the password out and
            give it by ``PGPASSWORD`` or ``~/.pgpass``. Unused by ``sqlite``.
        ann_min_records: the ``sqlite`` store answers k-NN from an HNSW index (persisted in
            ``lifeveil.db.ann/``, exact re-ranking) for tenants with at least this many
            records, and by an exact scan below it; 0 turns the index off.
        knn_process: the ``sqlite`` store keeps its k-NN indexes and answers k-NN in a worker
            process (started at the first k-NN), so queries never hold up ingest on the
            interpreter lock; False keeps them in the server process.
        max_body_bytes: largest HTTP request body accepted (413 above).
        max_frames_per_post: most frames in one ``POST /v1/frames`` batch.
        replay_window_s: accepted clock skew for ``X-LifeVeil-Timestamp``; nonces are
            remembered this long.
        max_k: largest k for k-NN queries.
        max_classify_batch: most vectors in one classify query.
        max_timeline_records: most records one timeline query may scan (413 above; narrow
            the time range).
        sqlite_synchronous: ``FULL`` makes an ack mean "survives power loss"; ``NORMAL`` is
            faster and still survives a killed process.
        rate_limit_per_s, rate_limit_burst: requests per second (and burst) per token on the
            HTTP routes; above it 429 with Retry-After. 0 turns limiting off.
        max_connections, max_connections_per_ip: open connections in total / from one
            address; connections above either cap are closed at once.
        header_timeout_s: a connection that has not sent a complete request head this long
            after connecting (or after its last response) is closed (slow-loris).
        keepalive_timeout_s: idle keep-alive connections are closed after this long.
        tls13_only: refuse TLS 1.2 (TLS 1.2 is otherwise limited to ECDHE with AEAD ciphers).
    """

    data_dir: Path
    z_dim: int = 64
    wire_dtype: str = "fp16"
    store: str = "sqlite"
    store_dsn: str = ""
    ann_min_records: int = 2_000
    knn_process: bool = True
    max_body_bytes: int = 1 << 20
    max_frames_per_post: int = 64
    replay_window_s: float = 300.0
    max_k: int = 100
    max_classify_batch: int = 256
    max_timeline_records: int = 200_000
    sqlite_synchronous: str = "FULL"
    # Abuse limits (see server/run.py): per-token request rate, connection caps, timeouts.
    rate_limit_per_s: float = 50.0
    rate_limit_burst: int = 100
    max_connections: int = 2000
    max_connections_per_ip: int = 256
    header_timeout_s: float = 10.0
    keepalive_timeout_s: float = 5.0
    tls13_only: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        _ = self.wire  # raises ProtocolError for a bad z_dim or wire_dtype
        if self.ann_min_records < 0:
            raise InputError("ann_min_records must be >= 0 (0 turns the k-NN index off)")
        if self.sqlite_synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise InputError("sqlite_synchronous must be FULL, NORMAL or EXTRA")
        if not isinstance(self.knn_process, bool):
            raise InputError(f"knn_process must be true or false (got {self.knn_process!r})")

    @property
    def wire(self) -> WireSpec:
        """The frame format this server accepts."""
        return WireSpec(z_dim=self.z_dim, dtype=self.wire_dtype)  # type: ignore[arg-type]

    @property
    def db_path(self) -> Path:
        """SQLite database file."""
        return self.data_dir / "lifeveil.db"

    @property
    def ann_dir(self) -> Path:
        """Folder of the SQLite store's k-NN index files (one per tenant), beside the database."""
        return self.data_dir / "lifeveil.db.ann"

    @property
    def cert_path(self) -> Path:
        """PEM certificate (self-signed unless replaced by the operator)."""
        return self.data_dir / "tls" / "cert.pem"

    @property
    def key_path(self) -> Path:
        """PEM private key (mode 0600)."""
        return self.data_dir / "tls" / "key.pem"

    @classmethod
    def load(cls, data_dir: str | Path, **overrides: Any) -> ServerConfig:
        """Read ``DATA_DIR/server.toml`` if present, then apply ``overrides``."""
        path = Path(data_dir) / CONFIG_FILE
        values: dict[str, Any] = {}
        if path.is_file():
            try:
                values = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise InputError(f"{path}: not valid TOML ({exc}); fix or delete it") from exc
        known = {f.name for f in fields(cls)} - {"data_dir"}
        unknown = set(values) - known
        if unknown:
            raise InputError(f"{path}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        config = cls(data_dir=Path(data_dir), **values)
        return replace(config, **{k: v for k, v in overrides.items() if v is not None})

    def save(self) -> Path:
        """Write ``server.toml`` (all fields but ``data_dir``) atomically; returns its path."""
        path = self.data_dir / CONFIG_FILE
        with atomic_open(path, private=True) as fh:
            fh.write("# LifeVeil server configuration (see lifeveil.server.config.ServerConfig)\n")
            for key, value in asdict(self).items():
                if key != "data_dir":
                    fh.write(f"{key} = {_toml_value(value)}\n")
        return path


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)
