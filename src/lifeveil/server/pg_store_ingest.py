"""Ingest for the PostgreSQL store: one group commit of several devices' z in a few statements.

A group (``put_records_many``: what the server's ingest queue collected, one batch per device
call) is written in one transaction of five statements whatever its size: lock and touch the
devices' rows, read their tenants' spaces, COPY every new row into a staging table, move them
into ``lifeveil_z_records`` (``ON CONFLICT DO NOTHING``: resends are idempotent), and, only when
some were not new, read those back to tell a duplicate from a conflict. A statement per device
(~80 per group of 16 devices) spent most of the time in per-statement overhead and in waits
for the database to be scheduled (measured: docs/SERVER.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lifeveil.errors import AuthError, LifeVeilError
from lifeveil.server.pg_store_pool import copy_rows_binary
from lifeveil.server.pg_store_principals import ACTIVE_PRINCIPAL
from lifeveil.server.store import Principal, PutResult, RecordsOf
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import NO_SPACE

#: Where each batch's rows go on the way in (a per-session temp table, emptied as read).
STAGING = "lifeveil_z_in_v4"

Key = tuple[int, int, int]  # (device_id, space, seq)
Where = tuple[int, int]  # (batch index, row index) of a key's first occurrence in the group


def put_group(
    conn: Any,
    batches: Sequence[RecordsOf],
    prepared: Sequence[list[np.ndarray] | LifeVeilError],
    now_us: int,
    z_dim: int,
) -> list[PutResult]:
    """Store a group of batches in ``conn``'s open transaction; one result per batch (its
    acks, or the error that stored none of it)."""
    results: list[PutResult | None] = [
        item if isinstance(item, LifeVeilError) else None for item in prepared
    ]
    writers = [device for (device, _), r in zip(batches, results, strict=True) if r is None]
    alive = _touch_devices(conn, writers, now_us)
    for i, (device, _) in enumerate(batches):
        if results[i] is None and device.id not in alive:
            results[i] = AuthError(
                f"device {device.name!r} was revoked or its token expired; nothing stored"
            )
    todo = [i for i, result in enumerate(results) if result is None]
    known = _known_spaces(conn, {int(batches[i][0].tenant_id or 0) for i in todo})
    first: dict[Key, Where] = {}
    for i in todo:
        device, records = batches[i]
        spaces = known.get(int(device.tenant_id or 0), {NO_SPACE})
        for j, record in enumerate(records):
            if int(record.space) in spaces:
                first.setdefault((device.id, int(record.space), int(record.seq)), (i, j))
    stored = _insert(conn, batches, prepared, first, now_us, z_dim)
    existing = _existing(conn, [key for key in first if key not in stored])
    for i in todo:
        results[i] = _statuses(i, batches, prepared, first, stored, existing)
    return [r for r in results if r is not None]  # every batch has its result by now


def _touch_devices(conn: Any, devices: list[Principal], now_us: int) -> set[int]:
    """Lock the devices' rows and note them seen; returns the ids still allowed to store.

    A revoke that commits first is seen here; one that comes later waits for this
    transaction, so nothing is stored after a revoke commits. Rows are locked in id order
    (the index scan of ``= ANY`` sorts the ids), so two groups never wait on each other in
    a cycle.
    """
    if not devices:
        return set()
    rows = conn.execute(
        "UPDATE lifeveil_principals p SET last_seen_us = %s WHERE p.id = ANY(%s) AND "
        + ACTIVE_PRINCIPAL
        + " RETURNING p.id",
        (now_us, sorted({d.id for d in devices}), now_us),
    ).fetchall()
    return {int(r[0]) for r in rows}


def _known_spaces(conn: Any, tenants: set[int]) -> dict[int, set[int]]:
    """Tags each tenant's devices may upload z of: its registered spaces, and 0."""
    known: dict[int, set[int]] = {t: {NO_SPACE} for t in tenants}
    if tenants:
        rows = conn.execute(
            "SELECT tenant_id, tag FROM lifeveil_spaces WHERE tenant_id = ANY(%s)",
            (sorted(tenants),),
        ).fetchall()
        for tenant, tag in rows:
            known[int(tenant)].add(int(tag))
    return known


def _insert(
    conn: Any,
    batches: Sequence[RecordsOf],
    prepared: Sequence[list[np.ndarray] | LifeVeilError],
    first: dict[Key, Where],
    now_us: int,
    z_dim: int,
) -> set[Key]:
    """COPY each key's first occurrence into the staging table and insert the new ones;
    returns the keys inserted."""
    if not first:
        return set()
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} (device_id BIGINT, tenant_id BIGINT, "
        f"space INTEGER, seq BIGINT, timestamp_us BIGINT, z vector({z_dim})) "
        "ON COMMIT DELETE ROWS"
    )
    where = list(first.values())
    records = [batches[i][1][j] for i, j in where]
    zs: list[np.ndarray] = [prepared[i][j] for i, j in where]  # type: ignore[index]
    data = copy_rows_binary(
        [
            np.array([batches[i][0].id for i, _ in where], dtype=np.int64),
            np.array([batches[i][0].tenant_id for i, _ in where], dtype=np.int64),
            np.array([int(r.space) for r in records], dtype=np.int32),
            np.array([int(r.seq) for r in records], dtype=np.int64),
            np.array([int(r.timestamp_us) for r in records], dtype=np.int64),
        ],
        np.stack(zs),
    )
    with (
        conn.cursor() as cur,
        cur.copy(
            f"COPY {STAGING} (device_id, tenant_id, space, seq, timestamp_us, z) "
            "FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.write(data)
    # Emptying the staging table as it is read: a DELETE costs far less than TRUNCATE
    # (which makes new files: it took half the ingest time).
    inserted = conn.execute(
        f"WITH staged AS (DELETE FROM {STAGING} RETURNING *) "
        "INSERT INTO lifeveil_z_records (device_id, space, seq, tenant_id, timestamp_us, "
        "received_us, z) SELECT device_id, space, seq, tenant_id, timestamp_us, %s, z "
        "FROM staged ON CONFLICT (device_id, space, seq) DO NOTHING "
        "RETURNING device_id, space, seq",
        (now_us,),
    ).fetchall()
    return {(int(d), int(sp), int(s)) for d, sp, s in inserted}


def _existing(conn: Any, keys: list[Key]) -> dict[Key, tuple[int, np.ndarray]]:
    """``(timestamp_us, z)`` of already stored keys (resends), in one read."""
    if not keys:
        return {}
    devices, spaces, seqs = (list(column) for column in zip(*keys, strict=True))
    rows = conn.execute(
        "SELECT r.device_id, r.space, r.seq, r.timestamp_us, r.z FROM lifeveil_z_records r "
        "JOIN unnest(%s::bigint[], %s::integer[], %s::bigint[]) AS k(device_id, space, seq) "
        "ON r.device_id = k.device_id AND r.space = k.space AND r.seq = k.seq",
        (devices, spaces, seqs),
        binary=True,
    ).fetchall()
    return {
        (int(d), int(sp), int(s)): (int(t), np.asarray(z, dtype="<f4")) for d, sp, s, t, z in rows
    }


def _statuses(
    i: int,
    batches: Sequence[RecordsOf],
    prepared: Sequence[list[np.ndarray] | LifeVeilError],
    first: dict[Key, Where],
    stored: set[Key],
    existing: dict[Key, tuple[int, np.ndarray]],
) -> list[AckStatus]:
    """Batch ``i``'s acks: STORED for a key's first occurrence that was new; otherwise
    DUPLICATE if it equals what is stored (or the group's first occurrence), else CONFLICT;
    UNKNOWN_SPACE for a space its tenant has not registered."""
    device, records = batches[i]
    zs: list[np.ndarray] = prepared[i]  # type: ignore[assignment]
    statuses: list[AckStatus] = []
    for j, record in enumerate(records):
        key = (device.id, int(record.space), int(record.seq))
        if key not in first:
            statuses.append(AckStatus.UNKNOWN_SPACE)
        elif key in stored and first[key] == (i, j):
            statuses.append(AckStatus.STORED)
        else:
            fi, fj = first[key]
            ts, z = existing.get(key, (int(batches[fi][1][fj].timestamp_us), prepared[fi][fj]))  # type: ignore[index]
            same = int(ts) == int(record.timestamp_us) and z.tobytes() == zs[j].tobytes()
            statuses.append(AckStatus.DUPLICATE if same else AckStatus.CONFLICT)
    return statuses
