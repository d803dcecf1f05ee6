"""The unlocked vault's segments: its index, its keys and its files.

:class:`SegmentStore` is the state that :class:`~lifeveil.vault.vault.Vault` and the recovery
and quarantine code (``lifeveil.vault.repair``) share: committing an index row (and bumping
the rollback counter), unlocking a row's key and metadata, and streaming a segment's
authenticated plaintext.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from lifeveil.errors import VaultIntegrityError
from lifeveil.io import private_dir
from lifeveil.vault.folder import SEGMENTS_DIR, TMP_DIR
from lifeveil.vault.index import IndexRow, SegmentIndex
from lifeveil.vault.keys import (
    open_metadata,
    seal_metadata,
    segment_wrap_key,
    unwrap_segment_key,
    wrap_segment_key,
)
from lifeveil.vault.quarantine import QUARANTINE_DIR, QuarantinedFile, list_quarantined
from lifeveil.vault.records import SegmentInfo, info_from_record, metadata_record
from lifeveil.vault.rollback import IndexCheck, RollbackGuard
from lifeveil.vault.segment import SEGMENT_SUFFIX, fsync_dir, read_segment_file


class SegmentStore:
    """Index, keys and files of one unlocked vault at ``root``.

    Creating it makes ``segments/`` and ``tmp/`` (0700) and inspects the index against the
    vault's rollback state (``index_check``).
    """

    def __init__(self, root: Path, vault_id: bytes, master_key: bytes, index: SegmentIndex) -> None:
        self.root = root
        self.vault_id = vault_id
        self.index = index
        self._wrap_key = segment_wrap_key(master_key, vault_id)
        self.segments_dir = private_dir(root / SEGMENTS_DIR)
        self.tmp_dir = private_dir(root / TMP_DIR)
        self.guard = RollbackGuard(root, master_key, vault_id)
        self.late_warnings: list[str] = []  # index.state writes that failed after a commit
        self.index_check: IndexCheck = self.guard.inspect(index)

    def segment_path(self, segment_id: str) -> Path:
        """Where the file of segment ``segment_id`` lives (it may not exist)."""
        return self.segments_dir / f"{segment_id}{SEGMENT_SUFFIX}"

    def quarantined(self) -> list[QuarantinedFile]:
        """The files in ``quarantine/``."""
        return list_quarantined(self.root)

    # ---- committing -----------------------------------------------------------------------

    def commit_segment(self, info: SegmentInfo, key: bytes) -> None:
        """Index a finished segment: its wrapped key and sealed metadata, in one change."""
        segment_id = bytes.fromhex(info.segment_id)
        payload = json.dumps(metadata_record(info), sort_keys=True).encode("utf-8")
        row = IndexRow(
            info.segment_id,
            info.created_at,
            info.stored_size,
            wrap_segment_key(self._wrap_key, self.vault_id, segment_id, key),
            seal_metadata(key, self.vault_id, segment_id, payload),
        )
        self.insert_row(row)

    def insert_row(self, row: IndexRow) -> None:
        """Add ``row`` to the index and advance the rollback counter with it."""
        with self.index.change() as change:
            change.insert(row)
            record = self.guard.advance(change, added=[row])
        self.publish(record)

    def publish(self, record: bytes) -> None:
        """Write the new rollback state; a failure becomes a warning, once."""
        problem = self.guard.publish(record)
        if problem and problem not in self.late_warnings:
            self.late_warnings.append(problem)

    def is_committed(self, segment_id: str) -> bool:
        """True when the index holds a row for ``segment_id``."""
        return self.index.get(segment_id) is not None

    # ---- reading --------------------------------------------------------------------------

    def unlock(self, row: IndexRow) -> tuple[SegmentInfo, bytes]:
        """A row's metadata and segment key (raises VaultIntegrityError if they do not
        authenticate)."""
        segment_id = bytes.fromhex(row.segment_id)
        key = unwrap_segment_key(self._wrap_key, self.vault_id, segment_id, row.wrapped_key)
        record = json.loads(open_metadata(key, self.vault_id, segment_id, row.sealed_meta))
        return info_from_record(row, record), key

    def plaintext(
        self, row: IndexRow, info: SegmentInfo, key: bytes, path: Path | None = None
    ) -> Iterator[bytes]:
        """Authenticated plaintext blocks of the segment file (``path``, default its place in
        ``segments/``); the total is checked against the recorded size and SHA-256."""
        path = path or self.segment_path(row.segment_id)
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

    def authenticate(self, row: IndexRow, path: Path | None = None) -> None:
        """Decrypt and check a whole segment; raises VaultError at the first problem."""
        info, key = self.unlock(row)
        for _ in self.plaintext(row, info, key, path):
            pass

    # ---- deleting -------------------------------------------------------------------------

    def remove_deleted_file(self, segment_id: str) -> bool:
        """Remove the file of a deleted segment, then its ``deleting`` mark; True if a file
        was there."""
        path = self.segment_path(segment_id)
        existed = path.exists()
        path.unlink(missing_ok=True)
        fsync_dir(self.segments_dir)
        self.index.forget_deleting(segment_id)
        return existed
