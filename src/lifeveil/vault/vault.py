"""The encrypted on-device vault: raw video segments, each under its own key.

A vault is a folder (layout and bytes in ``lifeveil.vault.format``; creating and unlocking it
in ``lifeveil.vault.folder``). :class:`Vault` is the handle users hold; the work is done by
``store`` (index rows, keys, authenticated reads), ``writer`` (one segment being written) and
``repair`` (recovery on open, the quarantine).

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

Permissions: the folder and its subfolders are 0700, every file the vault writes 0600
(``lifeveil.vault.folder``).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from lifeveil.errors import SegmentNotFoundError, VaultError
from lifeveil.io import atomic_path
from lifeveil.vault import repair
from lifeveil.vault.folder import PathLike, create_folder, unlock_folder, write_keyslot
from lifeveil.vault.format import (
    ID_BYTES,
    KEY_BYTES,
    NONCE_PREFIX_BYTES,
    UNLOCK_PASSPHRASE,
    Keyslot,
    SegmentHeader,
)
from lifeveil.vault.index import IndexRow, SegmentIndex
from lifeveil.vault.keys import KdfParams, kdf_params_of, make_keyslot, read_key_file
from lifeveil.vault.quarantine import (
    AdoptReport,
    PurgeReport,
    QuarantinedFile,
    quarantine_warnings,
)
from lifeveil.vault.records import (
    DEFAULT_CHUNK_SIZE,
    MIN_ID_PREFIX,
    SegmentInfo,
    SegmentMetadata,
    VerifyReport,
)
from lifeveil.vault.rollback import IndexCheck
from lifeveil.vault.segment import SegmentFileWriter
from lifeveil.vault.store import SegmentStore
from lifeveil.vault.writer import SegmentWriter, file_metadata

SECONDS_PER_DAY = 86_400.0


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
        self._index = index
        self._clock = clock
        self._store = SegmentStore(root, keyslot.vault_id, master_key, index)
        self.recovered: tuple[str, ...] = tuple(repair.recover(self._store))

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
        new = create_folder(root, passphrase=passphrase, key_file=key_file, kdf=kdf)
        return cls(
            new.root, new.keyslot, new.master_key, new.index, chunk_size=chunk_size, clock=clock
        )

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
        found = unlock_folder(root, passphrase=passphrase, key_file=key_file)
        return cls(
            found.root,
            found.keyslot,
            found.master_key,
            found.index,
            chunk_size=chunk_size,
            clock=clock,
        )

    @property
    def vault_id(self) -> str:
        """Random id of this vault (hex), bound into every wrapped key."""
        return self._keyslot.vault_id.hex()

    @property
    def index_check(self) -> IndexCheck:
        """Whether ``index.sqlite`` is the vault's latest, unaltered state (and if not, why)."""
        return self._store.index_check

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
        write_keyslot(self.root, keyslot)
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
        store = self._store
        file = SegmentFileWriter(store.tmp_dir, store.segments_dir, key, header)
        return SegmentWriter(file, key, meta, store.commit_segment, store.is_committed)

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
            meta = file_metadata(path, metadata or SegmentMetadata())
            with open(path, "rb") as fh:
                return self._ingest_binary(fh, meta)
        return self._ingest_binary(source, metadata)

    def _ingest_binary(self, fh: BinaryIO, metadata: SegmentMetadata | None) -> SegmentInfo:
        return self.ingest_stream(iter(lambda: fh.read(self.chunk_size), b""), metadata)

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
        return self._store.plaintext(row, info, key)

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
            for block in self._store.plaintext(row, info, key):
                fh.write(block)
        return info

    def _row(self, segment_id: str) -> IndexRow:
        full_id = self.resolve(segment_id)
        row = self._index.get(full_id)
        if row is None:  # deleted between resolve and get
            raise SegmentNotFoundError(f"no segment {segment_id} in {self.root}")
        return row

    def _unlock(self, row: IndexRow) -> tuple[SegmentInfo, bytes]:
        return self._store.unlock(row)

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
            record = self._store.guard.advance(change, removed=[row])
        self._index.checkpoint()
        self._store.publish(record)
        self._remove_deleted_file(full_id)
        return full_id

    def _remove_deleted_file(self, segment_id: str) -> bool:
        return self._store.remove_deleted_file(segment_id)

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

    # ---- checking and the quarantine ------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Decrypt and authenticate every segment and compare it with its checksum; also
        recover from interrupted ingests and deletes (as on open) and report the index
        state and the quarantine. Problems are reported, never repaired."""
        recovered = self.recovered + tuple(repair.recover(self._store))
        rows = self._index.rows()
        problems = []
        for row in rows:
            try:
                self._store.authenticate(row)
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
        return [*self.index_check.warnings, *self._store.late_warnings, *quarantine]

    def quarantined(self) -> list[QuarantinedFile]:
        """The files in ``quarantine/`` (segment files the index did not know at open)."""
        return self._store.quarantined()

    def adopt(self, from_index: PathLike | None = None) -> AdoptReport:
        """Put quarantined segment files back into the vault where possible.

        A file is adopted when its key row is in ``index.sqlite`` or in ``from_index`` (another
        copy of this vault's index, e.g. the newer one of a rollback or a sync conflict), the
        key unwraps with this vault's master key and the whole file decrypts, authenticates
        and matches its recorded size and SHA-256. Other files stay quarantined, each with the
        reason. Once the quarantine is empty, the index is accepted as the vault's state,
        which clears rollback warnings.
        """
        return repair.adopt(self._store, None if from_index is None else Path(from_index))

    def purge(self, names: Iterable[str] | None = None) -> PurgeReport:
        """Delete quarantined files (all, or those named by file name or segment id prefix);
        irreversible. Files whose segment is in the index are kept (``adopt`` them, or
        ``delete`` the segment). Once the quarantine is empty, the index is accepted as the
        vault's state, which clears rollback warnings."""
        return repair.purge(self._store, names)

    def select_quarantined(self, names: Iterable[str] | None = None) -> list[QuarantinedFile]:
        """Quarantined files named by file name or segment id prefix (all when None);
        raises VaultError for a name that matches none."""
        return repair.select_quarantined(self._store, names)
