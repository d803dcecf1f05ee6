"""HTTP routes for representation spaces and migrations (issue 14), and the space resolution
every query route uses.

``POST /v1/spaces`` registers a privatizer version (a device when it enrols, or a user);
``GET /v1/spaces`` lists them; ``PUT /v1/spaces/default`` chooses the one queries use when they
name none; ``POST /v1/spaces/migrations`` takes an adapter file and migrates the tenant's z
in the background (202); ``GET /v1/spaces/migrations`` shows progress.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from lifeveil.errors import InputError, UnknownNameError
from lifeveil.server import admin
from lifeveil.server.http import ApiError, require, state_of
from lifeveil.server.migrate import read_adapter, start_migration
from lifeveil.server.migrate_runner import MigrationRunner
from lifeveil.server.store import (
    SCOPE_MANAGE,
    SCOPE_QUERY,
    SCOPE_UPLOAD,
    Principal,
    ZStore,
)
from lifeveil.transport.record import NO_SPACE

SPACES_PATH = "/v1/spaces"  # the client's constants (transport.client) name the same paths
DEFAULT_SPACE_PATH = SPACES_PATH + "/default"
MIGRATIONS_PATH = SPACES_PATH + "/migrations"

#: What a request names space 0 by: z of devices that declared no privatizer version.
UNDECLARED = "undeclared"

router = APIRouter()
Registrar = Annotated[Principal, Depends(require((SCOPE_UPLOAD, SCOPE_MANAGE), replay_check=True))]
User = Annotated[Principal, Depends(require(SCOPE_MANAGE, replay_check=True))]
Reader = Annotated[Principal, Depends(require(SCOPE_QUERY))]


class SpaceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1, max_length=64)
    z_dim: int = Field(ge=1, le=1 << 16)


class VersionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1, max_length=64)


class MigrationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    adapter: str = Field(min_length=1, description="the adapter file, base64")


def resolve_space(store: ZStore, tenant_id: int, version: str | None) -> int:
    """The wire tag a request's ``space`` names (a registered version, or ``"undeclared"``
    for space 0), or the tenant's default when it names none; 422 for a version this tenant
    has not registered."""
    if version is None:
        return store.default_space(tenant_id)
    if version == UNDECLARED:
        return NO_SPACE
    try:
        return store.space_of(tenant_id, version).tag
    except UnknownNameError as exc:
        raise ApiError(422, "unknown_space", str(exc)) from None


def _tenant_id(who: Principal) -> int:
    assert who.tenant_id is not None
    return who.tenant_id


@router.post(SPACES_PATH, status_code=201)
def register_space(
    body: SpaceBody, request: Request, response: Response, who: Registrar
) -> dict[str, object]:
    """Register a privatizer version in the caller's tenant (201; 200 if it already was)."""
    store = state_of(request).store
    tenant = _tenant_id(who)
    known = any(s.version == body.version for s in store.list_spaces(tenant))
    space = store.register_space(tenant, body.version, body.z_dim)
    if known:
        response.status_code = 200
    else:
        admin.audit(store, who, "register-space", f"{who.tenant_name}/{body.version}")
    return space.as_dict()


@router.get(SPACES_PATH)
def list_spaces(request: Request, who: Reader) -> dict[str, object]:
    """The tenant's spaces with record counts; ``is_default`` marks the one queries use."""
    spaces = state_of(request).store.list_spaces(_tenant_id(who))
    return {"spaces": [s.as_dict() for s in spaces]}


@router.put(DEFAULT_SPACE_PATH)
def set_default_space(body: VersionBody, request: Request, who: User) -> dict[str, object]:
    """Make a registered version the space queries use when they name none."""
    store = state_of(request).store
    try:
        space = store.set_default_space(_tenant_id(who), body.version)
    except UnknownNameError as exc:
        raise ApiError(422, "unknown_space", str(exc)) from None
    admin.audit(store, who, "default-space", f"{who.tenant_name}/{body.version}")
    return space.as_dict()


@router.post(MIGRATIONS_PATH, status_code=202)
def post_migration(body: MigrationBody, request: Request, who: User) -> dict[str, object]:
    """Check an adapter, record the migration and run it in the background (202)."""
    try:
        data = base64.b64decode(body.adapter, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("adapter is not base64; send the adapter file base64-encoded") from None
    store = state_of(request).store
    adapter = read_adapter(data)
    try:
        migration = start_migration(store, _tenant_id(who), adapter)
    except UnknownNameError as exc:
        raise ApiError(422, "unknown_space", str(exc)) from None
    runner: MigrationRunner = request.app.state.migrations
    runner.submit(migration)
    admin.audit(store, who, "migrate", f"{who.tenant_name}/{migration.id}", adapter.sha256)
    return migration.as_dict()


@router.get(MIGRATIONS_PATH)
def list_migrations(request: Request, who: Reader) -> dict[str, object]:
    """The tenant's migrations, newest first: status, rows done, rows to do."""
    store = state_of(request).store
    answers = []
    for m in store.list_migrations(_tenant_id(who)):
        total = store.count_records(m.tenant_id, space=m.old_tag)
        answers.append({**m.as_dict(), "total": total})
    return {"migrations": answers}
