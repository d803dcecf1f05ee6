"""The PostgreSQL store's tenants, principals (tokens) and audit log (a mixin of
:class:`~lifeveil.server.pg_store.PostgresStore`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lifeveil.errors import NameTakenError, UnknownNameError
from lifeveil.server.clock import now_us
from lifeveil.server.store import (
    AuditEntry,
    DeviceInfo,
    Principal,
    PrincipalKind,
    Tenant,
    TokenInfo,
    principal_scopes,
)

_PRINCIPAL_SELECT = (
    "SELECT p.id, p.kind, p.name, p.tenant_id, t.name, p.scopes FROM lifeveil_principals p "
    "LEFT JOIN lifeveil_tenants t ON t.id = p.tenant_id "
)
# An active principal: not revoked and not expired at the time given as its parameter.
ACTIVE_PRINCIPAL = "NOT p.revoked AND (p.expires_us IS NULL OR p.expires_us > %s)"


class PostgresPrincipals:
    """Tenants (``lifeveil_tenants``), principals and their tokens, and the audit log."""

    _psycopg: Any
    _query: Callable[[str, Sequence[object]], list[tuple]]
    _write: Callable[[str, Sequence[object]], Any]

    def create_tenant(self, name: str) -> Tenant:
        try:
            rows = self._write(
                "INSERT INTO lifeveil_tenants (name, created_us) VALUES (%s, %s) RETURNING id",
                (name, now_us()),
            )
        except self._psycopg.errors.UniqueViolation:
            raise NameTakenError(f"tenant {name!r} already exists") from None
        return Tenant(int(rows[0][0]), name)

    def get_tenant(self, name: str) -> Tenant | None:
        rows = self._query("SELECT id, name FROM lifeveil_tenants WHERE name = %s", (name,))
        return Tenant(*rows[0]) if rows else None

    def list_tenants(self) -> list[Tenant]:
        rows = self._query('SELECT id, name FROM lifeveil_tenants ORDER BY name COLLATE "C"')
        return [Tenant(*row) for row in rows]

    def add_principal(
        self,
        kind: PrincipalKind,
        name: str,
        token_hash: str,
        tenant_id: int | None,
        scopes: Sequence[str] | None = None,
        expires_us: int | None = None,
    ) -> Principal:
        scope_text = principal_scopes(kind, tenant_id, scopes)
        try:
            rows = self._write(
                "INSERT INTO lifeveil_principals (kind, tenant_id, name, token_hash, created_us, "
                "scopes, expires_us) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (kind, tenant_id, name, token_hash, now_us(), scope_text, expires_us),
            )
        except self._psycopg.errors.UniqueViolation:
            raise NameTakenError(f"a {kind} named {name!r} already exists in this tenant") from None
        return _principal(self._query(_PRINCIPAL_SELECT + "WHERE p.id = %s", (rows[0][0],))[0])

    def _active_where(self, where: str, params: Sequence[object]) -> Principal | None:
        sql = _PRINCIPAL_SELECT + f"WHERE {ACTIVE_PRINCIPAL} AND {where}"
        rows = self._query(sql, (now_us(), *params))
        return _principal(rows[0]) if rows else None

    def find_principal(self, token_hash: str) -> Principal | None:
        return self._active_where("p.token_hash = %s", (token_hash,))

    def get_principal(
        self, kind: PrincipalKind, name: str, tenant_id: int | None
    ) -> Principal | None:
        return self._active_where(
            "p.kind = %s AND p.tenant_id IS NOT DISTINCT FROM %s AND p.name = %s",
            (kind, tenant_id, name),
        )

    def list_tokens(self, tenant_id: int | None = None) -> list[TokenInfo]:
        where, params = (
            ("WHERE p.tenant_id = %s", (tenant_id,)) if tenant_id is not None else ("", ())
        )
        rows = self._query(
            "SELECT p.id, p.kind, p.name, t.name, p.scopes, p.created_us, p.last_seen_us, "
            "p.expires_us, p.rotated_us, p.revoked_us FROM lifeveil_principals p "
            f"LEFT JOIN lifeveil_tenants t ON t.id = p.tenant_id {where} "
            'ORDER BY t.name IS NOT NULL, t.name COLLATE "C", p.kind, p.name COLLATE "C"',
            params,
        )
        return [TokenInfo(*r[:4], tuple(r[4].split()), *r[5:]) for r in rows]

    def rotate_principal(
        self, principal_id: int, token_hash: str, expires_us: int | None = None
    ) -> None:
        count = self._write(
            "UPDATE lifeveil_principals SET token_hash = %s, rotated_us = %s, expires_us = %s "
            "WHERE id = %s AND NOT revoked",
            (token_hash, now_us(), expires_us, principal_id),
        )
        if count != 1:
            raise UnknownNameError(f"no active principal with id {principal_id}")

    def append_audit(self, actor: str, action: str, target: str, detail: str = "") -> None:
        self._write(
            "INSERT INTO lifeveil_audit (time_us, actor, action, target, detail) "
            "VALUES (%s, %s, %s, %s, %s)",
            (now_us(), actor, action, target, detail),
        )

    def read_audit(self, limit: int | None = None) -> list[AuditEntry]:
        rows = self._query(
            "SELECT id, time_us, actor, action, target, detail FROM lifeveil_audit "
            "ORDER BY id DESC LIMIT %s",
            (limit,),
        )
        return [AuditEntry(*r) for r in reversed(rows)]

    def list_devices(self, tenant_id: int) -> list[DeviceInfo]:
        rows = self._query(
            "SELECT p.name, (SELECT COUNT(*) FROM lifeveil_z_records r WHERE r.device_id = p.id "
            "AND r.origin IS NULL), "
            "p.created_us, p.last_seen_us FROM lifeveil_principals p WHERE p.kind = 'device' "
            'AND p.tenant_id = %s AND NOT p.revoked ORDER BY p.name COLLATE "C"',
            (tenant_id,),
        )
        return [DeviceInfo(*row) for row in rows]

    def revoke_principal(self, principal_id: int) -> None:
        self._write(
            "UPDATE lifeveil_principals SET revoked = TRUE, revoked_us = %s "
            "WHERE id = %s AND NOT revoked",
            (now_us(), principal_id),
        )


def _principal(row: tuple) -> Principal:
    return Principal(*row[:5], scopes=frozenset(row[5].split()))
