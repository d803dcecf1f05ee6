"""Administrative operations shared by the CLI and the HTTP API: a library, not an app.

Whoever can read the data directory is the server's administrator, so the CLI works on the
store directly; remote administration uses the admin token and ``/v1/admin/*``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lifeveil.errors import InputError, UnknownNameError
from lifeveil.server.auth import hash_token, new_token
from lifeveil.server.config import CONFIG_FILE, ServerConfig
from lifeveil.server.heads import LinearHead, train_linear_head
from lifeveil.server.store import Principal, PrincipalKind, Tenant, ZStore, create_store
from lifeveil.server.tls import cert_fingerprint, ensure_self_signed_cert

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_TRAINING_EXAMPLES = 200_000


@dataclass(frozen=True)
class Issued:
    """A new principal and its token. The token is not stored anywhere; show it once."""

    principal: Principal
    token: str


@dataclass(frozen=True)
class InitReport:
    """What :func:`init_data_dir` did."""

    config: ServerConfig
    created_cert: bool
    fingerprint: str
    admin_token: str | None  # only when a new database got its first admin token


def check_name(kind: str, name: str) -> str:
    """Validate a tenant/user/device/head name: 1-64 chars of ``[A-Za-z0-9_.-]``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(
            f"{kind} name {name!r} is invalid: use 1-64 characters of letters, digits, '_', '.'"
            " or '-', starting with a letter or digit"
        )
    return name


def init_data_dir(config: ServerConfig, extra_names: tuple[str, ...] = ()) -> InitReport:
    """Create the data directory, config, database and TLS certificate if missing.

    Idempotent. On a brand-new database an admin token is issued and returned (once).
    """
    if not config.data_dir.exists():
        config.data_dir.mkdir(parents=True)
        config.data_dir.chmod(0o700)  # holds the database of z and the TLS private key
    if not (config.data_dir / CONFIG_FILE).is_file():
        config.save()
    created = ensure_self_signed_cert(config.cert_path, config.key_path, extra_names)
    new_db = not config.db_path.exists()
    store = open_store(config)
    try:
        admin_token = issue_principal(store, "admin", "admin", None).token if new_db else None
    finally:
        store.close()
    return InitReport(config, created, cert_fingerprint(config.cert_path), admin_token)


def open_store(config: ServerConfig) -> ZStore:
    """Open the configured store backend."""
    return create_store(config)


def issue_principal(store: ZStore, kind: PrincipalKind, name: str, tenant: Tenant | None) -> Issued:
    """Create a principal with a fresh token; only the token's hash is stored."""
    token = new_token(kind)
    principal = store.add_principal(
        kind, check_name(kind, name), hash_token(token), tenant.id if tenant else None
    )
    return Issued(principal, token)


def require_tenant(store: ZStore, name: str) -> Tenant:
    """The tenant called ``name``; UnknownNameError lists the existing ones."""
    tenant = store.get_tenant(name)
    if tenant is None:
        known = ", ".join(t.name for t in store.list_tenants()) or "(none)"
        raise UnknownNameError(
            f"unknown tenant {name!r}; existing: {known}; create it with `lifeveil server "
            "add-tenant`"
        )
    return tenant


def create_tenant(
    store: ZStore, name: str, first_user: str | None = "owner"
) -> tuple[Tenant, Issued | None]:
    """Create a tenant and (by default) its first user, whose token is returned once."""
    tenant = store.create_tenant(check_name("tenant", name))
    user = issue_principal(store, "user", first_user, tenant) if first_user else None
    return tenant, user


def train_head(
    store: ZStore, tenant: Tenant, name: str, keys: list[tuple[str, int]], labels: list[str]
) -> LinearHead:
    """Train head ``name`` on this tenant's stored records ``(device, seq)`` and save it."""
    if len(keys) > MAX_TRAINING_EXAMPLES:
        raise InputError(f"{len(keys)} examples; at most {MAX_TRAINING_EXAMPLES} per head")
    batch = store.get_records(tenant.id, keys)
    return _fit_and_save(store, tenant, name, batch.z, labels)


def train_head_from_csv(store: ZStore, tenant: Tenant, name: str, path: Path) -> LinearHead:
    """Train head ``name`` from a CSV and save it for the tenant.

    The CSV has a header row and either columns ``device,seq,label`` (records already
    uploaded by the tenant's devices) or ``label,z0,...,z{d-1}`` (labelled z given inline).
    """
    rows = _read_csv(path)
    columns = set(rows[0])
    if {"device", "seq", "label"} <= columns:
        try:
            keys = [(r["device"], int(r["seq"])) for r in rows]
        except ValueError as exc:
            raise InputError(f"{path}: seq must be an integer ({exc})") from None
        return train_head(store, tenant, name, keys, [r["label"] for r in rows])
    z_cols = [f"z{i}" for i in range(store.z_dim)]
    if "label" in columns and set(z_cols) <= columns:
        try:
            z = np.array([[float(r[c]) for c in z_cols] for r in rows], dtype=np.float32)
        except ValueError as exc:
            raise InputError(f"{path}: z columns must be numbers ({exc})") from None
        return _fit_and_save(store, tenant, name, z, [r["label"] for r in rows])
    raise InputError(
        f"{path}: columns {sorted(columns)[:8]}... are neither 'device,seq,label' nor "
        f"'label,z0..z{store.z_dim - 1}'"
    )


def _fit_and_save(
    store: ZStore, tenant: Tenant, name: str, z: np.ndarray, labels: list[str]
) -> LinearHead:
    head = train_linear_head(check_name("head", name), z, labels)
    store.put_head(tenant.id, head)
    return head


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read labels CSV ({exc})") from exc
    if not rows:
        raise InputError(f"{path}: no labelled rows (need a header and at least two rows)")
    return rows
