"""The encrypted on-device vault: raw video segments, each under its own key.

A vault is a folder (layout and bytes in ``lifeveil.vault.format``). Opening it derives the
KEK from a passphrase (Argon2id) or a key file and unwraps the master key; nothing is read
from or written to the index before that succeeds, so a wrong secret changes nothing.

Crash safety: a segment is written to ``tmp/``, fsync-ed, renamed into ``segments/`` and only
then committed to the index. A segment is visible exactly when its index row exists; on
open, unfinished temp files and renamed-but-uncommitted files (whose keys were never stored,
so they are unreadable anyway) are removed and listed in ``Vault.recovered`` and in the
``verify`` report. Deleting does the reverse: the wrapped key goes first, then the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from lifeveil.errors import (
    MediaError,
    SegmentNotFoundError,
    VaultError,
    VaultIntegrityError,
)
from lifeveil.io import atomic_path
from lifeveil.vault.format import (
    ID_BYTES,
    KEY_BYTES,
    NONCE_PREFIX_BYTES,
    UNLOCK_PASSPHRASE,
    Keyslot,
    SegmentHeader,
)
from lifeveil.vault.index import IndexRow, SegmentIndex
from lifeveil.vault.keys import (
    KdfParams,
    kdf_params_of,
    make_keyslot,
    open_metadata,
    read_key_file,
    seal_metadata,
    segment_wrap_key,
    unwrap_master_key,
    unwrap_segment_key,
    wrap_segment_key,
)
from lifeveil.vault.segment import (
    PART_SUFFIX,
    SEGMENT_SUFFIX,
    SegmentFileWriter,
    fsync_dir,
    read_segment_file,
    remove_if_abandoned,
)

DEFAULT_CHUNK_SIZE = 1 << 20  # 1 MiB of plaintext per authenticated chunk
KEYSLOT_NAME = "vault.key"
INDEX_NAME = "index.sqlite"
SEGMENTS_DIR = "segments"
TMP_DIR = "tmp"
SECONDS_PER_DAY = 86_400.0
MIN_ID_PREFIX = 6

PathLike = str | os.PathLike[str]


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
    recovered: tuple[str, ...] = ()  # leftovers of interrupted ingests that were removed

    @property
    def ok(self) -> bool:
        """True when every segment decrypted, authenticated and matched its checksum."""
        return not self.problems


class SegmentWriter:
    """Streams one segment into the vault; from ``Vault.open_writer``.

    ``write`` encrypts complete chunks as they arrive; ``commit`` makes the segment durable
    and visible; ``abort`` (or an exception inside ``with``) throws it away. A process killed
    mid-write leaves only a temp file, removed the next time the vault is opened.
    """

    def __init__(
        self,
        file: SegmentFileWriter,
        key: bytes,
        metadata: SegmentMetadata,
        commit: Callable[[SegmentInfo, bytes], None],
    ) -> None:
        self._file = file
        self._key = key
        self._metadata = metadata
        self._commit = commit
        self._state = "open"
        self.segment_id = file.final_path.name.removesuffix(SEGMENT_SUFFIX)

    def write(self, data: bytes) -> None:
        """Append raw bytes of the segment."""
        self._require_open()
        self._file.write(data)

    def commit(self, *, duration_s: float | None = None) -> SegmentInfo:
        """Finish, fsync and index the segment; ``duration_s`` overrides the metadata's."""
        self._require_open()
        meta = self._metadata
        try:
            self._file.finish()
            info = SegmentInfo(
                segment_id=self.segment_id,
                created_at=float(meta.created_at),  # type: ignore[arg-type]  # set by open_writer
                size=self._file.size,
                sha256=self._file.sha256,
                stored_size=self._file.stored_size,
                source_name=meta.source_name,
                duration_s=duration_s if duration_s is not None else meta.duration_s,
                extra=dict(meta.extra),
            )
            self._commit(info, self._key)
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        self._file.release()
        return info

    def abort(self) -> None:
        """Discard the segment; nothing of it remains in the vault."""
        if self._state == "open":
            self._state = "aborted"
            self._file.discard()

    def _require_open(self) -> None:
        if self._state != "open":
            raise VaultError(f"segment {self.segment_id} is already {self._state}")

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif self._state == "open":
            self.commit()


class Vault:
    """An opened, unlocked vault. Create with ``Vault.init``, open with ``Vault.open``.

    Use as a context manager or call ``close``. Methods taking a ``segment_id`` accept the
    full 32-character id or a unique prefix of at least 6 characters. ``chunk_size`` (plaintext
    bytes per authenticated chunk) applies to segments written through this handle; each
    segment records its own. ``clock`` (Unix seconds) stamps new segments and drives
    retention; tests inject a fake one. Several processes may open the same vault at once.
    """

    def __init__(
        self,
        root: Path,
        keyslot: Keyslot,
        master_key: bytes,
        index: SegmentIndex,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        SegmentHeader(bytes(ID_BYTES), chunk_size, bytes(NONCE_PREFIX_BYTES))  # validates
        self.root = root
        self.chunk_size = chunk_size
        self._keyslot = keyslot
        self._master_key = master_key
        self._wrap_key = segment_wrap_key(master_key, keyslot.vault_id)
        self._index = index
        self._clock = clock
        self._segments_dir = root / SEGMENTS_DIR
        self._tmp_dir = root / TMP_DIR
        for folder in (self._segments_dir, self._tmp_dir):
            folder.mkdir(mode=0o700, exist_ok=True)
        self.recovered: tuple[str, ...] = tuple(self._recover())

    # ---- creating and opening -------------------------------------------------------------

    @classmethod
    def init(
        cls,
        root: PathLike,
        *,
        passphrase: str | None = None,
        key_file: PathLike | None = None,
        kdf: KdfParams | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> Vault:
        """Create a vault in the new or empty folder ``root``, unlocked by exactly one of
        ``passphrase`` (Argon2id with ``kdf`` costs) or ``key_file`` (see
        ``generate_key_file``)."""
        folder = Path(root)
        if (folder / KEYSLOT_NAME).exists():
            raise VaultError(f"{folder} is already a vault; open it instead of creating it")
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise VaultError(f"{folder} exists and is not an empty folder; choose a new folder")
        key_material = read_key_file(key_file) if key_file is not None else None
        vault_id, master_key = secrets.token_bytes(ID_BYTES), secrets.token_bytes(KEY_BYTES)
        keyslot = make_keyslot(vault_id, master_key, passphrase, key_material, kdf or KdfParams())
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        index = SegmentIndex(folder / INDEX_NAME, create=True)
        index.bind_vault_id(vault_id)
        _write_keyslot(folder, keyslot)  # last: its presence marks a complete vault
        return cls(folder, keyslot, master_key, index, chunk_size=chunk_size, clock=clock)

    @classmethod
    def open(
        cls,
        root: PathLike,
        *,
        passphrase: str | None = None,
        key_file: PathLike | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> Vault:
        """Unlock the vault at ``root``. Raises VaultKeyError ("wrong passphrase or key
        file") without touching any file if the secret is wrong."""
        folder = Path(root)
        keyslot_path = folder / KEYSLOT_NAME
        if not keyslot_path.is_file():
            raise VaultError(
                f"{folder} is not a LifeVeil vault (no {KEYSLOT_NAME}); create one with "
                "`lifeveil vault init`"
            )
        keyslot = Keyslot.from_bytes(keyslot_path.read_bytes())
        key_material = read_key_file(key_file) if key_file is not None else None
        master_key = unwrap_master_key(keyslot, passphrase, key_material)
        index_path = folder / INDEX_NAME
        if not index_path.is_file():
            raise VaultIntegrityError(
                f"{index_path} is missing; it holds every segment key, so no segment can be "
                "decrypted without it: restore it from a backup"
            )
        index = SegmentIndex(index_path)
        try:
            index.bind_vault_id(keyslot.vault_id)
        except VaultError:
            index.close()
            raise
        return cls(folder, keyslot, master_key, index, chunk_size=chunk_size, clock=clock)

    @property
    def vault_id(self) -> str:
        """Random id of this vault (hex), bound into every wrapped key."""
        return self._keyslot.vault_id.hex()

    def close(self) -> None:
        """Close the index. (Python cannot reliably wipe key bytes from memory.)"""
        self._index.close()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rewrap(
        self,
        *,
        passphrase: str | None = None,
        key_file: PathLike | None = None,
        kdf: KdfParams | None = None,
    ) -> None:
        """Re-wrap the master key under a new passphrase, key file or higher Argon2 costs.

        Atomic: ``vault.key`` is replaced in one rename; segments are untouched.
        """
        if kdf is None and self._keyslot.unlock_kind == UNLOCK_PASSPHRASE:
            kdf = kdf_params_of(self._keyslot)
        key_material = read_key_file(key_file) if key_file is not None else None
        keyslot = make_keyslot(
            self._keyslot.vault_id, self._master_key, passphrase, key_material, kdf or KdfParams()
        )
        _write_keyslot(self.root, keyslot)
        self._keyslot = keyslot

    # ---- writing --------------------------------------------------------------------------

    def open_writer(self, metadata: SegmentMetadata | None = None) -> SegmentWriter:
        """Start a new segment to be fed with ``write``; for recorders that push bytes."""
        meta = metadata or SegmentMetadata()
        if meta.created_at is None:
            meta = replace(meta, created_at=float(self._clock()))
        key = secrets.token_bytes(KEY_BYTES)
        header = SegmentHeader(
            secrets.token_bytes(ID_BYTES), self.chunk_size, secrets.token_bytes(NONCE_PREFIX_BYTES)
        )
        file = SegmentFileWriter(self._tmp_dir, self._segments_dir, key, header)
        return SegmentWriter(file, key, meta, self._commit_segment)

    def ingest_stream(
        self, chunks: Iterable[bytes], metadata: SegmentMetadata | None = None
    ) -> SegmentInfo:
        """Store the concatenation of ``chunks`` (any sizes) as one segment."""
        with self.open_writer(metadata) as writer:
            for chunk in chunks:
                writer.write(chunk)
            return writer.commit()

    def ingest(
        self, source: PathLike | BinaryIO, metadata: SegmentMetadata | None = None
    ) -> SegmentInfo:
        """Store a file (path) or a binary stream as one segment.

        For a path, the source name defaults to the file name and the duration to the
        video's length when PyAV can read it.
        """
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            if not path.is_file():
                raise VaultError(f"{path}: no such file to ingest")
            meta = _file_metadata(path, metadata or SegmentMetadata())
            with open(path, "rb") as fh:
                return self._ingest_binary(fh, meta)
        return self._ingest_binary(source, metadata)

    def _ingest_binary(self, fh: BinaryIO, metadata: SegmentMetadata | None) -> SegmentInfo:
        return self.ingest_stream(iter(lambda: fh.read(self.chunk_size), b""), metadata)

    def _commit_segment(self, info: SegmentInfo, key: bytes) -> None:
        segment_id = bytes.fromhex(info.segment_id)
        vault_id = self._keyslot.vault_id
        payload = json.dumps(_metadata_record(info), sort_keys=True).encode("utf-8")
        self._index.insert(
            IndexRow(
                info.segment_id,
                info.created_at,
                info.stored_size,
                wrap_segment_key(self._wrap_key, vault_id, segment_id, key),
                seal_metadata(key, vault_id, segment_id, payload),
            )
        )

    # ---- reading --------------------------------------------------------------------------

    def list(self) -> list[SegmentInfo]:
        """All committed segments, oldest first (decrypts their metadata)."""
        return [self._unlock(row)[0] for row in self._index.rows()]

    def resolve(self, segment_id: str) -> str:
        """The full id of the segment named by ``segment_id`` (full id or unique prefix)."""
        wanted = segment_id.strip().lower()
        if len(wanted) < MIN_ID_PREFIX or not all(c in "0123456789abcdef" for c in wanted):
            raise VaultError(
                f"{segment_id!r} is not a segment id: give at least {MIN_ID_PREFIX} hex "
                "characters of an id shown by `lifeveil vault list`"
            )
        matches = [i for i in self._index.ids() if i.startswith(wanted)]
        if not matches:
            raise SegmentNotFoundError(
                f"no segment {segment_id} in {self.root} (deleted? `lifeveil vault list` "
                "shows the ids)"
            )
        if len(matches) > 1:
            raise VaultError(
                f"segment id prefix {segment_id} matches {len(matches)} segments; give more "
                "characters"
            )
        return matches[0]

    def info(self, segment_id: str) -> SegmentInfo:
        """Metadata of one segment."""
        return self._unlock(self._row(segment_id))[0]

    def open_segment(self, segment_id: str) -> Iterator[bytes]:
        """Plaintext of a segment as an iterator of byte blocks (one per chunk).

        Each block is authenticated before it is yielded; tampering or truncation raises
        VaultIntegrityError at the damaged chunk, so consumers that must not act on partial
        data should stage the output (as ``export`` does).
        """
        row = self._row(segment_id)
        info, key = self._unlock(row)
        return self._plaintext(row, info, key)

    def export(
        self, segment_id: str, out_path: PathLike, *, overwrite: bool = False
    ) -> SegmentInfo:
        """Decrypt a segment to ``out_path``, atomically: the file is complete or absent."""
        out = Path(out_path)
        if out.exists() and not overwrite:
            raise VaultError(f"{out} already exists; choose another path or allow overwriting")
        row = self._row(segment_id)
        info, key = self._unlock(row)
        with atomic_path(out) as tmp, open(tmp, "wb") as fh:
            tmp.chmod(0o600)  # decrypted raw video: owner only
            for block in self._plaintext(row, info, key):
                fh.write(block)
        return info

    def _row(self, segment_id: str) -> IndexRow:
        full_id = self.resolve(segment_id)
        row = self._index.get(full_id)
        if row is None:  # deleted between resolve and get
            raise SegmentNotFoundError(f"no segment {segment_id} in {self.root}")
        return row

    def _unlock(self, row: IndexRow) -> tuple[SegmentInfo, bytes]:
        segment_id = bytes.fromhex(row.segment_id)
        vault_id = self._keyslot.vault_id
        key = unwrap_segment_key(self._wrap_key, vault_id, segment_id, row.wrapped_key)
        record = json.loads(open_metadata(key, vault_id, segment_id, row.sealed_meta))
        return _info_from_record(row, record), key

    def _plaintext(self, row: IndexRow, info: SegmentInfo, key: bytes) -> Iterator[bytes]:
        path = self._segments_dir / f"{row.segment_id}{SEGMENT_SUFFIX}"
        digest, size = hashlib.sha256(), 0
        for block in read_segment_file(path, key, bytes.fromhex(row.segment_id), row.stored_size):
            digest.update(block)
            size += len(block)
            yield block
        if size != info.size or digest.hexdigest() != info.sha256:
            raise VaultIntegrityError(
                f"segment {row.segment_id}: decrypted data does not match its recorded size "
                "and SHA-256"
            )

    # ---- deleting -------------------------------------------------------------------------

    def delete(self, segment_id: str) -> str:
        """Crypto-shred a segment; returns its full id.

        The wrapped segment key (and the sealed metadata) are deleted from the index first,
        overwritten in place by SQLite ``secure_delete`` and flushed out of the WAL; from
        then on the ciphertext is undecryptable, even with the master key. The file is then
        removed. A crash in between leaves a keyless file that the next open removes. Copies
        that flash wear-levelling keeps below the file system are beyond any software's reach.
        """
        full_id = self.resolve(segment_id)
        self._index.delete(full_id)
        (self._segments_dir / f"{full_id}{SEGMENT_SUFFIX}").unlink(missing_ok=True)
        fsync_dir(self._segments_dir)
        return full_id

    def apply_retention(
        self, days: float, *, now: float | None = None, dry_run: bool = False
    ) -> list[SegmentInfo]:
        """Delete segments created more than ``days`` days before ``now`` (default: the vault
        clock); returns them. With ``dry_run`` nothing is deleted."""
        if days < 0:
            raise VaultError(f"retention must be a non-negative number of days, got {days}")
        cutoff = (self._clock() if now is None else now) - days * SECONDS_PER_DAY
        expired = [info for info in self.list() if info.created_at < cutoff]
        if not dry_run:
            for info in expired:
                self.delete(info.segment_id)
        return expired

    # ---- checking and recovery ------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Decrypt and authenticate every segment and compare it with its checksum; also
        remove leftovers of interrupted ingests. Problems are reported, never repaired."""
        recovered = self.recovered + tuple(self._recover())
        rows = self._index.rows()
        problems = []
        for row in rows:
            try:
                info, key = self._unlock(row)
                for _ in self._plaintext(row, info, key):
                    pass
            except VaultError as exc:
                problems.append(str(exc))
        return VerifyReport(len(rows), tuple(problems), recovered)

    def _recover(self) -> list[str]:
        notes = []
        for part in sorted(self._tmp_dir.glob(f"*{PART_SUFFIX}")):
            if remove_if_abandoned(part):
                notes.append(f"removed unfinished segment tmp/{part.name} (interrupted ingest)")
        known = self._index.ids()
        for file in sorted(self._segments_dir.glob(f"*{SEGMENT_SUFFIX}")):
            segment_id = file.name.removesuffix(SEGMENT_SUFFIX)
            if segment_id in known:
                continue
            if remove_if_abandoned(file, lambda s=segment_id: self._index.get(s) is None):
                notes.append(
                    f"removed uncommitted segment segments/{file.name} (ingest interrupted "
                    "before its key was stored, or delete interrupted after)"
                )
        return notes


def _write_keyslot(root: Path, keyslot: Keyslot) -> None:
    with atomic_path(root / KEYSLOT_NAME) as tmp:
        tmp.chmod(0o600)  # owner only, whatever the umask
        tmp.write_bytes(keyslot.to_bytes())
    fsync_dir(root)


def _file_metadata(path: Path, metadata: SegmentMetadata) -> SegmentMetadata:
    if metadata.source_name is None:
        metadata = replace(metadata, source_name=path.name)
    if metadata.duration_s is None:
        metadata = replace(metadata, duration_s=_probe_duration(path))
    return metadata


def _probe_duration(path: Path) -> float | None:
    from lifeveil.ingest.video import probe_video  # PyAV import is slow; only for files

    try:
        seconds = probe_video(path).seconds
    except MediaError:
        return None
    return seconds or None


def _metadata_record(info: SegmentInfo) -> dict[str, object]:
    return {
        "created_at": info.created_at,
        "duration_s": info.duration_s,
        "extra": dict(info.extra),
        "sha256": info.sha256,
        "size": info.size,
        "source_name": info.source_name,
    }


def _info_from_record(row: IndexRow, record: dict[str, object]) -> SegmentInfo:
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
