"""Ingest for the PostgreSQL store: a group commit of several devices' z in one statement.

A group (``put_records_many``: what the server's ingest queue collected, one batch per device
call) is one transaction of two steps whatever its size: COPY every new row of every device
into a per-session staging table, then one statement that locks and touches the devices'
rows (only active devices may store), reads their tenants' spaces, and moves the staged rows
of active devices in registered spaces into ``lifeveil_z_records`` (``ON CONFLICT DO
NOTHING``: resends are idempotent). Only when some rows were not new does one more read tell
a duplicate from a conflict.

Why so few statements: five per device (~80 per group of 16) spent much of ingest's time
in per-statement overhead, and each round trip is a hand-over between this process and its
PostgreSQL process. Five statements per group and then one made no measurable difference
to what ingest loses beside a k-NN loop (docs/SERVER.md, "PostgreSQL, seventh session").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lifeveil.errors import AuthError, LifeVeilError
from lifeveil.server.pg_store_pool import copy_rows_binary
from lifeveil.server.pg_store_principals import ACTIVE_PRINCIPAL
from lifeveil.server.store import PutResult, RecordsOf
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import NO_SPACE

#: Where a group's rows go on the way in (a per-session temp table, emptied as read).
STAGING = "lifeveil_z_staged"

Key = tuple[int, int, int]  # (device_id, space, seq)
Where = tuple[int, int]  # (batch index, row index) of a key's first occurrence in the group

# One statement: lock and touch the devices (a revoke that commits first is seen; one that
# comes later waits for this transaction, so nothing is stored after a revoke commits; the
# ids are sorted, so rows are locked in one order and two groups never wait on each other in
# a cycle), their tenants' spaces, and the insert of the staged rows that may be stored
# (tenant_id from the device's row, never from the device). Returns (0, device, tenant) per
# active device, (1, tenant, tag) per registered space, (2, device, space, seq) per row stored.
_GROUP_SQL = f"""
WITH alive AS (
    UPDATE lifeveil_principals p SET last_seen_us = %(now)s
    WHERE p.id = ANY(%(ids)s) AND {ACTIVE_PRINCIPAL.replace("%s", "%(now)s")}
    RETURNING p.id, p.tenant_id
), known AS (
    SELECT s.tenant_id, s.tag FROM lifeveil_spaces s
    WHERE s.tenant_id IN (SELECT a.tenant_id FROM alive a)
), staged AS (
    DELETE FROM {STAGING} RETURNING *
), inserted AS (
    INSERT INTO lifeveil_z_records (device_id, space, seq, tenant_id, timestamp_us,
        received_us, z)
    SELECT s.device_id, s.space, s.seq, a.tenant_id, s.timestamp_us, %(now)s, s.z
    FROM staged s JOIN alive a ON a.id = s.device_id
    WHERE s.space = {NO_SPACE}
        OR EXISTS (SELECT 1 FROM known k WHERE k.tenant_id = a.tenant_id AND k.tag = s.space)
    ON CONFLICT (device_id, space, seq) DO NOTHING
    RETURNING device_id, space, seq
)
SELECT 0, a.id, a.tenant_id, 0 FROM alive a
UNION ALL SELECT 1, k.tenant_id, k.tag::bigint, 0 FROM known k
UNION ALL SELECT 2, i.device_id, i.space::bigint, i.seq FROM inserted i
"""


def create_staging(conn: Any, z_dim: int) -> None:
    """Create this session's staging table (once per connection, when it is opened)."""
    conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} (device_id BIGINT, space INTEGER, "
        f"seq BIGINT, timestamp_us BIGINT, z vector({z_dim})) ON COMMIT DELETE ROWS"
    )


def put_group(
    conn: Any,
    batches: Sequence[RecordsOf],
    prepared: Sequence[list[np.ndarray] | LifeVeilError],
    now_us: int,
) -> list[PutResult]:
    """Store a group of batches in ``conn``'s open transaction; one result per batch (its
    acks, or the error that stored none of it)."""
    results: list[PutResult | None] = [
        item if isinstance(item, LifeVeilError) else None for item in prepared
    ]
    todo = [i for i, result in enumerate(results) if result is None]
    if not todo:
        return [r for r in results if r is not None]
    first: dict[Key, Where] = {}
    for i in todo:
        device, records = batches[i]
        for j, record in enumerate(records):
            first.setdefault((device.id, int(record.space), int(record.seq)), (i, j))
    _stage(conn, batches, prepared, first)
    ids = sorted({batches[i][0].id for i in todo})
    alive: dict[int, int] = {}
    known: dict[int, set[int]] = {}
    stored: set[Key] = set()
    for kind, a, b, c in conn.execute(_GROUP_SQL, {"now": now_us, "ids": ids}).fetchall():
        if kind == 0:
            alive[int(a)] = int(b)
        elif kind == 1:
            known.setdefault(int(a), set()).add(int(b))
        else:
            stored.add((int(a), int(b), int(c)))
    allowed = {tenant: known.get(tenant, set()) | {NO_SPACE} for tenant in set(alive.values())}
    storable = {
        key: where
        for key, where in first.items()
        if key[0] in alive and key[1] in allowed[alive[key[0]]]
    }
    existing = _existing(conn, [key for key in storable if key not in stored])
    for i in todo:
        device = batches[i][0]
        results[i] = (
            _statuses(i, batches, prepared, storable, stored, existing)
            if device.id in alive
            else AuthError(
                f"device {device.name!r} was revoked or its token expired; nothing stored"
            )
        )
    return [r for r in results if r is not None]  # every batch has its result by now


def _stage(
    conn: Any,
    batches: Sequence[RecordsOf],
    prepared: Sequence[list[np.ndarray] | LifeVeilError],
    first: dict[Key, Where],
) -> None:
    """COPY each key's first occurrence into the staging table (binary, in one stream)."""
    if not first:
        return
    where = list(first.values())
    records = [batches[i][1][j] for i, j in where]
    zs: list[np.ndarray] = [prepared[i][j] for i, j in where]  # type: ignore[index]
    data = copy_rows_binary(
        [
            np.array([batches[i][0].id for i, _ in where], dtype=np.int64),
            np.array([int(r.space) for r in records], dtype=np.int32),
            np.array([int(r.seq) for r in records], dtype=np.int64),
            np.array([int(r.timestamp_us) for r in records], dtype=np.int64),
        ],
        np.stack(zs),
    )
    with (
        conn.cursor() as cur,
        cur.copy(
            f"COPY {STAGING} (device_id, space, seq, timestamp_us, z) FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.write(data)


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
