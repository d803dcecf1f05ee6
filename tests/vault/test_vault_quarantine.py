"""The vault never deletes a file it cannot prove is garbage: quarantine, adopt and purge."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from lifeveil.errors import VaultError
from lifeveil.vault import SegmentMetadata, Vault

from .vault_support import (
    FAST_KDF,
    PASSPHRASE,
    copy_index,
    restore_index,
    segment_files,
    segment_path,
)


def _ingest(vault: Vault, data: bytes, name: str = "blob") -> str:
    return vault.ingest(io.BytesIO(data), SegmentMetadata(source_name=name)).segment_id


def _open(root: Path) -> Vault:
    return Vault.open(root, passphrase=PASSPHRASE)


@pytest.fixture
def rolled_back(vault: Vault, vault_dir: Path, tmp_path: Path) -> tuple[str, str, Path]:
    """The issue's repro: back up the index, ingest one more segment, restore the backup.

    Returns (old segment id, new segment id, the newer index copy)."""
    old = _ingest(vault, b"old" * 3000, "old")
    vault.close()
    backup = copy_index(vault_dir, tmp_path / "old.sqlite")
    with _open(vault_dir) as again:
        new = _ingest(again, b"new" * 4000, "new")
    newer = copy_index(vault_dir, tmp_path / "new.sqlite")
    restore_index(backup, vault_dir)
    return old, new, newer


def test_restored_old_index_quarantines_instead_of_deleting(
    vault_dir: Path, rolled_back: tuple[str, str, Path]
) -> None:
    old, new, _ = rolled_back
    before = segment_files(vault_dir)
    with _open(vault_dir) as vault:  # a read-only use: `vault list`
        assert [s.segment_id for s in vault.list()] == [old]
        after = segment_files(vault_dir)
        warnings = vault.warnings()
    assert before == sorted([f"segments/{old}.lvs", f"segments/{new}.lvs"])
    assert after == sorted([f"segments/{old}.lvs", f"quarantine/{new}.lvs"])  # nothing lost
    assert any("rolled back" in w for w in warnings)
    assert any("1 segment file(s) in quarantine/" in w for w in warnings)


def test_adopt_without_the_key_keeps_the_file(
    vault_dir: Path, rolled_back: tuple[str, str, Path]
) -> None:
    _, new, _ = rolled_back
    with _open(vault_dir) as vault:
        report = vault.adopt()
        assert report.adopted == () and not report.settled
        (reason,) = report.kept
        assert "key row is gone" in reason and "--from-index" in reason
        assert (vault_dir / "quarantine" / f"{new}.lvs").exists()
        assert not vault.index_check.ok


def test_adopt_from_the_newer_index_brings_the_segment_back(
    vault_dir: Path, rolled_back: tuple[str, str, Path]
) -> None:
    old, new, newer = rolled_back
    with _open(vault_dir) as vault:
        report = vault.adopt(newer)
        assert report.adopted == (new,) and report.kept == () and report.settled
        assert [s.segment_id for s in vault.list()] == [old, new]
        assert b"".join(vault.open_segment(new)) == b"new" * 4000
        assert vault.warnings() == []
        assert vault.verify().ok
    with _open(vault_dir) as again:  # settled for good
        assert again.warnings() == [] and again.index_check.ok


def test_purge_deletes_quarantined_files_and_settles(
    vault_dir: Path, rolled_back: tuple[str, str, Path]
) -> None:
    old, new, _ = rolled_back
    with _open(vault_dir) as vault:
        report = vault.purge()
        assert report.purged == (f"{new}.lvs",) and report.settled
        assert segment_files(vault_dir) == [f"segments/{old}.lvs"]
        assert vault.warnings() == []
    with _open(vault_dir) as again:
        assert again.warnings() == [] and again.verify().ok


def test_adopt_refuses_a_tampered_file(vault_dir: Path, rolled_back: tuple[str, str, Path]) -> None:
    _, new, newer = rolled_back
    with _open(vault_dir):
        pass  # quarantines it
    quarantined = vault_dir / "quarantine" / f"{new}.lvs"
    data = bytearray(quarantined.read_bytes())
    data[100] ^= 0x01
    quarantined.write_bytes(bytes(data))
    with _open(vault_dir) as vault:
        report = vault.adopt(newer)
        assert report.adopted == ()
        assert "does not authenticate" in report.kept[0] and "chunk 0" in report.kept[0]
        assert quarantined.exists() and new not in {s.segment_id for s in vault.list()}


def test_adopt_refuses_an_index_of_another_vault(
    vault_dir: Path, rolled_back: tuple[str, str, Path], tmp_path: Path
) -> None:
    other = Vault.init(tmp_path / "other", passphrase=PASSPHRASE, kdf=FAST_KDF)
    other.close()
    with _open(vault_dir) as vault, pytest.raises(VaultError, match="another vault"):
        vault.adopt(tmp_path / "other" / "index.sqlite")
    with _open(vault_dir) as vault, pytest.raises(VaultError, match="no such index file"):
        vault.adopt(tmp_path / "missing.sqlite")


def test_ingest_killed_between_rename_and_commit_is_quarantined(
    vault: Vault, vault_dir: Path
) -> None:
    """The key of such a file is lost: it cannot be told apart from a rolled-back segment,
    so it is kept until the owner purges it."""
    keep = _ingest(vault, b"k" * 5000)
    writer = vault.open_writer()
    writer.write(b"never committed" * 100)
    writer._file.finish()  # renamed into segments/ ...
    writer._file.release()  # ... and the process dies before the index commit
    orphan = writer.segment_id
    vault.close()
    with _open(vault_dir) as again:
        assert [s.segment_id for s in again.list()] == [keep]
        assert any(orphan in note and "quarantine" in note for note in again.recovered)
        assert again.index_check.ok  # not a rollback: only the quarantine warning
        assert len(again.warnings()) == 1
        assert again.adopt().adopted == ()
        assert again.purge([orphan[:8]]).purged == (f"{orphan}.lvs",)
        assert again.warnings() == [] and again.verify().ok


def test_interrupted_delete_removes_the_keyless_file(vault: Vault, vault_dir: Path) -> None:
    """A delete marks the id; its file is provably garbage even if the process dies."""
    gone = _ingest(vault, b"g" * 5000)
    vault._remove_deleted_file = lambda segment_id: False  # dies right after the key went
    vault.delete(gone)
    assert segment_path(vault, gone).exists()
    vault.close()
    with _open(vault_dir) as again:
        assert not segment_path(again, gone).exists()
        assert any("deleted segment" in note for note in again.recovered)
        assert again.quarantined() == [] and again.warnings() == []
        assert again._index.deleting() == set()


def test_a_file_whose_row_exists_is_put_back_by_plain_adopt(vault: Vault, vault_dir: Path) -> None:
    segment_id = _ingest(vault, b"s" * 6000)
    vault.close()
    quarantine = vault_dir / "quarantine"
    quarantine.mkdir()
    segment_path(vault, segment_id).rename(quarantine / f"{segment_id}.lvs")
    with _open(vault_dir) as again:
        assert any("have their file in quarantine/" in w for w in again.warnings())
        problems = again.verify().problems
        assert len(problems) == 1 and "in quarantine/" in problems[0]
        purge = again.purge()
        assert purge.purged == () and "`lifeveil vault delete`" in purge.kept[0]
        assert again.adopt().adopted == (segment_id,)
        assert b"".join(again.open_segment(segment_id)) == b"s" * 6000
        assert again.warnings() == []


def test_quarantine_never_overwrites(vault: Vault, vault_dir: Path) -> None:
    name = f"{'ef' * 16}.lvs"
    vault.close()
    for content in (b"first", b"second"):
        (vault_dir / "segments" / name).write_bytes(content)
        _open(vault_dir).close()
    kept = sorted(p.read_bytes() for p in (vault_dir / "quarantine").iterdir())
    assert kept == [b"first", b"second"]
    with _open(vault_dir) as again:
        assert {f.segment_id for f in again.quarantined()} == {"ef" * 16}
        with pytest.raises(VaultError, match="no file in quarantine/ matches"):
            again.purge(["0123456789"])
        assert len(again.purge(["ef" * 8]).purged) == 2


def test_open_does_not_quarantine_a_live_commit(vault: Vault, vault_dir: Path) -> None:
    """Between rename and commit the writer holds the file's lock: another opener leaves it."""
    writer = vault.open_writer()
    writer.write(b"live" * 1000)
    seen = []
    commit = writer._commit

    def open_elsewhere_then_commit(info, key) -> None:  # noqa: ANN001
        with _open(vault_dir) as second:  # e.g. `vault list` while the agent commits
            seen.append((second.recovered, second.quarantined()))
        commit(info, key)

    writer._commit = open_elsewhere_then_commit
    info = writer.commit()
    assert seen == [((), [])]
    assert b"".join(vault.open_segment(info.segment_id)) == b"live" * 1000


def test_legacy_deleting_table_is_added(vault: Vault, vault_dir: Path) -> None:
    """Indexes made before the ``deleting`` table get it on open."""
    vault.close()
    with sqlite3.connect(vault_dir / "index.sqlite") as db:
        db.execute("DROP TABLE deleting")
    with _open(vault_dir) as again:
        assert again._index.deleting() == set()
