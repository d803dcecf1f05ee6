"""Rollback detection: an older, diverged or edited index.sqlite is reported, never silently
accepted; a crash between the index commit and the index.state write is no false alarm."""

from __future__ import annotations

import io
import shutil
import sqlite3
from pathlib import Path

import pytest

from lifeveil.vault import IndexRollbackError, SegmentMetadata, Vault
from lifeveil.vault.rollback import RollbackGuard

from .vault_support import PASSPHRASE, copy_index, restore_index


def _ingest(vault: Vault, data: bytes) -> str:
    return vault.ingest(io.BytesIO(data), SegmentMetadata(source_name="x")).segment_id


def _open(root: Path) -> Vault:
    return Vault.open(root, passphrase=PASSPHRASE)


def _state_generation(root: Path) -> int:
    return int.from_bytes((root / "index.state").read_bytes()[25:33])


def test_every_change_bumps_the_generation(vault: Vault, vault_dir: Path) -> None:
    assert vault.index_check.ok and vault.index_check.generation == 0
    assert vault.warnings() == []
    segment_id = _ingest(vault, b"a" * 100)
    _ingest(vault, b"b" * 100)
    vault.delete(segment_id)
    assert _state_generation(vault_dir) == 3
    vault.close()
    with _open(vault_dir) as again:
        assert again.index_check.generation == again.index_check.vault_generation == 3
        assert again.index_check.ok and again.warnings() == []


def test_older_index_is_reported(vault: Vault, vault_dir: Path, tmp_path: Path) -> None:
    _ingest(vault, b"a" * 100)
    vault.close()
    backup = copy_index(vault_dir, tmp_path / "backup.sqlite")
    with _open(vault_dir) as again:
        _ingest(again, b"b" * 100)
    restore_index(backup, vault_dir)
    with _open(vault_dir) as rolled:
        check = rolled.index_check
        assert check.rolled_back and not check.altered and not check.ok
        assert (check.generation, check.vault_generation) == (1, 2)
        assert (
            "index.sqlite was rolled back: it is at change 1 but this vault reached change 2"
            in (check.problems[0])
        )
        with pytest.raises(IndexRollbackError, match="rolled back"):
            check.raise_if_not_ok()
        report = rolled.verify()
        assert not report.ok and not report.index_ok and report.problems == ()
    assert _state_generation(vault_dir) == 2  # the file is never lowered


def test_new_changes_do_not_hide_a_rollback(vault: Vault, vault_dir: Path, tmp_path: Path) -> None:
    """A device that keeps recording on a restored index pushes its generation past the
    file's; the rollback stays reported until the owner settles it."""
    vault.close()
    backup = copy_index(vault_dir, tmp_path / "backup.sqlite")
    with _open(vault_dir) as again:
        _ingest(again, b"lost key" * 10)
    restore_index(backup, vault_dir)
    with _open(vault_dir) as rolled:
        for i in range(3):
            _ingest(rolled, bytes([i]) * 50)
    with _open(vault_dir) as later:
        check = later.index_check
        assert check.generation == check.vault_generation == 4  # 0, then past 1: 2, 3, 4
        assert check.rolled_back and "rolled back earlier" in check.problems[0]
        assert "reached change 1" in check.problems[0]
        assert later.purge().settled
        assert later.index_check.ok and later.warnings() == []


def test_diverged_copies_are_reported(vault: Vault, vault_dir: Path, tmp_path: Path) -> None:
    """Two copies at the same generation with different segments (e.g. a sync conflict)."""
    vault.close()
    index_a = copy_index(vault_dir, tmp_path / "a.sqlite")
    state_a = shutil.copyfile(vault_dir / "index.state", tmp_path / "a.state")
    with _open(vault_dir) as v:
        _ingest(v, b"branch b")
    index_b = copy_index(vault_dir, tmp_path / "b.sqlite")
    restore_index(index_a, vault_dir)  # the whole backup, state file included: undetectable
    shutil.copyfile(state_a, vault_dir / "index.state")
    with _open(vault_dir) as v:
        assert v.index_check.ok
        _ingest(v, b"branch c")
    restore_index(index_b, vault_dir)
    with _open(vault_dir) as v:
        check = v.index_check
        assert check.generation == check.vault_generation == 1
        assert check.rolled_back and "diverged" in check.problems[0]


def test_rows_edited_outside_lifeveil_are_reported(vault: Vault, vault_dir: Path) -> None:
    segment_id = _ingest(vault, b"x" * 100)
    vault.close()
    with sqlite3.connect(vault_dir / "index.sqlite") as db:
        db.execute("DELETE FROM segments WHERE id = ?", (segment_id,))
    with _open(vault_dir) as v:
        assert v.index_check.altered and not v.index_check.rolled_back
        assert "do not match its authenticated state" in v.index_check.problems[0]
        assert not v.verify().ok
        assert v.purge().settled  # its file was quarantined; the owner gives it up
        assert v.index_check.ok


def test_edited_state_record_is_reported(vault: Vault, vault_dir: Path) -> None:
    _ingest(vault, b"x" * 100)
    vault.close()
    with sqlite3.connect(vault_dir / "index.sqlite") as db:
        (record,) = db.execute("SELECT value FROM vault WHERE key = 'state'").fetchone()
        forged = bytearray(record)
        forged[32] += 5  # a higher generation, to hide a rollback
        db.execute("UPDATE vault SET value = ? WHERE key = 'state'", (bytes(forged),))
    with _open(vault_dir) as v:
        assert v.index_check.altered
        assert "authenticated state failed its check" in v.index_check.problems[0]
        _ingest(v, b"more")  # changes keep working; the warning stays until settled
    with _open(vault_dir) as v:
        assert not v.index_check.ok
        assert v.adopt().settled and v.index_check.ok


def test_crash_between_index_commit_and_state_file_is_no_false_alarm(
    vault: Vault, vault_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the index commit but before index.state was written: the index is
    ahead of the file, which is normal; open refreshes the file."""
    _ingest(vault, b"a")
    monkeypatch.setattr(RollbackGuard, "publish", lambda self, record: None)
    _ingest(vault, b"b")
    vault.delete(vault.list()[0].segment_id)
    vault.close()
    monkeypatch.undo()
    assert _state_generation(vault_dir) == 1
    with _open(vault_dir) as again:
        assert again.index_check.ok and again.warnings() == []
        assert again.index_check.generation == 3
    assert _state_generation(vault_dir) == 3


def test_state_file_write_failure_is_a_warning_not_a_failed_ingest(
    vault: Vault, vault_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("lifeveil.vault.rollback.atomic_path", disk_full)
    segment_id = _ingest(vault, b"committed anyway")
    assert vault.info(segment_id).size == 16
    assert any("could not be updated (No space left on device)" in w for w in vault.warnings())


def test_missing_or_damaged_state_file_is_a_warning(vault: Vault, vault_dir: Path) -> None:
    _ingest(vault, b"a")
    vault.close()
    (vault_dir / "index.state").unlink()
    with _open(vault_dir) as v:
        assert v.index_check.ok
        assert "index.state is missing" in v.warnings()[0]
    assert _state_generation(vault_dir) == 1  # recreated
    (vault_dir / "index.state").write_bytes(b"garbage")
    with _open(vault_dir) as v:
        assert "index.state is damaged" in v.warnings()[0]
    with _open(vault_dir) as v:
        assert v.warnings() == []


def test_vault_from_before_rollback_tracking_starts_silently(vault: Vault, vault_dir: Path) -> None:
    _ingest(vault, b"a")
    vault.close()
    with sqlite3.connect(vault_dir / "index.sqlite") as db:
        db.execute("DELETE FROM vault WHERE key = 'state'")
    (vault_dir / "index.state").unlink()
    with _open(vault_dir) as v:
        assert v.index_check.ok and v.warnings() == []
        assert v.index_check.generation == 0
    assert _state_generation(vault_dir) == 0


def test_old_index_without_state_record_in_a_tracked_vault_is_reported(
    vault: Vault, vault_dir: Path
) -> None:
    """An index copy from before the upgrade, restored into a vault that tracks changes."""
    _ingest(vault, b"a")
    vault.close()
    with sqlite3.connect(vault_dir / "index.sqlite") as db:
        db.execute("DELETE FROM vault WHERE key = 'state'")
    with _open(vault_dir) as v:
        assert v.index_check.rolled_back
