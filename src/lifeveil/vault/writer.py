"""Writing one segment: :class:`SegmentWriter` (from ``Vault.open_writer``) and the metadata
of a segment ingested from a file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import TracebackType

from lifeveil.errors import MediaError, VaultError
from lifeveil.vault.records import SegmentInfo, SegmentMetadata
from lifeveil.vault.segment import SEGMENT_SUFFIX, SegmentFileWriter


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


def file_metadata(path: Path, metadata: SegmentMetadata) -> SegmentMetadata:
    """``metadata`` with the source name defaulting to the file name and the duration to
    the video's length when PyAV can read it."""
    if metadata.source_name is None:
        metadata = replace(metadata, source_name=path.name)
    if metadata.duration_s is None:
        metadata = replace(metadata, duration_s=probe_duration(path))
    return metadata


def probe_duration(path: Path) -> float | None:
    """Seconds of video in ``path``, or None when it is not a readable video."""
    from lifeveil.ingest.video import probe_video  # PyAV import is slow; only for files

    try:
        seconds = probe_video(path).seconds
    except MediaError:
        return None
    return seconds or None
