"""Rollback detection: notice when an older ``index.sqlite`` is put back in the vault.

Every committed change to the set of segments (ingest, delete, adopt) bumps a generation
counter. The index stores its authenticated state (``format.IndexState``: generation and a
keyed digest of its rows, MAC-ed with a key derived from the master key) in the same SQLite
transaction as the change; ``index.state`` beside it holds a copy that is written only after
that transaction has committed and is never lowered. Hence, at open:

* index generation >= file generation: normal. Equal, or the index is ahead because a crash
  (or a concurrent writer) came between the commit and the file write; the file is refreshed.
  No crash can put the file ahead of the index, so no crash can raise a false alarm.
* index generation < file generation: the index is an older copy (a backup, a sync conflict).
* same generation, different digest: two copies of the index diverged.
* the rows do not match the index's own digest: rows were added or removed outside LifeVeil.

All of these are warnings (``IndexCheck``); nothing is deleted because of them. The first change
made on an index found behind records the rollback in its state (``unsettled_rollback``), so a
device that keeps recording cannot hide it; ``Vault.adopt`` and ``Vault.purge`` settle it once
the quarantine is empty. Restoring ``index.sqlite`` and ``index.state`` together from the same
backup cannot be detected from inside the folder; segment files written since are then still
quarantined, never deleted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from lifeveil.errors import VaultIntegrityError
from lifeveil.io import atomic_path
from lifeveil.vault.format import EMPTY_DIGEST, IndexState, row_tag, xor_bytes
from lifeveil.vault.index import IndexChange, IndexRow, SegmentIndex
from lifeveil.vault.keys import index_state_key
from lifeveil.vault.segment import fsync_dir

STATE_NAME = "index.state"
SETTLE_HINT = (
    "settle with `lifeveil vault adopt [--from-index OTHER_COPY]`, then `lifeveil vault purge`"
)


class IndexRollbackError(VaultIntegrityError):
    """index.sqlite is not the vault's latest state: an older copy was put back, two copies
    diverged, or it was edited outside LifeVeil."""


@dataclass(frozen=True)
class IndexCheck:
    """How ``index.sqlite`` compares with the vault's last recorded state, checked at open."""

    generation: int  # committed changes recorded in index.sqlite
    vault_generation: int | None  # from index.state; None when missing or damaged
    rolled_back: bool  # older than the vault, diverged, or an unsettled earlier rollback
    altered: bool  # rows or state record edited outside LifeVeil
    problems: tuple[str, ...] = ()  # one line each: why the index is not ok
    notes: tuple[str, ...] = ()  # one line each: index.state missing or damaged (rewritten)

    @property
    def ok(self) -> bool:
        """True when the index is the vault's latest, unaltered state."""
        return not (self.rolled_back or self.altered)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Every line to show the owner, problems first."""
        return self.problems + self.notes

    def raise_if_not_ok(self) -> None:
        """Raise IndexRollbackError (its message: the problems) unless ``ok``."""
        if not self.ok:
            raise IndexRollbackError("; ".join(self.problems))


class RollbackGuard:
    """Keeps ``index.state`` and the index's state record; see the module docstring."""

    def __init__(self, root: Path, master_key: bytes, vault_id: bytes) -> None:
        self.path = root / STATE_NAME
        self._vault_id = vault_id
        self._key = index_state_key(master_key, vault_id)

    # ---- at open --------------------------------------------------------------------------

    def inspect(self, index: SegmentIndex) -> IndexCheck:
        """Compare the index with ``index.state``; refresh the file when the index is ahead.

        The file is read before the index: a concurrent writer commits before it writes the
        file, so reading in this order never sees a file newer than the index it then reads.
        """
        file_state, file_problem = self.read_file()
        record, keys = index.snapshot()
        first_use = record is None and file_state is None and file_problem is None
        if record is None:  # a new vault, or one made before LifeVeil tracked its index
            self._initialize(index)
            record, keys = index.snapshot()
        check = self._compare(file_state, file_problem, record, keys, first_use=first_use)
        state = self._parse(record)
        if state and (file_state is None or state.generation > file_state.generation):
            problem = self.publish(record)  # type: ignore[arg-type]  # parsed, so not None
            if problem:
                check = replace(check, notes=(*check.notes, problem))
        return check

    def read_file(self) -> tuple[IndexState | None, str | None]:
        """(state in ``index.state``, None) or (None, why it is unusable); (None, None) if absent."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"index.state cannot be read ({exc.strerror})"
        try:
            return IndexState.from_bytes(data, self._key, self._vault_id), None
        except VaultIntegrityError as exc:
            return None, f"index.state is damaged ({exc})"

    def _initialize(self, index: SegmentIndex) -> None:
        with index.change() as change:
            if change.state() is None:  # another process may have done it meanwhile
                change.set_state(self._fresh(change.keys()).to_bytes(self._key))

    def _compare(
        self,
        file_state: IndexState | None,
        file_problem: str | None,
        record: bytes | None,
        keys: list[tuple[str, bytes]],
        *,
        first_use: bool,
    ) -> IndexCheck:
        notes = _file_notes(file_state, file_problem, first_use)
        state = self._parse(record)
        if state is None:
            problem = (
                "index.sqlite: its authenticated state failed its check (edited outside "
                f"LifeVeil, or copied from another vault): restore it from a backup, or "
                f"{SETTLE_HINT}"
            )
            return IndexCheck(0, _generation(file_state), False, True, (problem,), notes)
        problems = []
        altered = state.digest != self._digest(keys)
        if altered:
            problems.append(
                "index.sqlite: its segments do not match its authenticated state (rows added, "
                f"removed or replaced outside LifeVeil): restore it from a backup, or "
                f"{SETTLE_HINT}"
            )
        rollback = _rollback_problem(state, file_state)
        if rollback:
            problems.append(rollback)
        return IndexCheck(
            state.generation,
            _generation(file_state),
            rollback is not None,
            altered,
            tuple(problems),
            notes,
        )

    # ---- on every change ------------------------------------------------------------------

    def advance(
        self,
        change: IndexChange,
        added: Iterable[IndexRow] = (),
        removed: Iterable[IndexRow] = (),
    ) -> bytes:
        """Store, inside ``change``, the state after adding and removing these rows; returns
        the record to ``publish`` once the transaction has committed."""
        previous = self._current(change)
        file_state, _ = self.read_file()
        digest = previous.digest
        for row in (*added, *removed):
            digest = xor_bytes(digest, self._row_tag(row.segment_id, row.wrapped_key))
        unsettled = previous.unsettled_rollback
        if not unsettled and _is_behind(previous, file_state):
            unsettled = file_state.generation  # type: ignore[union-attr]  # not None if behind
        state = IndexState(self._vault_id, _next(previous, file_state), unsettled, digest)
        return self._store(change, state)

    def settle(self, change: IndexChange) -> bytes:
        """Accept the index as it is now as the vault's state: recount the digest from its
        rows and clear any rollback mark (``adopt`` / ``purge`` once nothing is quarantined)."""
        previous = self._current(change)
        file_state, _ = self.read_file()
        state = IndexState(
            self._vault_id, _next(previous, file_state), 0, self._digest(change.keys())
        )
        return self._store(change, state)

    def publish(self, record: bytes) -> str | None:
        """Write a committed state to ``index.state`` unless the file is already as new.

        Never raises for a file-system error, since the change is already committed: returns
        a warning line instead (the file then lags behind, which causes no false alarm).
        """
        state = IndexState.from_bytes(record, self._key, self._vault_id)
        current, _ = self.read_file()
        if current is not None and current.generation >= state.generation:
            return None
        try:
            with atomic_path(self.path, private=True) as tmp:
                tmp.write_bytes(record)
            fsync_dir(self.path.parent)
        except OSError as exc:
            return (
                f"{STATE_NAME} could not be updated ({exc.strerror}); an index rollback to "
                "before this change would go unnoticed: free space or fix the permissions"
            )
        return None

    # ---- helpers --------------------------------------------------------------------------

    def _parse(self, record: bytes | None) -> IndexState | None:
        try:
            return IndexState.from_bytes(record or b"", self._key, self._vault_id)
        except VaultIntegrityError:
            return None

    def _current(self, change: IndexChange) -> IndexState:
        # Missing or altered: count the rows again (open has already warned about it).
        return self._parse(change.state()) or self._fresh(change.keys())

    def _store(self, change: IndexChange, state: IndexState) -> bytes:
        record = state.to_bytes(self._key)
        change.set_state(record)
        return record

    def _fresh(self, keys: list[tuple[str, bytes]]) -> IndexState:
        return IndexState(self._vault_id, 0, 0, self._digest(keys))

    def _digest(self, keys: list[tuple[str, bytes]]) -> bytes:
        total = int.from_bytes(EMPTY_DIGEST)
        for segment_id, wrapped_key in keys:
            total ^= int.from_bytes(self._row_tag(segment_id, wrapped_key))
        return total.to_bytes(len(EMPTY_DIGEST))

    def _row_tag(self, segment_id: str, wrapped_key: bytes) -> bytes:
        return row_tag(self._key, bytes.fromhex(segment_id), wrapped_key)


def _file_notes(
    file_state: IndexState | None, file_problem: str | None, first_use: bool
) -> tuple[str, ...]:
    if file_problem:
        return (
            f"{file_problem}, so an index rollback could not be checked this time; "
            f"{STATE_NAME} was rewritten from index.sqlite",
        )
    if file_state is None and not first_use:
        return (
            f"{STATE_NAME} is missing, so an index rollback could not be checked this time; "
            "it was recreated from index.sqlite",
        )
    return ()


def _generation(state: IndexState | None) -> int | None:
    return None if state is None else state.generation


def _is_behind(state: IndexState, file_state: IndexState | None) -> bool:
    if file_state is None:
        return False
    if state.generation == file_state.generation:
        return state.digest != file_state.digest  # diverged copies
    return state.generation < file_state.generation


def _next(state: IndexState, file_state: IndexState | None) -> int:
    """The next generation: past both, so no two different states ever share one."""
    return max(state.generation, _generation(file_state) or 0) + 1


def _rollback_problem(state: IndexState, file_state: IndexState | None) -> str | None:
    if file_state is not None and state.generation < file_state.generation:
        return (
            f"index.sqlite was rolled back: it is at change {state.generation} but this vault "
            f"reached change {file_state.generation} (an older copy restored from a backup or "
            "a sync conflict?); segments stored since are not in it and their files are kept "
            f"in quarantine/: put the newer index.sqlite back, or {SETTLE_HINT}"
        )
    if file_state is not None and _is_behind(state, file_state):
        return (
            f"index.sqlite differs from the state this vault recorded at change "
            f"{state.generation}: two copies of the index diverged (a sync conflict?): keep "
            f"the right index.sqlite, then {SETTLE_HINT}"
        )
    if state.unsettled_rollback:
        return (
            "index.sqlite was rolled back earlier (the vault had reached change "
            f"{state.unsettled_rollback}) and changes were made on it since; segments stored "
            f"before the rollback may be missing from it: {SETTLE_HINT}"
        )
    return None
