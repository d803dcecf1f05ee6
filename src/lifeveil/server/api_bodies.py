"""Request bodies of the HTTP API (:mod:`lifeveil.server.api`): pydantic models that refuse
unknown fields, with the bounds each field must satisfy."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from lifeveil.transport.record import MAX_SEQ, MAX_TIMESTAMP_US


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: A query's representation space: a privatizer version id the tenant registered (16 hex
#: digits); None = the tenant's default space.
SpaceField = Field(None, min_length=1, max_length=64)


class NameBody(_Body):
    name: str


class DeviceBody(_Body):
    name: str
    allow_query: bool = False  # the device may query its own records (not the tenant's)


class TenantBody(_Body):
    name: str
    first_user: str | None = "owner"


class KnnBody(_Body):
    z: list[float]
    k: int = Field(10, ge=1, le=10**6)
    device: str | None = None
    space: str | None = SpaceField


class ClassifyBody(_Body):
    head: str
    z: list[list[float]] = Field(min_length=1)
    space: str | None = SpaceField


class TimelineBody(_Body):
    head: str
    t_start_us: int = Field(ge=0, le=MAX_TIMESTAMP_US)
    t_end_us: int = Field(ge=0, le=MAX_TIMESTAMP_US)
    device: str | None = None
    max_gap_us: int = Field(60_000_000, ge=0, le=MAX_TIMESTAMP_US)
    space: str | None = SpaceField


class Example(_Body):
    device: str
    seq: int = Field(ge=0, le=MAX_SEQ)
    label: str = Field(min_length=1, max_length=100)


class TrainBody(_Body):
    examples: list[Example] = Field(min_length=2)
    space: str | None = SpaceField
