"""The SQLite store's schema and its versioned migrations (applied on open).

Version 1 had no token scopes, expiry, rotation or audit log; version 2 adds them. A new
version appends a ``_MIGRATE_N_TO_N+1`` script here and bumps :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lifeveil.errors import InputError, ShapeError

SCHEMA_VERSION = 2  # 2: token scopes, expiry, rotation, revocation time; audit log

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tenants (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_us INTEGER NOT NULL
);
-- Users, devices and admins: one token namespace. Only SHA-256 hashes of tokens are kept.
CREATE TABLE IF NOT EXISTS principals (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('admin', 'user', 'device')),
    tenant_id INTEGER REFERENCES tenants(id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_us INTEGER NOT NULL,
    last_seen_us INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0,
    scopes TEXT NOT NULL DEFAULT '',   -- space-separated (see store.DEFAULT_SCOPES)
    expires_us INTEGER,                -- NULL = never
    rotated_us INTEGER,
    revoked_us INTEGER,
    UNIQUE (tenant_id, kind, name)
);
CREATE TABLE IF NOT EXISTS z_records (
    device_id INTEGER NOT NULL REFERENCES principals(id),
    seq INTEGER NOT NULL,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    timestamp_us INTEGER NOT NULL,
    z BLOB NOT NULL,                -- float32 little-endian, d values
    received_us INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq)    -- resends of a seq are deduplicated here
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS z_records_by_time ON z_records (tenant_id, timestamp_us);
CREATE TABLE IF NOT EXISTS heads (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    classes TEXT NOT NULL,          -- JSON list of label names
    coef BLOB NOT NULL,             -- float32 (C, d)
    intercept BLOB NOT NULL,        -- float32 (C,)
    n_train INTEGER NOT NULL,
    metrics TEXT NOT NULL,          -- JSON
    created_us INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
CREATE TABLE IF NOT EXISTS nonces (
    principal_id INTEGER NOT NULL,
    nonce TEXT NOT NULL,
    expires_us INTEGER NOT NULL,
    PRIMARY KEY (principal_id, nonce)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_by_expiry ON nonces (expires_us);
"""

# Append-only: triggers refuse to change or remove an entry.
AUDIT_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    time_us INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

# Version 1 -> 2: columns added to principals; existing tokens get their kind's default scopes.
MIGRATE_1_TO_2 = """
ALTER TABLE principals ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE principals ADD COLUMN expires_us INTEGER;
ALTER TABLE principals ADD COLUMN rotated_us INTEGER;
ALTER TABLE principals ADD COLUMN revoked_us INTEGER;
UPDATE principals SET scopes = 'admin' WHERE kind = 'admin';
UPDATE principals SET scopes = 'query manage' WHERE kind = 'user';
UPDATE principals SET scopes = 'upload' WHERE kind = 'device';
UPDATE meta SET value = '2' WHERE key = 'schema_version';
"""


def stored_version(conn: sqlite3.Connection) -> int | None:
    """The schema version of an existing database (None for a new one)."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else None


def check_meta(db: sqlite3.Connection, path: Path, z_dim: int) -> None:
    """Record version and dimension in a new database; refuse a mismatching old one."""
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    if not meta:
        db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("schema_version", str(SCHEMA_VERSION)), ("z_dim", str(z_dim))],
        )
        return
    if int(meta["schema_version"]) != SCHEMA_VERSION:
        raise InputError(
            f"{path}: schema version {meta['schema_version']}, this LifeVeil reads "
            f"{SCHEMA_VERSION}; use the matching LifeVeil version"
        )
    if int(meta["z_dim"]) != z_dim:
        raise ShapeError(
            f"{path} stores z of dimension {meta['z_dim']} but the configuration says "
            f"{z_dim}; fix z_dim in server.toml or use a new data directory"
        )
