"""The encrypted on-device vault: raw video segments, each under its own key.

A vault is a folder (layout and bytes in ``lifeveil.vault.format``). Opening it derives the
KEK from a passphrase (Argon2id) or a key file and unwraps the master key; nothing is read
from or written to the index before that succeeds, so a wrong secret changes nothing.

Crash safety: a segment is written to ``tmp/``, fsync-ed, renamed into ``segments/`` and only
then committed to the index. A segment is visible exactly when its index row exists. Deleting
does the reverse: the wrapped key goes first (the index marks the id ``deleting``), then the
file. On open, only files that are provably garbage are removed: unfinished temp files and the
files of deleted segments. A complete segment file the index does not know is moved to
``quarantine/`` instead (``lifeveil.vault.quarantine``): the index may be an older copy, and
``adopt`` can put the file back from a newer one. What open did is listed in
``Vault.recovered`` and in the ``verify`` report.

Rollback: every change bumps a counter kept in the index and, MAC-ed, in ``index.state``; an
index older than the vault is reported in ``Vault.index_check`` (``lifeveil.vault.rollback``).

Permissions: the folder and its subfolders are 0700, every file the vault writes 0600, also
when the folder existed before ``init`` (SQLite gives its -wal and -shm files the index's mode).
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
from lifeveil.io import atomic_path, private_dir, private_file
from lifeveil.vault.format import (
    ID_BYTES,
    KEY_BYTES,
    NONCE_PREFIX_BYTES,
    UNLOCK_PASSPHRASE,
    Keyslot,
    SegmentHeader,
)
from lifeveil.vault.index import IndexRow, SegmentIndex, read_other_index
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
from lifeveil.vault.quarantine import (
    QUARANTINE_DIR,
    AdoptReport,
    PurgeReport,
    QuarantinedFile,
    list_quarantined,
    move_to_quarantine,
    quarantine_warnings,
)
from lifeveil.vault.rollback import IndexCheck, RollbackGuard
from lifeveil.vault.segment import (
    PART_SUFFIX,
    SEGMENT_SUFFIX,
    SegmentFileWriter,
    fsync_dir,
    handle_if_abandoned,
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
    recovered: tuple[str, ...] = ()  # what opening did: garbage removed, files quarantined
    warnings: tuple[str, ...] = ()  # index rollback, quarantined files (``Vault.warnings``)
    quarantined: tuple[str, ...] = ()  # names of the files in quarantine/
    index_ok: bool = True  # index.sqlite is the vault's latest, unaltered state

    @property
    def ok(self) -> bool:
        """True when every segment decrypted, authenticated and matched its checksum, and
        the index is not rolled back or altered (quarantined files alone are warnings)."""
        return not self.problems and self.index_ok


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
        is_committed: Callable[[str], bool],
    ) -> None:
        self._file = file
        self._key = key
        self._metadata = metadata
        self._commit = commit
        self._is_committed = is_committed
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
            self._give_up()
            raise
        self._state = "committed"
        self._file.release()
        return info

    def abort(self) -> None:
        """Discard the segment; nothing of it remains in the vault."""
        if self._state == "open":
            self._state = "aborted"
            self._file.discard()

    def _give_up(self) -> None:
        """After a failed commit: discard the file only if the index surely lacks it."""
        try:
            committed = self._is_committed(self.segment_id)
        except BaseException:
            committed = True  # in doubt keep it; the next open quarantines it if unknown
        if committed:
            self._state = "committed"
            self._file.release()
        else:
            self.abort()

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
        self._segments_dir = private_dir(root / SEGMENTS_DIR)
        self._tmp_dir = private_dir(root / TMP_DIR)
        self._guard = RollbackGuard(root, master_key, keyslot.vault_id)
        self._late_warnings: list[str] = []  # index.state writes that failed after a commit
        self.index_check: IndexCheck = self._guard.inspect(index)
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
        try:
            private_dir(folder)  # also tightens a folder that existed (e.g. 0755)
            private_file(folder / INDEX_NAME)  # before SQLite creates it and its -wal/-shm
        except OSError as exc:
            raise VaultError(
                f"{folder}: cannot create the vault there ({exc.strerror}); choose a folder "
                "you can write to"
            ) from None
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
        _tighten_permissions(folder)
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
        return SegmentWriter(file, key, meta, self._commit_segment, self._is_committed)

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
        row = IndexRow(
            info.segment_id,
            info.created_at,
            info.stored_size,
            wrap_segment_key(self._wrap_key, vault_id, segment_id, key),
            seal_metadata(key, vault_id, segment_id, payload),
        )
        self._insert_row(row)

    def _insert_row(self, row: IndexRow) -> None:
        with self._index.change() as change:
            change.insert(row)
            record = self._guard.advance(change, added=[row])
        self._publish(record)

    def _publish(self, record: bytes) -> None:
        problem = self._guard.publish(record)
        if problem and problem not in self._late_warnings:
            self._late_warnings.append(problem)

    def _is_committed(self, segment_id: str) -> bool:
        return self._index.get(segment_id) is not None

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

    def _plaintext(
        self, row: IndexRow, info: SegmentInfo, key: bytes, path: Path | None = None
    ) -> Iterator[bytes]:
        path = path or self._segments_dir / f"{row.segment_id}{SEGMENT_SUFFIX}"
        if not path.exists() and (self.root / QUARANTINE_DIR / path.name).exists():
            raise VaultIntegrityError(
                f"segment {row.segment_id}: its file is in quarantine/, not segments/: run "
                "`lifeveil vault adopt` to put it back"
            )
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
        removed. The same transaction marks the id ``deleting`` until the file is gone, so
        a crash in between leaves a keyless file that the next open can prove is garbage
        and removes. Copies that flash wear-levelling keeps below the file system are beyond
        any software's reach.
        """
        full_id = self.resolve(segment_id)
        with self._index.change() as change:
            row = change.delete(full_id)
            if row is None:  # deleted by another process since resolve
                raise SegmentNotFoundError(f"no segment {segment_id} in {self.root}")
            record = self._guard.advance(change, removed=[row])
        self._index.checkpoint()
        self._publish(record)
        self._remove_deleted_file(full_id)
        return full_id

    def _remove_deleted_file(self, segment_id: str) -> bool:
        """Remove the file of a deleted segment, then its ``deleting`` mark; True if a file
        was there."""
        path = self._segments_dir / f"{segment_id}{SEGMENT_SUFFIX}"
        existed = path.exists()
        path.unlink(missing_ok=True)
        fsync_dir(self._segments_dir)
        self._index.forget_deleting(segment_id)
        return existed

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
        recover from interrupted ingests and deletes (as on open) and report the index
        state and the quarantine. Problems are reported, never repaired."""
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
        return VerifyReport(
            len(rows),
            tuple(problems),
            recovered,
            tuple(self.warnings()),
            tuple(f.path.name for f in self.quarantined()),
            self.index_check.ok,
        )

    def warnings(self) -> list[str]:
        """One line each: index rollback or tampering, files in quarantine. Empty when the
        vault needs no attention."""
        quarantine = quarantine_warnings(self.quarantined(), self._index.ids())
        return [*self.index_check.warnings, *self._late_warnings, *quarantine]

    def quarantined(self) -> list[QuarantinedFile]:
        """The files in ``quarantine/`` (segment files the index did not know at open)."""
        return list_quarantined(self.root)

    def _recover(self) -> list[str]:
        return [*self._remove_parts(), *self._finish_deletes(), *self._quarantine_unknown()]

    def _remove_parts(self) -> list[str]:
        """Temp files of ingests that never finished: no index copy can hold their key."""
        notes = []
        for part in sorted(self._tmp_dir.glob(f"*{PART_SUFFIX}")):
            segment_id = part.name.removesuffix(PART_SUFFIX)
            # A committed id cannot have a temp file through LifeVeil; if one does, keep it.
            if remove_if_abandoned(part, lambda s=segment_id: not self._is_committed(s)):
                notes.append(f"removed unfinished segment tmp/{part.name} (interrupted ingest)")
        return notes

    def _finish_deletes(self) -> list[str]:
        """Files of deleted segments whose delete was interrupted after the key went."""
        notes = []
        for segment_id in sorted(self._index.deleting()):
            if not self._is_committed(segment_id) and self._remove_deleted_file(segment_id):
                notes.append(
                    f"removed segments/{segment_id}{SEGMENT_SUFFIX} of a deleted segment "
                    "(delete interrupted after its key was destroyed)"
                )
        return notes

    def _quarantine_unknown(self) -> list[str]:
        notes = []
        known = self._index.ids()
        for file in sorted(self._segments_dir.glob(f"*{SEGMENT_SUFFIX}")):
            segment_id = file.name.removesuffix(SEGMENT_SUFFIX)
            if segment_id not in known:
                notes += self._quarantine(file, segment_id)
        return notes

    def _quarantine(self, file: Path, segment_id: str) -> list[str]:
        """Move a segment file to quarantine/ unless a writer holds it or it got committed
        meanwhile (both checked while holding its lock)."""
        moved: list[Path] = []
        if not handle_if_abandoned(
            file,
            lambda p: moved.append(move_to_quarantine(p, self.root)),
            lambda: not self._is_committed(segment_id),
        ):
            return []
        return [
            f"moved segments/{file.name} to quarantine/{moved[0].name}: index.sqlite has no "
            "key for it (an older index.sqlite restored, or an ingest interrupted just before "
            "its commit); kept for `lifeveil vault adopt` or `lifeveil vault purge`"
        ]

    # ---- owner decisions on the quarantine ------------------------------------------------

    def adopt(self, from_index: PathLike | None = None) -> AdoptReport:
        """Put quarantined segment files back into the vault where possible.

        A file is adopted when its key row is in ``index.sqlite`` or in ``from_index`` (another
        copy of this vault's index, e.g. the newer one of a rollback or a sync conflict), the
        key unwraps with this vault's master key and the whole file decrypts, authenticates
        and matches its recorded size and SHA-256. Other files stay quarantined, each with the
        reason. Once the quarantine is empty, the index is accepted as the vault's state,
        which clears rollback warnings.
        """
        others = {}
        if from_index is not None:
            others = read_other_index(Path(from_index), self._keyslot.vault_id)
        adopted, kept = [], []
        for item in self.quarantined():
            reason = self._adopt_file(item, others)
            if reason is None:
                adopted.append(item.segment_id)
            else:
                kept.append(reason)
        return AdoptReport(tuple(adopted), tuple(kept), self._settle_if_clear())

    def purge(self, names: Iterable[str] | None = None) -> PurgeReport:
        """Delete quarantined files (all, or those named by file name or segment id prefix);
        irreversible. Files whose segment is in the index are kept (``adopt`` them, or
        ``delete`` the segment). Once the quarantine is empty, the index is accepted as the
        vault's state, which clears rollback warnings."""
        known = self._index.ids()
        purged, kept = [], []
        for item in self.select_quarantined(names):
            if item.segment_id in known:
                kept.append(
                    f"quarantine/{item.path.name}: segment {item.segment_id} is in "
                    "index.sqlite: `lifeveil vault adopt` puts it back, `lifeveil vault "
                    "delete` shreds it"
                )
            elif handle_if_abandoned(item.path, lambda p: p.unlink()):
                purged.append(item.path.name)
            else:
                kept.append(f"quarantine/{item.path.name}: in use by another process")
        if purged:
            fsync_dir(self.root / QUARANTINE_DIR)
        return PurgeReport(tuple(purged), tuple(kept), self._settle_if_clear())

    def select_quarantined(self, names: Iterable[str] | None = None) -> list[QuarantinedFile]:
        """Quarantined files named by file name or segment id prefix (all when None);
        raises VaultError for a name that matches none."""
        files = self.quarantined()
        if names is None:
            return files
        chosen: dict[Path, QuarantinedFile] = {}
        for name in names:
            wanted = name.strip().lower()
            matches = [f for f in files if f.path.name == name or _id_matches(f, wanted)]
            if not matches:
                raise VaultError(
                    f"no file in quarantine/ matches {name!r}: `lifeveil vault verify` lists "
                    "them (QUARANTINED lines)"
                )
            chosen.update((f.path, f) for f in matches)
        return list(chosen.values())

    def _adopt_file(self, item: QuarantinedFile, others: Mapping[str, IndexRow]) -> str | None:
        """None if ``item`` went back into the vault, else why it stays quarantined."""
        name = f"quarantine/{item.path.name}"
        if not item.segment_id:
            return f"{name}: not named like a segment file; it stays (`purge` deletes it)"
        row = self._index.get(item.segment_id)
        register = row is None
        row = row or others.get(item.segment_id)
        if row is None:
            return (
                f"{name}: its key row is gone (not in index.sqlite"
                + (" nor in the other index" if others else "")
                + "), so it cannot be decrypted: it stays quarantined; give a newer copy of "
                "index.sqlite with --from-index, or `purge` it"
            )
        if item.segment_id in self._index.deleting():
            return f"{name}: segment {item.segment_id} was deleted; it stays (`purge` deletes it)"
        if (self._segments_dir / f"{item.segment_id}{SEGMENT_SUFFIX}").exists():
            return f"{name}: segment {item.segment_id} already has its file; this copy is redundant (`purge` deletes it)"
        outcome: list[str | None] = []
        restore = lambda p: outcome.append(self._restore(p, row, register))  # noqa: E731
        if not handle_if_abandoned(item.path, restore):
            return f"{name}: in use by another process; try again"
        return outcome[0]

    def _restore(self, path: Path, row: IndexRow, register: bool) -> str | None:
        """Authenticate a quarantined file end to end, move it back and (if its row came from
        another index) register it. Runs while holding the file's lock."""
        try:
            info, key = self._unlock(row)
            for _ in self._plaintext(row, info, key, path):
                pass
        except VaultError as exc:
            return f"quarantine/{path.name}: does not authenticate with its key ({exc}); it stays"
        target = self._segments_dir / f"{row.segment_id}{SEGMENT_SUFFIX}"
        os.rename(path, target)
        fsync_dir(self._segments_dir)
        fsync_dir(path.parent)
        if register:
            self._insert_row(row)
        return None

    def _settle_if_clear(self) -> bool:
        """With an empty quarantine, accept the index as the vault's state if it was not ok."""
        if self.quarantined():
            return False
        self.index_check = self._guard.inspect(self._index)
        if self.index_check.ok:
            return False
        with self._index.change() as change:
            record = self._guard.settle(change)
        self._publish(record)
        self.index_check = self._guard.inspect(self._index)
        return True


def _id_matches(item: QuarantinedFile, wanted: str) -> bool:
    return (
        bool(item.segment_id)
        and len(wanted) >= MIN_ID_PREFIX
        and item.segment_id.startswith(wanted)
    )


def _tighten_permissions(root: Path) -> None:
    """Make the vault folder 0700 and the index files 0600 before SQLite opens them (it gives
    new -wal/-shm files the index's mode). Skipped where we lack the right (not our files)."""
    try:
        private_dir(root)
        private_file(root / INDEX_NAME)
        for suffix in ("-wal", "-shm"):
            extra = root / f"{INDEX_NAME}{suffix}"
            if extra.exists():
                extra.chmod(0o600)
    except PermissionError:
        pass


def _write_keyslot(root: Path, keyslot: Keyslot) -> None:
    with atomic_path(root / KEYSLOT_NAME, private=True) as tmp:
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
