"""The quarantine: segment files the index does not know, kept aside for the owner to decide.

The vault deletes a file only when it can prove the file is garbage:

* ``tmp/<id>.lvs.part`` that no writer holds locked: an ingest that never finished. A segment's
  key is written to the index only after its file has left ``tmp/``, so no copy of the index,
  older or newer, holds the key of a ``.part`` file: nothing can ever decrypt it.
* ``segments/<id>.lvs`` of a segment the index marks ``deleting``: the owner deleted it, its key
  is destroyed, and a crash came before the file was removed.

Any other ``segments/*.lvs`` unknown to the index is moved to ``quarantine/`` when the vault is
opened, never deleted there: it may be a segment whose key is in a newer copy of the index (an
older ``index.sqlite`` was restored), or one whose ingest was killed between the rename and the
index commit (its key is lost). ``Vault.adopt`` puts back those whose key can be found and whose
file authenticates; ``Vault.purge`` deletes them when the owner says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lifeveil.io import private_dir
from lifeveil.vault.segment import SEGMENT_SUFFIX, free_path, fsync_dir

QUARANTINE_DIR = "quarantine"
ID_HEX_CHARS = 32
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class QuarantinedFile:
    """A file in ``quarantine/``."""

    path: Path
    segment_id: str  # from the file name: 32 hex chars, or "" if the name is not a segment's
    size: int  # bytes on disk


@dataclass(frozen=True)
class AdoptReport:
    """Outcome of ``Vault.adopt``."""

    adopted: tuple[str, ...] = ()  # segment ids put back into the vault
    kept: tuple[str, ...] = ()  # one line per file left in quarantine, saying why
    settled: bool = False  # the index was accepted as the vault's state (warnings cleared)


@dataclass(frozen=True)
class PurgeReport:
    """Outcome of ``Vault.purge``."""

    purged: tuple[str, ...] = ()  # file names deleted from quarantine/
    kept: tuple[str, ...] = ()  # one line per file left in quarantine, saying why
    settled: bool = False  # the index was accepted as the vault's state (warnings cleared)


def segment_id_of(path: Path) -> str:
    """The segment id a file name stands for (``<id>.lvs`` or ``<id>.<n>.lvs``), else ""."""
    candidate = path.name.split(".", 1)[0]
    if len(candidate) == ID_HEX_CHARS and set(candidate) <= _HEX:
        return candidate
    return ""


def list_quarantined(root: Path) -> list[QuarantinedFile]:
    """Every file in ``root/quarantine/``, by name."""
    folder = root / QUARANTINE_DIR
    if not folder.is_dir():
        return []
    return [
        QuarantinedFile(p, segment_id_of(p), p.stat().st_size)
        for p in sorted(folder.iterdir())
        if p.is_file()
    ]


def move_to_quarantine(file: Path, root: Path) -> Path:
    """Move a segment file into ``root/quarantine/`` without overwriting anything there."""
    folder = private_dir(root / QUARANTINE_DIR)
    target = free_path(folder, segment_id_of(file) or file.name.removesuffix(SEGMENT_SUFFIX))
    os.rename(file, target)
    fsync_dir(folder)
    fsync_dir(file.parent)
    return target


def quarantine_warnings(files: list[QuarantinedFile], known: set[str]) -> list[str]:
    """One line for the files whose key the index lacks and one for those it has."""
    lines = []
    stranded = [f for f in files if f.segment_id in known]
    unknown = len(files) - len(stranded)
    if unknown:
        lines.append(
            f"{unknown} segment file(s) in quarantine/ are not in index.sqlite (kept, not "
            "deleted): `lifeveil vault adopt [--from-index OTHER_COPY]` puts back those whose "
            "key can be found, `lifeveil vault purge` deletes them"
        )
    if stranded:
        lines.append(
            f"{len(stranded)} segment(s) of index.sqlite have their file in quarantine/: "
            "`lifeveil vault adopt` puts them back"
        )
    return lines
