"""The SQLite store's schema and its versioned migrations (applied on open).

Version 1 had no token scopes, expiry, rotation or audit log; version 2 adds them; version 3
adds representation spaces (issue 14): z are keyed by ``(device, space, seq)``, so a migrated
copy of a row sits beside the original, and the ``spaces`` and ``migrations`` tables. A new
version appends a ``_MIGRATE_N_TO_N+1`` script here and bumps :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lifeveil.errors import InputError, ShapeError

SCHEMA_VERSION = 3  # 2: token scopes, expiry, rotation, revocation time; audit log. 3: spaces

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
    space INTEGER NOT NULL DEFAULT 0,  -- wire tag of the privatizer version (0: undeclared)
    seq INTEGER NOT NULL,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    timestamp_us INTEGER NOT NULL,
    z BLOB NOT NULL,                -- float32 little-endian, d values
    received_us INTEGER NOT NULL,
    origin INTEGER,                 -- NULL: uploaded; else the migration that wrote it
    PRIMARY KEY (device_id, space, seq)  -- resends of a seq are deduplicated here
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS z_records_by_space_time ON z_records (tenant_id, space, timestamp_us);
-- The privatizer versions a tenant's devices run; a tag is unambiguous within a tenant.
CREATE TABLE IF NOT EXISTS spaces (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    tag INTEGER NOT NULL,
    version TEXT NOT NULL,
    z_dim INTEGER NOT NULL,
    registered_us INTEGER NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, tag),
    UNIQUE (tenant_id, version)
);
-- Adapter runs over stored z; the cursor (last device_id, seq done) moves with each batch.
CREATE TABLE IF NOT EXISTS migrations (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    old_space INTEGER NOT NULL,
    new_space INTEGER NOT NULL,
    old_version TEXT NOT NULL,
    new_version TEXT NOT NULL,
    adapter_sha256 TEXT NOT NULL,
    adapter BLOB NOT NULL,          -- the adapter file (weights only), to resume after a restart
    cursor_device INTEGER NOT NULL,
    cursor_seq INTEGER NOT NULL,
    done INTEGER NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    started_us INTEGER NOT NULL,
    finished_us INTEGER,
    UNIQUE (tenant_id, adapter_sha256)
);
CREATE TABLE IF NOT EXISTS heads (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    classes TEXT NOT NULL,          -- JSON list of label names
    coef BLOB NOT NULL,             -- float32 (C, d)
    intercept BLOB NOT NULL,        -- float32 (C,)
    n_train INTEGER NOT NULL,
    metrics TEXT NOT NULL,          -- JSON
    created_us INTEGER NOT NULL,
    space INTEGER NOT NULL DEFAULT 0,  -- the space of the z it was trained on (and applies to)
    PRIMARY KEY (tenant_id, space, name)
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

# Version 2 -> 3: z_records gets space and origin and a primary key (device_id, space, seq),
# heads a space and a key (tenant_id, space, name); SQLite cannot alter a key, so both tables
# are rebuilt. Every existing z
# lands in space 0 (made by an undeclared version). The new tables come from SCHEMA.
MIGRATE_2_TO_3 = """
CREATE TABLE z_records_v3 (
    device_id INTEGER NOT NULL REFERENCES principals(id),
    space INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    timestamp_us INTEGER NOT NULL,
    z BLOB NOT NULL,
    received_us INTEGER NOT NULL,
    origin INTEGER,
    PRIMARY KEY (device_id, space, seq)
) WITHOUT ROWID;
INSERT INTO z_records_v3 (device_id, space, seq, tenant_id, timestamp_us, z, received_us)
    SELECT device_id, 0, seq, tenant_id, timestamp_us, z, received_us FROM z_records;
DROP TABLE z_records;
ALTER TABLE z_records_v3 RENAME TO z_records;
CREATE TABLE heads_v3 (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    classes TEXT NOT NULL,
    coef BLOB NOT NULL,
    intercept BLOB NOT NULL,
    n_train INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    space INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, space, name)
);
INSERT INTO heads_v3 (tenant_id, name, classes, coef, intercept, n_train, metrics, created_us)
    SELECT tenant_id, name, classes, coef, intercept, n_train, metrics, created_us FROM heads;
DROP TABLE heads;
ALTER TABLE heads_v3 RENAME TO heads;
UPDATE meta SET value = '3' WHERE key = 'schema_version';
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
