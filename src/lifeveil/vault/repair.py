"""Recovery on open and the owner's decisions on the quarantine (``adopt``, ``purge``).

On open, only files that are provably garbage are removed: unfinished temp files and the files
of deleted segments. A complete segment file the index does not know is moved to
``quarantine/`` instead (``lifeveil.vault.quarantine``): the index may be an older copy, and
:func:`adopt` can put the file back from a newer one. Once the quarantine is empty, the index
is accepted as the vault's state, which clears rollback warnings.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from lifeveil.errors import VaultError
from lifeveil.vault.index import IndexRow, read_other_index
from lifeveil.vault.quarantine import (
    QUARANTINE_DIR,
    AdoptReport,
    PurgeReport,
    QuarantinedFile,
    move_to_quarantine,
)
from lifeveil.vault.records import MIN_ID_PREFIX
from lifeveil.vault.segment import (
    PART_SUFFIX,
    SEGMENT_SUFFIX,
    fsync_dir,
    handle_if_abandoned,
    remove_if_abandoned,
)
from lifeveil.vault.store import SegmentStore

# ---- recovery -----------------------------------------------------------------------------


def recover(store: SegmentStore) -> list[str]:
    """Finish what interrupted ingests and deletes left; one note per file handled."""
    return [*_remove_parts(store), *_finish_deletes(store), *_quarantine_unknown(store)]


def _remove_parts(store: SegmentStore) -> list[str]:
    """Temp files of ingests that never finished: no index copy can hold their key."""
    notes = []
    for part in sorted(store.tmp_dir.glob(f"*{PART_SUFFIX}")):
        segment_id = part.name.removesuffix(PART_SUFFIX)
        # A committed id cannot have a temp file through LifeVeil; if one does, keep it.
        if remove_if_abandoned(part, lambda s=segment_id: not store.is_committed(s)):
            notes.append(f"removed unfinished segment tmp/{part.name} (interrupted ingest)")
    return notes


def _finish_deletes(store: SegmentStore) -> list[str]:
    """Files of deleted segments whose delete was interrupted after the key went."""
    notes = []
    for segment_id in sorted(store.index.deleting()):
        if not store.is_committed(segment_id) and store.remove_deleted_file(segment_id):
            notes.append(
                f"removed segments/{segment_id}{SEGMENT_SUFFIX} of a deleted segment "
                "(delete interrupted after its key was destroyed)"
            )
    return notes


def _quarantine_unknown(store: SegmentStore) -> list[str]:
    notes = []
    known = store.index.ids()
    for file in sorted(store.segments_dir.glob(f"*{SEGMENT_SUFFIX}")):
        segment_id = file.name.removesuffix(SEGMENT_SUFFIX)
        if segment_id not in known:
            notes += _quarantine(store, file, segment_id)
    return notes


def _quarantine(store: SegmentStore, file: Path, segment_id: str) -> list[str]:
    """Move a segment file to quarantine/ unless a writer holds it or it got committed
    meanwhile (both checked while holding its lock)."""
    moved: list[Path] = []
    if not handle_if_abandoned(
        file,
        lambda p: moved.append(move_to_quarantine(p, store.root)),
        lambda: not store.is_committed(segment_id),
    ):
        return []
    return [
        f"moved segments/{file.name} to quarantine/{moved[0].name}: index.sqlite has no "
        "key for it (an older index.sqlite restored, or an ingest interrupted just before "
        "its commit); kept for `lifeveil vault adopt` or `lifeveil vault purge`"
    ]


# ---- owner decisions on the quarantine ----------------------------------------------------


def adopt(store: SegmentStore, from_index: Path | None = None) -> AdoptReport:
    """Put quarantined segment files back where their key row is found (in the index or in
    ``from_index``) and the whole file authenticates; see ``Vault.adopt``."""
    others = {}
    if from_index is not None:
        others = read_other_index(from_index, store.vault_id)
    adopted, kept = [], []
    for item in store.quarantined():
        reason = _adopt_file(store, item, others)
        if reason is None:
            adopted.append(item.segment_id)
        else:
            kept.append(reason)
    return AdoptReport(tuple(adopted), tuple(kept), _settle_if_clear(store))


def purge(store: SegmentStore, names: Iterable[str] | None = None) -> PurgeReport:
    """Delete quarantined files whose segment the index does not hold; see ``Vault.purge``."""
    known = store.index.ids()
    purged, kept = [], []
    for item in select_quarantined(store, names):
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
        fsync_dir(store.root / QUARANTINE_DIR)
    return PurgeReport(tuple(purged), tuple(kept), _settle_if_clear(store))


def select_quarantined(
    store: SegmentStore, names: Iterable[str] | None = None
) -> list[QuarantinedFile]:
    """Quarantined files named by file name or segment id prefix (all when None);
    raises VaultError for a name that matches none."""
    files = store.quarantined()
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


def _adopt_file(
    store: SegmentStore, item: QuarantinedFile, others: Mapping[str, IndexRow]
) -> str | None:
    """None if ``item`` went back into the vault, else why it stays quarantined."""
    name = f"quarantine/{item.path.name}"
    if not item.segment_id:
        return f"{name}: not named like a segment file; it stays (`purge` deletes it)"
    row = store.index.get(item.segment_id)
    register = row is None
    row = row or others.get(item.segment_id)
    if row is None:
        return (
            f"{name}: its key row is gone (not in index.sqlite"
            + (" nor in the other index" if others else "")
            + "), so it cannot be decrypted: it stays quarantined; give a newer copy of "
            "index.sqlite with --from-index, or `purge` it"
        )
    if item.segment_id in store.index.deleting():
        return f"{name}: segment {item.segment_id} was deleted; it stays (`purge` deletes it)"
    if store.segment_path(item.segment_id).exists():
        return f"{name}: segment {item.segment_id} already has its file; this copy is redundant (`purge` deletes it)"
    outcome: list[str | None] = []
    restore = lambda p: outcome.append(_restore(store, p, row, register))  # noqa: E731
    if not handle_if_abandoned(item.path, restore):
        return f"{name}: in use by another process; try again"
    return outcome[0]


def _restore(store: SegmentStore, path: Path, row: IndexRow, register: bool) -> str | None:
    """Authenticate a quarantined file end to end, move it back and (if its row came from
    another index) register it. Runs while holding the file's lock."""
    try:
        store.authenticate(row, path)
    except VaultError as exc:
        return f"quarantine/{path.name}: does not authenticate with its key ({exc}); it stays"
    target = store.segment_path(row.segment_id)
    os.rename(path, target)
    fsync_dir(store.segments_dir)
    fsync_dir(path.parent)
    if register:
        store.insert_row(row)
    return None


def _settle_if_clear(store: SegmentStore) -> bool:
    """With an empty quarantine, accept the index as the vault's state if it was not ok."""
    if store.quarantined():
        return False
    store.index_check = store.guard.inspect(store.index)
    if store.index_check.ok:
        return False
    with store.index.change() as change:
        record = store.guard.settle(change)
    store.publish(record)
    store.index_check = store.guard.inspect(store.index)
    return True


def _id_matches(item: QuarantinedFile, wanted: str) -> bool:
    return (
        bool(item.segment_id)
        and len(wanted) >= MIN_ID_PREFIX
        and item.segment_id.startswith(wanted)
    )
