"""Administrative operations shared by the CLI and the HTTP API: a library, not an app.

Whoever can read the data directory is the server's administrator, so the CLI works on the
store directly; remote administration uses the admin token and ``/v1/admin/*``.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lifeveil.errors import InputError, UnknownNameError
from lifeveil.io import private_dir, private_file
from lifeveil.server.auth import hash_token, new_token
from lifeveil.server.config import CONFIG_FILE, ServerConfig
from lifeveil.server.heads import LinearHead, train_linear_head
from lifeveil.server.store import (
    DEFAULT_SCOPES,
    DEVICE_SCOPE_PREFIX,
    SCOPE_QUERY,
    Principal,
    PrincipalKind,
    Tenant,
    ZStore,
    create_store,
)
from lifeveil.server.tls import cert_fingerprint, ensure_self_signed_cert

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_TRAINING_EXAMPLES = 200_000
CLI_ACTOR = "cli"  # administrative actions taken on the data directory directly


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
    private_dir(config.data_dir)  # holds the database of z and the TLS private key
    if not (config.data_dir / CONFIG_FILE).is_file():
        config.save()
    private_file(config.data_dir / CONFIG_FILE)  # also when an older version wrote it 0644
    created = ensure_self_signed_cert(config.cert_path, config.key_path, extra_names)
    store = open_store(config)
    try:
        new_db = not any(t.kind == "admin" for t in store.list_tokens())
        admin_token = issue_principal(store, "admin", "admin", None).token if new_db else None
        if new_db:
            store.append_audit(CLI_ACTOR, "init", str(config.data_dir), "admin token issued")
    finally:
        store.close()
    return InitReport(config, created, cert_fingerprint(config.cert_path), admin_token)


def open_store(config: ServerConfig) -> ZStore:
    """Open the configured store backend."""
    return create_store(config)


def issue_principal(
    store: ZStore,
    kind: PrincipalKind,
    name: str,
    tenant: Tenant | None,
    scopes: Sequence[str] | None = None,
    expires_us: int | None = None,
) -> Issued:
    """Create a principal with a fresh token; only the token's hash is stored.

    ``scopes`` default to the kind's (see :data:`lifeveil.server.store.DEFAULT_SCOPES`).
    """
    token = new_token(kind)
    principal = store.add_principal(
        kind,
        check_name(kind, name),
        hash_token(token),
        tenant.id if tenant else None,
        scopes,
        expires_us,
    )
    return Issued(principal, token)


def device_scopes(name: str, allow_query: bool = False) -> tuple[str, ...]:
    """A device uploads; with ``allow_query`` it may also query its own records (only)."""
    if not allow_query:
        return DEFAULT_SCOPES["device"]
    return (
        *DEFAULT_SCOPES["device"],
        SCOPE_QUERY,
        DEVICE_SCOPE_PREFIX + check_name("device", name),
    )


def user_scopes(only_devices: Sequence[str] = ()) -> tuple[str, ...]:
    """A user queries and manages its tenant; ``only_devices`` limits queries to those devices."""
    limits = tuple(DEVICE_SCOPE_PREFIX + check_name("device", d) for d in only_devices)
    return (*DEFAULT_SCOPES["user"], *limits)


def audit(
    store: ZStore, actor: Principal | str, action: str, target: str, detail: object = ""
) -> None:
    """Append an administrative action to the store's append-only audit log."""
    who = (
        actor if isinstance(actor, str) else f"{actor.kind}:{actor.tenant_name or '-'}/{actor.name}"
    )
    text = detail if isinstance(detail, str) else " ".join(map(str, detail))  # type: ignore[call-overload]
    store.append_audit(who, action, target, text)


def find_token_owner(
    store: ZStore, kind: PrincipalKind, name: str, tenant_name: str | None
) -> Principal:
    """The active principal of ``kind`` called ``name`` (in ``tenant_name``; None for admins)."""
    if (kind == "admin") != (tenant_name is None):
        raise InputError(
            "admins have no tenant; users and devices need --tenant"
            if kind != "admin"
            else "the admin token belongs to no tenant; drop --tenant"
        )
    tenant = require_tenant(store, tenant_name) if tenant_name is not None else None
    principal = store.get_principal(kind, name, tenant.id if tenant else None)
    if principal is None:
        where = f" in tenant {tenant_name!r}" if tenant_name else ""
        raise UnknownNameError(
            f"no active {kind} named {name!r}{where}; see `lifeveil server tokens list`"
        )
    return principal


def rotate_token(
    store: ZStore, principal: Principal, expires_us: int | None = None, actor: str = CLI_ACTOR
) -> Issued:
    """Give ``principal`` a fresh token; the old one stops working at once."""
    token = new_token(principal.kind)
    store.rotate_principal(principal.id, hash_token(token), expires_us)
    audit(store, actor, "rotate-token", _target(principal), _expiry_text(expires_us))
    return Issued(principal, token)


def revoke_token(store: ZStore, principal: Principal, actor: str = CLI_ACTOR) -> None:
    """Disable ``principal``'s token at once (open uplink sessions are closed on their next
    frame); its stored records stay."""
    store.revoke_principal(principal.id)
    audit(store, actor, "revoke-token", _target(principal))


def _target(principal: Principal) -> str:
    return f"{principal.kind}:{principal.tenant_name or '-'}/{principal.name}"


def _expiry_text(expires_us: int | None) -> str:
    return "never expires" if expires_us is None else f"expires_us={expires_us}"


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
    store: ZStore,
    tenant: Tenant,
    name: str,
    keys: list[tuple[str, int]],
    labels: list[str],
    *,
    space: int | None = None,
) -> LinearHead:
    """Train head ``name`` on this tenant's stored records ``(device, seq)`` of ``space``
    (default: the tenant's default space) and save it as a head of that space."""
    if len(keys) > MAX_TRAINING_EXAMPLES:
        raise InputError(f"{len(keys)} examples; at most {MAX_TRAINING_EXAMPLES} per head")
    space = store.default_space(tenant.id) if space is None else space
    batch = store.get_records(tenant.id, keys, space=space)
    return _fit_and_save(store, tenant, name, batch.z, labels, space)


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
    store: ZStore,
    tenant: Tenant,
    name: str,
    z: np.ndarray,
    labels: list[str],
    space: int | None = None,
) -> LinearHead:
    head = train_linear_head(check_name("head", name), z, labels)
    space = store.default_space(tenant.id) if space is None else space
    head = dataclasses.replace(head, space=space)
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
