"""Server-side migration of stored z from one representation space to another (issue 14).

A device that retrained its privatizer fits an *adapter* (``lifeveil adapt``: old z -> new z,
a small network or a ridge regression, snapped onto the new code grid;
``lifeveil.privatizer.adapt``) and ships the adapter file here. The
server applies it to every stored z of the old space, in batches, writing the results into
the new space beside the originals (same device, seq and capture time; ``origin`` = the
migration's id). Each batch and the cursor that says how far it got commit in one
transaction, so a migration killed midway resumes where it stopped when run again, and never
writes a row twice.

What an adapter can disclose: it is a fixed function of old z alone, so a migrated z carries
no more information about the scene (or the person in it) than the old z it came from (data
processing inequality); it does not remove what the old version leaked either.

The server never imports the device-side privatizer package; it reads the adapter file
format (safetensors: ``weight`` (d_new, d_old), ``bias`` (d_new,); optionally a hidden ReLU
layer ``hidden_weight`` (h, d_old), ``hidden_bias`` (h,), in which case ``weight`` is
(d_new, h); optionally ``thresholds`` (d_new, L - 1) and ``levels`` (L,) that snap the output
onto the new version's code grid; versions in the metadata) itself, and applies it with
:func:`lifeveil.mapping.apply_adapter`, the function the device fitted it for.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lifeveil.errors import InputError, ShapeError
from lifeveil.mapping import apply_adapter
from lifeveil.server.store import ZStore
from lifeveil.server.store_spaces import (
    MIGRATION_BATCH,
    MIGRATION_DONE,
    MIGRATION_FAILED,
    MigrationInfo,
    checked_tag,
)

log = logging.getLogger(__name__)

ADAPTER_FORMAT = "lifeveil-adapter"  # the "format" metadata of privatizer.adapt files
#: Progress callback: (migration, rows done, rows in the old space).
Progress = Callable[[MigrationInfo, int, int], None]


@dataclass(frozen=True, eq=False)
class AdapterFile:
    """An adapter as the server reads it: ``z_new = z_old @ weight.T + bias``, then snapped
    onto ``levels`` by ``thresholds`` when the file has them.

    Attributes:
        weight: float32 ``(d_new, d_old)``.
        bias: float32 ``(d_new,)``.
        old_version / new_version: privatizer version ids (16 hex digits).
        sha256: hex digest of the file, which names the migration (rerunning the same file
            resumes it).
        data: the file's bytes (kept by the store to resume after a restart).
        thresholds / levels: float32 ``(d_new, L - 1)`` and ``(L,)``, or None (no snapping).
        hidden: the hidden ReLU layer's (weight, bias), or None (a linear adapter).
    """

    weight: np.ndarray
    bias: np.ndarray
    old_version: str
    new_version: str
    sha256: str
    data: bytes
    thresholds: np.ndarray | None = None
    levels: np.ndarray | None = None
    hidden: tuple[np.ndarray, np.ndarray] | None = None  # (weight (h, d_old), bias (h,))

    @property
    def old_dim(self) -> int:
        """Dimension of the z it takes."""
        return int((self.weight if self.hidden is None else self.hidden[0]).shape[1])

    @property
    def new_dim(self) -> int:
        """Dimension of the z it makes."""
        return int(self.weight.shape[0])

    def apply(self, z: np.ndarray) -> np.ndarray:
        """Old z ``(n, d_old)`` -> new z ``(n, d_new)`` float32."""
        snapping = None
        if self.thresholds is not None and self.levels is not None:
            snapping = (self.thresholds, self.levels)
        return apply_adapter(z, self.weight, self.bias, self.hidden, snapping)


def read_adapter(data: bytes) -> AdapterFile:
    """Parse an adapter file (``lifeveil adapt`` output); InputError saying what is wrong."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        (size,) = struct.unpack("<Q", data[:8])
        meta = json.loads(data[8 : 8 + size]).get("__metadata__") or {}
        tensors = load(data)
        weight, bias = tensors["weight"], tensors["bias"]
        old_version, new_version = meta["old_version"], meta["new_version"]
    except (struct.error, ValueError, KeyError, AttributeError, SafetensorError) as exc:
        raise InputError(
            f"not a LifeVeil adapter file ({type(exc).__name__}: {exc}); send the "
            "NAME.safetensors that `lifeveil adapt` wrote"
        ) from None
    if meta.get("format") != ADAPTER_FORMAT:
        raise InputError(f"not a LifeVeil adapter file (format {meta.get('format')!r})")
    if weight.ndim != 2 or bias.shape != weight.shape[:1]:
        raise ShapeError(f"adapter weight {weight.shape} and bias {bias.shape} do not fit")
    if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        raise InputError("the adapter holds NaN or inf; fit it again")
    checked_tag(old_version), checked_tag(new_version)
    thresholds, levels = _snapping(tensors, weight.shape[0])
    hidden = _hidden_layer(tensors, weight.shape[1])
    return AdapterFile(
        weight.astype(np.float32),
        bias.astype(np.float32),
        old_version,
        new_version,
        hashlib.sha256(data).hexdigest(),
        bytes(data),
        thresholds,
        levels,
        hidden,
    )


def _hidden_layer(tensors: dict, width: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The file's hidden ReLU layer, None without; InputError if it does not fit."""
    if "hidden_weight" not in tensors and "hidden_bias" not in tensors:
        return None
    weight, bias = tensors.get("hidden_weight"), tensors.get("hidden_bias")
    if weight is None or bias is None or weight.ndim != 2 or bias.shape != (width,):
        raise ShapeError(f"the adapter's hidden layer does not fit its {width}-wide output layer")
    if weight.shape[0] != width or not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        raise InputError("the adapter's hidden layer is malformed or holds NaN/inf; fit it again")
    return weight.astype(np.float32), bias.astype(np.float32)


def _snapping(tensors: dict, new_dim: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The file's snapping ``(thresholds, levels)``, (None, None) without; InputError if they
    do not fit the adapter."""
    if "thresholds" not in tensors and "levels" not in tensors:
        return None, None
    thresholds, levels = tensors.get("thresholds"), tensors.get("levels")
    if thresholds is None or levels is None:
        raise InputError("the adapter has only one of thresholds and levels; fit it again")
    if levels.ndim != 1 or thresholds.shape != (new_dim, len(levels) - 1):
        raise ShapeError(
            f"adapter thresholds {thresholds.shape} do not fit {new_dim} outputs of "
            f"{len(levels)} levels"
        )
    if not np.isfinite(levels).all() or np.isnan(thresholds).any():
        raise InputError("the adapter's levels or thresholds hold NaN or inf; fit it again")
    return thresholds.astype(np.float32), levels.astype(np.float32)


def check_adapter(store: ZStore, tenant_id: int, adapter: AdapterFile) -> None:
    """Refuse an adapter this tenant's store cannot apply, with one line saying why."""
    if adapter.old_version == adapter.new_version:
        raise InputError(f"the adapter maps version {adapter.old_version} to itself")
    if adapter.old_dim != store.z_dim:
        raise ShapeError(
            f"the adapter takes z of dimension {adapter.old_dim} but this server stores "
            f"{store.z_dim}; it was fitted for another privatizer"
        )
    if adapter.new_dim != store.z_dim:
        raise ShapeError(
            f"the adapter makes z of dimension {adapter.new_dim} but this server stores "
            f"{store.z_dim}; a server stores one z_dim: use a new data dir (a new server) for "
            "the new privatizer and let devices upload there"
        )
    store.space_of(tenant_id, adapter.old_version)  # UnknownNameError if not registered


def start_migration(store: ZStore, tenant_id: int, adapter: AdapterFile) -> MigrationInfo:
    """Check ``adapter``, register its new version as a space and record the migration (or
    find the one already recorded for this file); nothing is migrated yet."""
    check_adapter(store, tenant_id, adapter)
    store.register_space(tenant_id, adapter.new_version, adapter.new_dim)
    return store.begin_migration(
        tenant_id, adapter.old_version, adapter.new_version, adapter.sha256, adapter.data
    )


def run_migration(
    store: ZStore,
    migration: MigrationInfo,
    adapter: AdapterFile,
    *,
    batch: int = MIGRATION_BATCH,
    progress: Progress | None = None,
) -> MigrationInfo:
    """Apply ``adapter`` to the old space's z after the migration's cursor, batch by batch,
    until none are left; then mark it done. A failure marks it failed and is raised (a rerun
    resumes from the last committed batch)."""
    if migration.status == MIGRATION_DONE:
        return migration
    total = store.count_records(migration.tenant_id, space=migration.old_tag)
    cursor, done = migration.cursor, migration.done
    try:
        while True:
            rows = store.migration_rows(migration.tenant_id, migration.old_tag, cursor, batch)
            if not len(rows):
                break
            done += store.write_migrated(migration, rows, adapter.apply(rows.z))
            cursor = (int(rows.keys[-1, 0]), int(rows.keys[-1, 1]))
            if progress is not None:
                progress(migration, done, total)
    except Exception as exc:
        store.end_migration(migration.id, MIGRATION_FAILED, f"{type(exc).__name__}: {exc}")
        raise
    store.end_migration(migration.id, MIGRATION_DONE)
    return _current(store, migration)


def migrate(
    store: ZStore,
    tenant_id: int,
    adapter: AdapterFile,
    *,
    batch: int = MIGRATION_BATCH,
    progress: Progress | None = None,
) -> MigrationInfo:
    """:func:`start_migration` then :func:`run_migration`, in the calling thread."""
    migration = start_migration(store, tenant_id, adapter)
    return run_migration(store, migration, adapter, batch=batch, progress=progress)


def unfinished(store: ZStore) -> list[MigrationInfo]:
    """Migrations of every tenant that were started and never finished (oldest first)."""
    return [m for m in reversed(store.list_migrations()) if m.status not in _FINAL]


def resume_all(store: ZStore, batch: int = MIGRATION_BATCH) -> int:
    """Run every unfinished migration to its end (a server calls this in the background when
    it starts); failures are logged. Returns how many finished."""
    finished = 0
    for migration in unfinished(store):
        try:
            adapter = read_adapter(store.migration_adapter(migration.id))
            run_migration(store, migration, adapter, batch=batch)
            finished += 1
        except Exception:
            log.exception("migration %d failed; it resumes when started again", migration.id)
    return finished


_FINAL = (MIGRATION_DONE, MIGRATION_FAILED)


def _current(store: ZStore, migration: MigrationInfo) -> MigrationInfo:
    return next(m for m in store.list_migrations(migration.tenant_id) if m.id == migration.id)
