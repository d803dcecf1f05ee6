"""Atomic file writes (outputs are either complete or absent, never half-written) and private
files and folders (0600 / 0700 whatever the umask, whether or not they existed)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def _read_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)  # at import time, before any thread of ours exists
    os.umask(umask)
    return umask


_UMASK = _read_umask()


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) if needed and make it 0700, also when it already existed."""
    p = Path(path)
    p.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    p.chmod(PRIVATE_DIR_MODE)
    return p


def private_file(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` empty if absent (0600 from the first byte) or make an existing file 0600.

    Call it before handing a path to a library that creates files with default modes (SQLite
    gives its -wal and -shm files the database file's mode).
    """
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], private: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    The result is 0600 when ``private``, else what a plain ``open(path, "w")`` would give.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)  # mkstemp makes 0600
    tmp_path = Path(tmp)
    if not private:
        make_public(tmp_path)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def make_public(path: Path) -> None:
    """Give a file the permissions a plain ``open(path, "w")`` would (0666 minus the umask)."""
    os.chmod(path, 0o666 & ~_UMASK)


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "w", private: bool = False
) -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``path`` atomically on success."""
    with atomic_path(path, private) as tmp, open(tmp, mode) as fh:
        yield fh


def write_json(path: str | os.PathLike[str], data: Any, private: bool = False) -> None:
    """Write ``data`` as indented JSON, atomically (0600 when ``private``)."""
    with atomic_open(path, "w", private) as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
