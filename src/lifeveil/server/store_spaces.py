"""Representation spaces in the store: which privatizer versions a tenant's z come from.

Every stored z lives in one *space*, named on the wire by a 16-bit tag (the first four hex
digits of the privatizer version id, :func:`~lifeveil.transport.record.space_tag`; 0 for z of
an undeclared version). A tenant registers the versions its devices run; the store refuses z
of unregistered tags (``AckStatus.UNKNOWN_SPACE``), answers every read within one space and
never compares z of different spaces. A *migration* fills a new space with an adapter's image
of an old space's z, so old recordings become queryable next to new ones (issue 14).

This module holds the interface (:class:`SpaceStore`, a base of ``ZStore``) and its data;
``store_spaces_sql`` implements it for both SQL backends.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass

import numpy as np

from lifeveil.errors import InputError, UnknownNameError
from lifeveil.transport.record import NO_SPACE, space_tag

#: Rows a migration reads, adapts and writes per transaction (its cursor moves per batch).
MIGRATION_BATCH = 2_000
MIGRATION_RUNNING, MIGRATION_DONE, MIGRATION_FAILED = "running", "done", "failed"


@dataclass(frozen=True)
class SpaceInfo:
    """One representation space of a tenant.

    Attributes:
        version: privatizer version id (16 hex digits); None for :data:`NO_SPACE` (z of
            devices that declared no version).
        tag: the 16-bit wire tag (``space_tag(version)``, or 0).
        z_dim: dimension of its z (the store's; one z_dim per server).
        registered_us: when it was registered (microseconds since the epoch; 0 for tag 0).
        is_default: queries that name no space use this one (see ``default_space``).
        n_records: z stored in it (uploaded and migrated).
    """

    version: str | None
    tag: int
    z_dim: int
    registered_us: int
    is_default: bool
    n_records: int

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields."""
        return asdict(self)


@dataclass(frozen=True)
class MigrationInfo:
    """One run of an adapter over a tenant's stored z (times in microseconds since the epoch).

    ``cursor`` is the last ``(device_id, seq)`` of the old space already migrated; a rerun
    continues after it. ``done`` counts rows written into the new space.
    """

    id: int
    tenant_id: int
    old_tag: int
    new_tag: int
    old_version: str
    new_version: str
    adapter_sha256: str
    cursor: tuple[int, int]
    done: int
    status: str
    message: str
    started_us: int
    finished_us: int | None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields (the cursor is internal and left out)."""
        fields = asdict(self)
        del fields["cursor"], fields["tenant_id"]
        return fields


@dataclass(frozen=True, eq=False)
class MigrationRows:
    """A batch of an old space's rows: keys ``(n, 2)`` (device_id, seq), capture times
    ``(n,)`` int64 and z ``(n, d)`` float32, in key order."""

    keys: np.ndarray
    timestamps_us: np.ndarray
    z: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)


def checked_tag(version: str) -> int:
    """The wire tag of ``version``; InputError saying what a version id looks like."""
    try:
        return space_tag(version)
    except ValueError as exc:
        raise InputError(
            f"{exc}; a privatizer version id is the 16 hex digits `lifeveil model info` prints"
        ) from None


class SpaceStore(abc.ABC):
    """The space and migration half of the store interface (see the module docstring)."""

    z_dim: int

    @abc.abstractmethod
    def register_space(self, tenant_id: int, version: str, z_dim: int) -> SpaceInfo:
        """Declare privatizer ``version`` for this tenant; idempotent.

        Raises:
            ShapeError: ``z_dim`` is not the store's (one z_dim per server).
            NameTakenError: another version of this tenant has the same 16-bit tag.
            InputError: ``version`` is not 16 lower-case hex digits.
        """

    @abc.abstractmethod
    def list_spaces(self, tenant_id: int) -> list[SpaceInfo]:
        """This tenant's spaces with record counts, by registration time (tag 0 first, when
        it holds records)."""

    @abc.abstractmethod
    def set_default_space(self, tenant_id: int, version: str) -> SpaceInfo:
        """Make registered ``version`` the tenant's default space (UnknownNameError if not)."""

    @abc.abstractmethod
    def default_space(self, tenant_id: int) -> int:
        """The tag queries use when they name none: the explicit default, else the most
        recently registered space, else :data:`NO_SPACE`."""

    def space_of(self, tenant_id: int, version: str) -> SpaceInfo:
        """This tenant's registered space of ``version``; UnknownNameError listing the known."""
        checked_tag(version)
        spaces = self.list_spaces(tenant_id)
        for space in spaces:
            if space.version == version:
                return space
        known = ", ".join(s.version for s in spaces if s.version) or "(none)"
        raise UnknownNameError(
            f"privatizer version {version!r} is not registered in your tenant (registered: "
            f"{known}); a device registers its version when it enrols (POST /v1/spaces)"
        )

    # -- migrations ---------------------------------------------------------------------------
    @abc.abstractmethod
    def begin_migration(
        self, tenant_id: int, old_version: str, new_version: str, sha256: str, adapter: bytes
    ) -> MigrationInfo:
        """Record a migration of this tenant by the adapter file ``adapter`` (its SHA-256
        ``sha256``), or return the one already recorded for the same adapter (to resume)."""

    @abc.abstractmethod
    def migration_rows(
        self, tenant_id: int, space: int, after: tuple[int, int], limit: int
    ) -> MigrationRows:
        """Up to ``limit`` rows of ``space`` with key ``(device_id, seq) > after``, in key
        order; only uploaded rows (never the output of another migration)."""

    @abc.abstractmethod
    def write_migrated(self, migration: MigrationInfo, rows: MigrationRows, z: np.ndarray) -> int:
        """Store ``z`` (adapted ``rows``) in the migration's new space, origin = its id,
        skipping keys already there, and move its cursor to the last key of ``rows``; all in
        one transaction. Returns the number of rows written."""

    @abc.abstractmethod
    def end_migration(self, migration_id: int, status: str, message: str = "") -> None:
        """Mark a migration ``done`` or ``failed`` (with a message for people)."""

    @abc.abstractmethod
    def list_migrations(self, tenant_id: int | None = None) -> list[MigrationInfo]:
        """Migrations of one tenant (or all with None), newest first."""

    @abc.abstractmethod
    def migration_adapter(self, migration_id: int) -> bytes:
        """The adapter file a migration was started with (to resume it after a restart)."""


__all__ = [
    "MIGRATION_BATCH",
    "NO_SPACE",
    "MigrationInfo",
    "MigrationRows",
    "SpaceInfo",
    "SpaceStore",
    "checked_tag",
]
