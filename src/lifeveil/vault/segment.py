"""Segment files on disk: crash-safe writing and authenticated reading.

Writing goes to ``tmp/<id>.lvs.part``, which the writer keeps ``flock``-ed from creation until
the index commit; then fsync, rename into ``segments/`` and fsync of the folder. Recovery
(``handle_if_abandoned``) only touches files whose lock it can take, so an ingest running in
another process is never disturbed, while the leftovers of a killed one are handled.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lifeveil.errors import VaultError, VaultIntegrityError
from lifeveil.vault.format import (
    SEGMENT_HEADER_SIZE,
    TAG_BYTES,
    ChunkSealer,
    SegmentHeader,
    chunk_lengths,
    open_chunk,
)

SEGMENT_SUFFIX = ".lvs"
PART_SUFFIX = ".lvs.part"


def fsync_dir(path: Path) -> None:
    """Make renames and unlinks inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_locked(path: Path) -> int:
    """Create ``path`` exclusively and hold an exclusive flock on it.

    Between creation and locking, a concurrent recovery could remove the new file; the inode
    check catches that and the file is simply created again.
    """
    for _ in range(3):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)  # exactly owner read/write, whatever the umask
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
    raise VaultError(f"{path}: could not create a segment file (removed concurrently)")


def handle_if_abandoned(
    path: Path,
    action: Callable[[Path], None],
    still_abandoned: Callable[[], bool] | None = None,
) -> bool:
    """Run ``action(path)`` if no writer holds the file's lock and ``still_abandoned()``
    agrees (checked while holding the lock); True if it ran."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer owns it
        if not _same_file(path, fd):
            return False  # moved or removed by another process meanwhile
        if still_abandoned is not None and not still_abandoned():
            return False
        action(path)
        return True
    finally:
        os.close(fd)


def remove_if_abandoned(path: Path, still_abandoned: Callable[[], bool] | None = None) -> bool:
    """Remove ``path`` if no writer holds its lock (and ``still_abandoned()`` agrees)."""
    return handle_if_abandoned(path, lambda p: p.unlink(missing_ok=True), still_abandoned)


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def free_path(folder: Path, segment_id: str) -> Path:
    """``folder/<id>.lvs``, or ``<id>.<n>.lvs`` if taken, so no file is ever overwritten."""
    candidate = folder / f"{segment_id}{SEGMENT_SUFFIX}"
    n = 1
    while candidate.exists():
        candidate = folder / f"{segment_id}.{n}{SEGMENT_SUFFIX}"
        n += 1
    return candidate


class SegmentFileWriter:
    """Encrypts a plaintext stream into ``tmp/``, then moves it into ``segments/``.

    ``finish`` makes the file durable under its final name but keeps the lock; the caller
    commits the index row and then calls ``release``. ``discard`` removes the file wherever
    it is. Plaintext size and SHA-256 are computed on the way.
    """

    def __init__(self, tmp_dir: Path, final_dir: Path, key: bytes, header: SegmentHeader) -> None:
        name = header.segment_id.hex()
        self.tmp_path = tmp_dir / f"{name}{PART_SUFFIX}"
        self.final_path = final_dir / f"{name}{SEGMENT_SUFFIX}"
        self._current = self.tmp_path
        self._file = os.fdopen(_create_locked(self.tmp_path), "wb")
        self._sealer = ChunkSealer(key, header)
        self._sha256 = hashlib.sha256()
        self.size = 0
        self.stored_size = 0
        self._emit([header.to_bytes()])

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the plaintext written so far."""
        return self._sha256.hexdigest()

    def write(self, data: bytes) -> None:
        """Append plaintext; complete chunks are encrypted and written immediately."""
        self._sha256.update(data)
        self.size += len(data)
        self._emit(self._sealer.update(data))

    def finish(self) -> None:
        """Seal the final chunk, fsync, rename into ``segments/`` and fsync the folder."""
        self._emit([self._sealer.finalize()])
        self._file.flush()
        os.fsync(self._file.fileno())
        os.replace(self.tmp_path, self.final_path)
        self._current = self.final_path
        fsync_dir(self.final_path.parent)

    def release(self) -> None:
        """Close the file, dropping the lock (after the index commit)."""
        self._file.close()

    def discard(self) -> None:
        """Remove the file (temporary or renamed) and drop the lock."""
        self._current.unlink(missing_ok=True)
        self._file.close()

    def _emit(self, blocks: list[bytes]) -> None:
        for block in blocks:
            self._file.write(block)
            self.stored_size += len(block)


def read_segment_file(
    path: Path, key: bytes, segment_id: bytes, stored_size: int | None = None
) -> Iterator[bytes]:
    """Decrypt a segment file chunk by chunk, yielding authenticated plaintext.

    Raises VaultIntegrityError (possibly after earlier chunks were yielded) if the file is
    missing, truncated, extended, tampered, reordered or belongs to another segment; callers
    that need all-or-nothing output must stage it (``Vault.export`` does).
    """
    label = f"segment {segment_id.hex()}"
    if not path.is_file():
        raise VaultIntegrityError(
            f"{label}: file {path.name} is missing from {path.parent} (removed outside LifeVeil?)"
        )
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        size_error = None
        if stored_size is not None and size != stored_size:
            size_error = VaultIntegrityError(
                f"{label}: file is {size} bytes but was {stored_size} bytes when stored "
                "(truncated or extended); its data cannot be trusted"
            )
        try:
            header = _read_header(fh, label, segment_id)
        except VaultIntegrityError:
            if size_error is not None and size < SEGMENT_HEADER_SIZE:
                raise size_error from None
            raise
        if size_error is not None:
            raise size_error
        count, last = chunk_lengths(size - SEGMENT_HEADER_SIZE, header.chunk_size)
        aead = AESGCM(key)
        for index in range(count):
            final = index == count - 1
            sealed = fh.read(last if final else header.chunk_size + TAG_BYTES)
            yield _open_or_explain(aead, header, index, count, sealed, label)


def _read_header(fh, label: str, segment_id: bytes) -> SegmentHeader:
    try:
        header = SegmentHeader.from_bytes(fh.read(SEGMENT_HEADER_SIZE))
    except VaultIntegrityError as exc:
        raise VaultIntegrityError(f"{label}: {exc}") from None
    if header.segment_id != segment_id:
        raise VaultIntegrityError(
            f"{label}: the file's header names segment {header.segment_id.hex()} "
            "(files swapped or renamed)"
        )
    return header


def _open_or_explain(
    aead: AESGCM, header: SegmentHeader, index: int, count: int, sealed: bytes, label: str
) -> bytes:
    final = index == count - 1
    try:
        return open_chunk(aead, header, index, final, sealed)
    except InvalidTag:
        pass
    if final:
        try:
            open_chunk(aead, header, index, False, sealed)
        except InvalidTag:
            pass
        else:
            raise VaultIntegrityError(
                f"{label}: file ends after chunk {index} without its final chunk (truncated)"
            )
    raise VaultIntegrityError(
        f"{label}: chunk {index} of {count} failed authentication "
        "(the file was tampered with, reordered or is corrupt)"
    )
