"""What the vault says about segments: the caller's metadata, a committed segment's info,
the outcome of a verification, and the sealed metadata record kept in the index."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lifeveil.errors import VaultIntegrityError
from lifeveil.vault.index import IndexRow

DEFAULT_CHUNK_SIZE = 1 << 20  # 1 MiB of plaintext per authenticated chunk
MIN_ID_PREFIX = 6  # hex characters a segment id prefix needs to name a segment


@dataclass(frozen=True)
class SegmentMetadata:
    """What the caller knows about a segment when storing it; all optional."""

    source_name: str | None = None  # e.g. camera name or original file name (stored encrypted)
    duration_s: float | None = None  # seconds of video
    created_at: float | None = None  # Unix seconds; default: the vault clock at ingest start
    extra: Mapping[str, str] = field(default_factory=dict)  # free-form, stored encrypted


@dataclass(frozen=True)
class SegmentInfo:
    """A committed segment: id, times, sizes and plaintext checksum."""

    segment_id: str  # 32 lowercase hex chars
    created_at: float  # Unix seconds
    size: int  # plaintext bytes
    sha256: str  # hex SHA-256 of the plaintext
    stored_size: int  # bytes of the encrypted file
    source_name: str | None = None
    duration_s: float | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def created(self) -> datetime:
        """``created_at`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.created_at, tz=UTC)


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of ``Vault.verify``: every segment decrypted and checked end to end."""

    checked: int  # segments in the index
    problems: tuple[str, ...] = ()  # one line per damaged segment
    recovered: tuple[str, ...] = ()  # what opening did: garbage removed, files quarantined
    warnings: tuple[str, ...] = ()  # index rollback, quarantined files (``Vault.warnings``)
    quarantined: tuple[str, ...] = ()  # names of the files in quarantine/
    index_ok: bool = True  # index.sqlite is the vault's latest, unaltered state

    @property
    def ok(self) -> bool:
        """True when every segment decrypted, authenticated and matched its checksum, and
        the index is not rolled back or altered (quarantined files alone are warnings)."""
        return not self.problems and self.index_ok


def metadata_record(info: SegmentInfo) -> dict[str, object]:
    """The JSON object sealed (encrypted) into a segment's index row."""
    return {
        "created_at": info.created_at,
        "duration_s": info.duration_s,
        "extra": dict(info.extra),
        "sha256": info.sha256,
        "size": info.size,
        "source_name": info.source_name,
    }


def info_from_record(row: IndexRow, record: dict[str, object]) -> SegmentInfo:
    """Rebuild a SegmentInfo from its index row and unsealed metadata record."""
    try:
        return SegmentInfo(
            segment_id=row.segment_id,
            created_at=float(record["created_at"]),  # type: ignore[arg-type]
            size=int(record["size"]),  # type: ignore[call-overload]
            sha256=str(record["sha256"]),
            stored_size=row.stored_size,
            source_name=record.get("source_name"),  # type: ignore[arg-type]
            duration_s=record.get("duration_s"),  # type: ignore[arg-type]
            extra=dict(record.get("extra") or {}),  # type: ignore[call-overload]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise VaultIntegrityError(
            f"segment {row.segment_id}: metadata record is malformed ({exc})"
        ) from None
