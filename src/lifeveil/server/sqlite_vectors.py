"""Reads of stored z that the SQLite store's k-NN index needs, on any connection to the file
(the store's own read connection, or a k-NN worker process's read-only one)."""

from __future__ import annotations

import sqlite3

import numpy as np

Scope = tuple[int, int]  # (tenant_id, space)

_BY_KEY = (
    "SELECT p.name, r.seq, r.timestamp_us, r.z, r.device_id FROM z_records r "
    "JOIN principals p ON p.id = r.device_id "
    "WHERE r.device_id = ? AND r.space = ? AND r.seq = ? AND r.tenant_id = ?"
)


def read_tenant_vectors(
    conn: sqlite3.Connection, scope: Scope, z_dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keys ``(n, 2)`` (device_id, seq) and z ``(n, d)`` of every record of a tenant's space
    (``scope`` = (tenant_id, space))."""
    rows = conn.execute(
        "SELECT device_id, seq, z FROM z_records WHERE tenant_id = ? AND space = ?", scope
    ).fetchall()
    keys = np.array([(r[0], r[1]) for r in rows], dtype=np.int64).reshape(-1, 2)
    z = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").astype(np.float32)
    return keys, z.reshape(len(rows), z_dim)


def read_records_by_keys(conn: sqlite3.Connection, scope: Scope, keys: np.ndarray) -> list[tuple]:
    """Rows (name, seq, timestamp_us, z, device_id) of the scope's records in ``keys``.

    One primary-key lookup per key: far faster in SQLite than ``IN (VALUES ...)``.
    """
    tenant_id, space = scope
    rows = []
    for device_id, seq in keys.tolist():
        row = conn.execute(_BY_KEY, (device_id, space, seq, tenant_id)).fetchone()
        if row is not None:
            rows.append(row)
    return [(n, s, t, np.frombuffer(z, dtype="<f4"), d) for n, s, t, z, d in rows]
