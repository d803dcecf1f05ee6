"""The server's storage interface, and the registry of backends chosen by name.

Every read takes a ``tenant_id`` that the caller got from authentication, never from the
request body: tenant isolation is enforced here, in one place, by construction. Backends
implement :class:`ZStore`; ``sqlite`` (WAL mode, one file) is the embedded default and
``postgresql`` (``pg_store``: pgvector HNSW) serves larger deployments; either is chosen by
name in ``server.toml``, and others can register with :func:`register_store`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from lifeveil.errors import AuthError, InputError, LifeVeilError, ShapeError
from lifeveil.registry import Registry
from lifeveil.server.heads import LinearHead
from lifeveil.server.search import cosine_knn
from lifeveil.server.store_spaces import SpaceStore
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import NO_SPACE, ZRecord

if TYPE_CHECKING:
    from lifeveil.server.config import ServerConfig

PrincipalKind = Literal["admin", "user", "device"]

# What a token may do. Users query and manage their tenant; devices upload only unless their
# owner granted "query" at registration; "device:NAME" limits a user's queries to that device
# (repeatable). Admins administer.
SCOPE_ADMIN, SCOPE_MANAGE, SCOPE_QUERY, SCOPE_UPLOAD = "admin", "manage", "query", "upload"
DEVICE_SCOPE_PREFIX = "device:"
DEFAULT_SCOPES: dict[str, tuple[str, ...]] = {
    "admin": (SCOPE_ADMIN,),
    "user": (SCOPE_QUERY, SCOPE_MANAGE),
    "device": (SCOPE_UPLOAD,),
}


class StoreUnavailableError(LifeVeilError):
    """The database behind the store cannot be reached now (down, restarting, network).

    Transient: the server answers 503 with Retry-After and the device outbox resends (ingest
    is idempotent, so nothing is lost or stored twice).
    """


@dataclass(frozen=True)
class Tenant:
    """An isolated namespace: one household or organisation, its users, devices and z."""

    id: int
    name: str


@dataclass(frozen=True)
class Principal:
    """Whoever a token belongs to. Admins have no tenant; users and devices have one."""

    id: int
    kind: PrincipalKind
    name: str
    tenant_id: int | None
    tenant_name: str | None
    scopes: frozenset[str] = frozenset()

    def may(self, scope: str) -> bool:
        """Whether this principal's token carries ``scope``."""
        return scope in self.scopes

    @property
    def device_limit(self) -> frozenset[str]:
        """Device names this principal's queries are limited to (empty = every device)."""
        n = len(DEVICE_SCOPE_PREFIX)
        return frozenset(s[n:] for s in self.scopes if s.startswith(DEVICE_SCOPE_PREFIX))


@dataclass(frozen=True)
class TokenInfo:
    """A principal's token as the administrator sees it (never the token itself).

    Times are microseconds since the epoch; ``revoked_us``/``expires_us``/``rotated_us`` are
    None when not revoked / never expiring / never rotated.
    """

    id: int
    kind: PrincipalKind
    name: str
    tenant: str | None
    scopes: tuple[str, ...]
    created_us: int
    last_seen_us: int | None
    expires_us: int | None
    rotated_us: int | None
    revoked_us: int | None

    def state(self, now_us: int) -> str:
        """ "revoked", "expired" or "active"."""
        if self.revoked_us is not None:
            return "revoked"
        if self.expires_us is not None and self.expires_us <= now_us:
            return "expired"
        return "active"


@dataclass(frozen=True)
class AuditEntry:
    """One line of the append-only audit log of administrative actions."""

    id: int
    time_us: int
    actor: str
    action: str
    target: str
    detail: str


@dataclass(frozen=True)
class DeviceInfo:
    """A registered device as shown to its tenant (times in microseconds since the epoch)."""

    name: str
    n_records: int
    created_us: int
    last_seen_us: int | None


@dataclass(frozen=True, eq=False)
class RecordBatch:
    """Stored records of one tenant, in capture-time order.

    Attributes:
        devices: device name of each record (length n).
        seqs: int64 array ``(n,)``.
        timestamps_us: int64 array ``(n,)``, capture times.
        z: float32 array ``(n, d)``.
    """

    devices: list[str]
    seqs: np.ndarray
    timestamps_us: np.ndarray
    z: np.ndarray

    def __len__(self) -> int:
        return len(self.devices)


@dataclass(frozen=True)
class NeighborHit:
    """One k-NN answer."""

    device: str
    seq: int
    timestamp_us: int
    score: float


RecordsOf = tuple[Principal, Sequence[ZRecord]]
PutResult = list[AckStatus] | LifeVeilError


class ZStore(SpaceStore, abc.ABC):
    """Tenants, principals (hashed tokens), z records by representation space, heads and
    replay nonces.

    Reads take ``space``, the wire tag of a space (see :mod:`~lifeveil.server.store_spaces`),
    and never return z of another; callers resolve a request that names no space to
    :meth:`default_space`.
    """

    z_dim: int

    # -- tenants and principals ---------------------------------------------------------
    @abc.abstractmethod
    def create_tenant(self, name: str) -> Tenant:
        """Create a tenant; NameTakenError if ``name`` exists."""

    @abc.abstractmethod
    def get_tenant(self, name: str) -> Tenant | None:
        """The tenant called ``name``, or None."""

    @abc.abstractmethod
    def list_tenants(self) -> list[Tenant]:
        """All tenants, by name."""

    @abc.abstractmethod
    def add_principal(
        self,
        kind: PrincipalKind,
        name: str,
        token_hash: str,
        tenant_id: int | None,
        scopes: Sequence[str] | None = None,
        expires_us: int | None = None,
    ) -> Principal:
        """Add a user, device (both need a tenant) or admin (no tenant).

        Only the hash of the token is stored. ``scopes`` default to the kind's
        :data:`DEFAULT_SCOPES`; ``expires_us`` None = never expires. NameTakenError if the
        tenant already has a principal of this kind and name (revoked ones included).
        """

    @abc.abstractmethod
    def find_principal(self, token_hash: str) -> Principal | None:
        """The active (not revoked, not expired) principal whose token hashes to
        ``token_hash``, or None."""

    @abc.abstractmethod
    def get_principal(
        self, kind: PrincipalKind, name: str, tenant_id: int | None
    ) -> Principal | None:
        """The active principal of this kind and name in this tenant (None for admins)."""

    @abc.abstractmethod
    def list_tokens(self, tenant_id: int | None = None) -> list[TokenInfo]:
        """Every principal's token state (of one tenant, or all with None), revoked included."""

    @abc.abstractmethod
    def rotate_principal(
        self, principal_id: int, token_hash: str, expires_us: int | None = None
    ) -> None:
        """Replace an active principal's token hash (the old token stops working at once)."""

    @abc.abstractmethod
    def append_audit(self, actor: str, action: str, target: str, detail: str = "") -> None:
        """Append one entry to the audit log (the log refuses updates and deletes)."""

    @abc.abstractmethod
    def read_audit(self, limit: int | None = None) -> list[AuditEntry]:
        """The audit log, oldest first (the last ``limit`` entries if given)."""

    def get_device(self, tenant_id: int, name: str) -> Principal | None:
        """Device ``name`` of this tenant, or None (devices of other tenants are invisible)."""
        return self.get_principal("device", name, tenant_id)

    @abc.abstractmethod
    def list_devices(self, tenant_id: int) -> list[DeviceInfo]:
        """This tenant's devices with record counts."""

    @abc.abstractmethod
    def revoke_principal(self, principal_id: int) -> None:
        """Disable a token (e.g. a lost device) at once; its stored records stay.

        Takes effect for open sessions too: :meth:`put_records` refuses a revoked device.
        """

    # -- records --------------------------------------------------------------------------
    @abc.abstractmethod
    def put_records(self, device: Principal, records: Sequence[ZRecord]) -> list[AckStatus]:
        """Store records of ``device`` in one durable transaction; idempotent per seq.

        Returns one status per record: STORED (new), DUPLICATE (same space and seq, identical
        timestamp and z: ignored), CONFLICT (same space and seq, different content: the first
        one is kept) or UNKNOWN_SPACE (its space is neither 0 nor registered in the device's
        tenant: not stored; the other records are). Also updates the device's last-seen time, so that every call does the same
        kind of work whether or not it carried new records.

        Raises:
            AuthError: the device was revoked or its token expired (checked in the same
                transaction as the write, so nothing is stored after a revoke commits).
        """

    def put_records_many(self, batches: Sequence[RecordsOf]) -> list[PutResult]:
        """:meth:`put_records` for several devices at once, one result per batch: the
        statuses, or the error that batch alone raised (the others are still stored).

        Backends override this to store everything in one transaction (group commit); this
        default stores batch after batch.
        """
        results: list[PutResult] = []
        for device, records in batches:
            try:
                results.append(self.put_records(device, records))
            except (AuthError, InputError) as exc:
                results.append(exc)
        return results

    @abc.abstractmethod
    def count_records(
        self, tenant_id: int, device_id: int | None = None, *, space: int = NO_SPACE
    ) -> int:
        """Number of stored records of a tenant's space (optionally one device)."""

    @abc.abstractmethod
    def load_records(
        self,
        tenant_id: int,
        *,
        device_id: int | None = None,
        t_start_us: int | None = None,
        t_end_us: int | None = None,
        limit: int | None = None,
        space: int = NO_SPACE,
    ) -> RecordBatch:
        """Records of ``space`` with ``t_start_us <= timestamp_us <= t_end_us``, by capture
        time."""

    @abc.abstractmethod
    def get_records(
        self, tenant_id: int, keys: Sequence[tuple[str, int]], *, space: int = NO_SPACE
    ) -> RecordBatch:
        """Records of ``space`` by ``(device name, seq)``, in the order given;
        UnknownNameError if absent."""

    # -- heads and replay -----------------------------------------------------------------
    @abc.abstractmethod
    def put_head(self, tenant_id: int, head: LinearHead) -> None:
        """Store (or replace) a head under ``head.name`` in ``head.space`` for this tenant."""

    @abc.abstractmethod
    def get_head(self, tenant_id: int, name: str, *, space: int = NO_SPACE) -> LinearHead | None:
        """This tenant's head ``name`` of ``space``, or None."""

    @abc.abstractmethod
    def list_heads(self, tenant_id: int, *, space: int | None = None) -> list[LinearHead]:
        """This tenant's heads (of one space, or of all with None), by name."""

    @abc.abstractmethod
    def remember_nonce(self, principal_id: int, nonce: str, expires_us: int, now_us: int) -> bool:
        """Record a request nonce; False if this principal already used it (a replay).

        Nonces past ``expires_us`` may be forgotten (requests that old are refused by their
        timestamp anyway).
        """

    @abc.abstractmethod
    def storage_summary(self) -> dict[str, int]:
        """What the store physically holds, for audits: ``z_records`` (rows of z),
        ``z_bytes_each`` (bytes of one stored z) and ``largest_value`` (bytes of the largest
        value in any column of any table: shows that no raw media is stored)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""

    # -- queries with a portable default ------------------------------------------------------
    def prepare_knn(
        self, tenant_id: int, timeout_s: float = 3600.0, *, space: int = NO_SPACE
    ) -> None:
        """Build or load the k-NN index of this tenant's space now and wait for it (warm-up,
        benchmarks).

        A no-op for backends whose index the database maintains (and for the exact scan).
        """
        return None

    def knn(
        self,
        tenant_id: int,
        query: np.ndarray,
        k: int,
        device_id: int | None = None,
        *,
        space: int = NO_SPACE,
    ) -> list[NeighborHit]:
        """The ``k`` records of this tenant's ``space`` most cosine-similar to ``query``
        (shape ``(d,)``).

        Exact brute force over the space's z; a backend with a vector index may override.
        """
        batch = self.load_records(tenant_id, device_id=device_id, space=space)
        idx, scores = cosine_knn(batch.z, query, k)
        return [
            NeighborHit(batch.devices[i], int(batch.seqs[i]), int(batch.timestamps_us[i]), float(s))
            for i, s in zip(idx, scores, strict=True)
        ]


StoreFactory = Callable[..., ZStore]
STORES: Registry[ZStore] = Registry("store")


def principal_scopes(
    kind: PrincipalKind, tenant_id: int | None, scopes: Sequence[str] | None
) -> str:
    """The scopes a new principal is stored with (space-separated), after the one rule every
    backend enforces: admins have no tenant, users and devices need one."""
    if (kind == "admin") != (tenant_id is None):
        raise InputError("admins have no tenant; users and devices need one")
    return " ".join(DEFAULT_SCOPES[kind] if scopes is None else scopes)


def stored_z(z: np.ndarray, z_dim: int) -> np.ndarray:
    """``z`` as the little-endian float32 (z_dim,) array every backend stores."""
    if z.shape != (z_dim,):
        raise ShapeError(f"z has shape {z.shape}; this store holds ({z_dim},)")
    return np.ascontiguousarray(z, dtype="<f4")


def register_store(name: str, factory: StoreFactory, help: str = "") -> None:
    """Register a backend; ``factory(config=ServerConfig)`` must return a :class:`ZStore`."""
    STORES.register(name, factory, help)


def create_store(config: ServerConfig) -> ZStore:
    """Open the store named by ``config.store`` (UnknownNameError lists the choices)."""
    return STORES.create(config.store, config=config)


def list_stores() -> dict[str, str]:
    """Registered backend names with one-line help."""
    return STORES.describe()
