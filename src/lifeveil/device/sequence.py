"""The device's sequence high-water mark: kept outside the outbox so that losing it is harmless.

The server deduplicates by ``(device, seq)`` and keeps the first record it saw under a seq, so
a device that hands out a seq twice loses the second record. The outbox counts seqs, but an
outbox can be deleted, lost with its disk or restored from an old copy while the device's
token lives on. So the outbox also *reserves* seqs in blocks in a small JSON file beside the
token (``device.json`` itself when it is an enrolment file): before any seq at or above the
mark is used, the mark is raised a block ahead and written atomically (0600, fsynced, folder
fsynced). Every process starts at the mark, so the seqs it uses were never handed out before,
whatever happened to the outbox; the cost is one small write per block and a gap of at most a
block per restart.

>>> mark = SequenceMark(tmp / "device.json")   # doctest: +SKIP
>>> mark.load(), mark.raise_to(1024), mark.load()   # doctest: +SKIP
(0, None, 1024)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lifeveil.errors import InputError
from lifeveil.io import atomic_path, private_dir

MARK_KEY = "seq_reserved"  # seqs below this may have been used; never lowered
MARK_FORMAT = "lifeveil-device-sequence"  # format of a stand-alone mark file
SEQ_BLOCK = 1024  # seqs reserved per write of the mark
SEQ_EPOCH = 2**40  # requeued conflicts move to the next multiple (3,000 years at 10 z/s)


class SequenceMark:
    """A high-water mark stored under ``seq_reserved`` in a JSON object file.

    The file may hold other keys (``device.json`` holds the token); they are kept as they
    are. A missing file reads as 0 and is created (0600; a missing folder 0700) on the first
    raise.

    Args:
        path: the JSON file, e.g. ``STATE/device.json`` or ``STATE/sequence.json``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"SequenceMark({str(self.path)!r})"

    def load(self) -> int:
        """The mark: every seq ever used by this device is below it (0 if none recorded)."""
        return self._mark_in(self._read())

    def raise_to(self, value: int) -> None:
        """Durably set the mark to ``value`` (never lowers it); returns once it is on disk."""
        data = self._read()
        if self._mark_in(data) >= value:
            return
        data.setdefault("format", MARK_FORMAT)
        data[MARK_KEY] = int(value)
        try:
            self._write(data)
        except OSError as exc:
            raise InputError(
                f"{self.path}: cannot record the sequence high-water mark ({exc.strerror}); "
                "make the device state folder writable"
            ) from None

    def _mark_in(self, data: dict[str, Any]) -> int:
        value = data.get(MARK_KEY, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InputError(
                f"{self.path}: {MARK_KEY} is {value!r}, not a non-negative integer; restore "
                "the file from the device or remove the key only if the server holds no "
                "records of this device"
            )
        return value

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read ({exc.strerror})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{self.path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise InputError(f"{self.path}: expected a JSON object")
        return data

    def _write(self, data: dict[str, Any]) -> None:
        folder = self.path.parent
        if not folder.is_dir():  # an existing folder (a --token-file's) keeps its mode
            private_dir(folder)
        with atomic_path(self.path, private=True) as tmp:
            tmp.write_text(json.dumps(data, indent=2) + "\n")
        _fsync_dir(folder)  # the rename itself must survive a power cut


def next_epoch(seq: int) -> int:
    """The first seq of the epoch after the one holding ``seq`` (multiples of ``SEQ_EPOCH``).

    >>> next_epoch(0), next_epoch(SEQ_EPOCH - 1) == SEQ_EPOCH, next_epoch(SEQ_EPOCH) // SEQ_EPOCH
    (1099511627776, True, 2)
    """
    return (seq // SEQ_EPOCH + 1) * SEQ_EPOCH


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
