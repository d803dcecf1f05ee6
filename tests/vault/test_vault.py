"""The Vault library: roundtrips, unlocking, tamper/truncation detection, crypto-shredding,
retention, recovery of interrupted ingests."""

from __future__ import annotations

import hashlib
import io
import shutil
import sqlite3
from pathlib import Path

import pytest

from lifeveil.errors import SegmentNotFoundError, VaultError, VaultIntegrityError, VaultKeyError
from lifeveil.ingest.video import iter_video_frames, probe_video
from lifeveil.vault import KdfParams, SegmentMetadata, Vault, generate_key_file
from lifeveil.vault.format import SEGMENT_HEADER_SIZE, TAG_BYTES, Keyslot
from lifeveil.vault.segment import read_segment_file

from .vault_support import CHUNK, DAY, FAST_KDF, PASSPHRASE, T0, FakeClock, segment_path, snapshot

STORED_CHUNK = CHUNK + TAG_BYTES


def _ingest_bytes(vault: Vault, data: bytes, name: str = "blob") -> str:
    return vault.ingest(io.BytesIO(data), SegmentMetadata(source_name=name)).segment_id


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# ---- roundtrips ------------------------------------------------------------------------------


def test_real_video_roundtrip(vault: Vault, bikes: Path, tmp_path: Path) -> None:
    original = bikes.read_bytes()
    info = vault.ingest(bikes)
    assert info.source_name == "bikes.mp4"
    assert info.size == len(original)
    assert info.sha256 == hashlib.sha256(original).hexdigest()
    assert info.duration_s == pytest.approx(probe_video(bikes).seconds)
    assert info.created_at == T0
    assert info.stored_size == segment_path(vault, info.segment_id).stat().st_size
    assert original not in segment_path(vault, info.segment_id).read_bytes()
    assert vault.list() == [info]

    out = tmp_path / "exported.mp4"
    assert vault.export(info.segment_id, out) == info
    assert out.read_bytes() == original
    assert out.stat().st_mode & 0o077 == 0  # decrypted video is owner-only
    frames = list(iter_video_frames(out, max_frames=3))
    assert frames[0].image.ndim == 3 and len(frames) == 3
    assert b"".join(vault.open_segment(info.segment_id[:8])) == original


def test_reopen_lists_the_same_segments(vault: Vault, vault_dir: Path) -> None:
    ids = [_ingest_bytes(vault, bytes([i]) * 5000, f"cam{i}") for i in range(3)]
    vault.close()
    with Vault.open(vault_dir, passphrase=PASSPHRASE) as again:
        assert [s.segment_id for s in again.list()] == ids
        assert [s.source_name for s in again.list()] == ["cam0", "cam1", "cam2"]
        assert b"".join(again.open_segment(ids[1])) == b"\x01" * 5000


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK])
def test_stream_sizes_around_chunk_boundaries(vault: Vault, size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    pieces = [data[i : i + 1000] for i in range(0, size, 1000)]
    info = vault.ingest_stream(pieces, SegmentMetadata(duration_s=1.5, extra={"fps": "30"}))
    assert (info.size, info.duration_s, dict(info.extra)) == (size, 1.5, {"fps": "30"})
    assert b"".join(vault.open_segment(info.segment_id)) == data
    assert vault.verify().ok


def test_writer_commits_on_exit_and_aborts_on_error(vault: Vault) -> None:
    with vault.open_writer(SegmentMetadata(source_name="cam0")) as writer:
        for _ in range(5):
            writer.write(b"x" * 3000)
    assert vault.info(writer.segment_id).size == 15000

    with pytest.raises(RuntimeError), vault.open_writer() as failing:
        failing.write(b"y" * 10000)
        raise RuntimeError("camera unplugged")
    assert [s.segment_id for s in vault.list()] == [writer.segment_id]
    assert not list((vault.root / "tmp").iterdir())
    assert not segment_path(vault, failing.segment_id).exists()
    with pytest.raises(VaultError, match="already aborted"):
        failing.write(b"z")


# ---- unlocking -------------------------------------------------------------------------------


def test_wrong_passphrase_is_clear_and_changes_nothing(vault: Vault, vault_dir: Path) -> None:
    _ingest_bytes(vault, b"secret video" * 1000)
    (vault_dir / "tmp" / "leftover.lvs.part").write_bytes(b"partial")
    vault.close()
    before = snapshot(vault_dir)
    with pytest.raises(VaultKeyError, match="wrong passphrase or key file"):
        Vault.open(vault_dir, passphrase="Correct horse battery staple")
    with pytest.raises(VaultKeyError, match="key file, not a passphrase|passphrase, not a key"):
        Vault.open(vault_dir, key_file=__file__)
    assert snapshot(vault_dir) == before  # not even the leftover was cleaned


def test_key_file_mode(tmp_path: Path) -> None:
    key_file = generate_key_file(tmp_path / "keys" / "vault.bin")
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_bytes()) == 32
    with pytest.raises(VaultError, match="refusing to overwrite"):
        generate_key_file(key_file)
    with Vault.init(tmp_path / "v", key_file=key_file) as vault:
        segment_id = _ingest_bytes(vault, b"frames" * 999)
    with Vault.open(tmp_path / "v", key_file=key_file) as vault:
        assert b"".join(vault.open_segment(segment_id)) == b"frames" * 999

    other = generate_key_file(tmp_path / "other.bin")
    with pytest.raises(VaultKeyError, match="wrong passphrase or key file"):
        Vault.open(tmp_path / "v", key_file=other)
    with pytest.raises(VaultKeyError, match="with a key file"):
        Vault.open(tmp_path / "v", passphrase=PASSPHRASE)
    short = tmp_path / "short.bin"
    short.write_bytes(b"too short")
    with pytest.raises(VaultKeyError, match="at least 32"):
        Vault.open(tmp_path / "v", key_file=short)


def test_rewrap_raises_kdf_costs_and_changes_passphrase(vault: Vault, vault_dir: Path) -> None:
    segment_id = _ingest_bytes(vault, b"a" * 10000)
    stronger = KdfParams(time_cost=2, memory_kib=16, parallelism=1)
    vault.rewrap(passphrase="new passphrase", kdf=stronger)
    vault.close()
    slot = Keyslot.from_bytes((vault_dir / "vault.key").read_bytes())
    assert (slot.time_cost, slot.memory_kib, slot.parallelism) == (2, 16, 1)
    assert (vault_dir / "vault.key").stat().st_mode & 0o777 == 0o600
    with pytest.raises(VaultKeyError):
        Vault.open(vault_dir, passphrase=PASSPHRASE)
    with Vault.open(vault_dir, passphrase="new passphrase") as again:
        assert b"".join(again.open_segment(segment_id)) == b"a" * 10000


def test_not_a_vault_and_non_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match="not a LifeVeil vault"):
        Vault.open(tmp_path, passphrase=PASSPHRASE)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(VaultError, match="not an empty folder"):
        Vault.init(tmp_path, passphrase=PASSPHRASE, kdf=FAST_KDF)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_missing_index_is_refused_without_deleting_segments(vault: Vault, vault_dir: Path) -> None:
    segment_id = _ingest_bytes(vault, b"v" * 9000)
    vault.close()
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (vault_dir / name).unlink(missing_ok=True)
    with pytest.raises(VaultIntegrityError, match="restore it from a backup"):
        Vault.open(vault_dir, passphrase=PASSPHRASE)
    assert (vault_dir / "segments" / f"{segment_id}.lvs").exists()


# ---- tampering and truncation ----------------------------------------------------------------


@pytest.fixture
def two_segments(vault: Vault, bikes: Path) -> tuple[str, str]:
    """The real clip (125 chunks) and a second, untouched segment."""
    return vault.ingest(bikes).segment_id, _ingest_bytes(vault, b"other" * 3000, "other")


def _export_fails(vault: Vault, segment_id: str, out: Path, match: str) -> None:
    with pytest.raises(VaultIntegrityError, match=match):
        vault.export(segment_id, out)
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")] == []


def test_tampered_chunk_is_detected(
    vault: Vault, two_segments: tuple[str, str], tmp_path: Path
) -> None:
    clip, other = two_segments
    before = snapshot(vault.root / "segments")
    _flip_byte(segment_path(vault, clip), SEGMENT_HEADER_SIZE + 3 * STORED_CHUNK + 100)
    _export_fails(vault, clip, tmp_path / "out.mp4", "chunk 3 of 125 failed authentication")
    report = vault.verify()
    assert report.checked == 2 and len(report.problems) == 1 and clip in report.problems[0]
    assert b"".join(vault.open_segment(other)) == b"other" * 3000
    after = snapshot(vault.root / "segments")
    assert after[f"{other}.lvs"] == before[f"{other}.lvs"]


def test_tampered_header_is_detected(
    vault: Vault, two_segments: tuple[str, str], tmp_path: Path
) -> None:
    clip, _ = two_segments
    _flip_byte(segment_path(vault, clip), 30)  # inside the nonce prefix: every chunk's AD
    _export_fails(vault, clip, tmp_path / "out.mp4", "chunk 0 of 125 failed authentication")


def test_truncated_file_is_detected(
    vault: Vault, two_segments: tuple[str, str], tmp_path: Path
) -> None:
    clip, other = two_segments
    path = segment_path(vault, clip)
    data = path.read_bytes()
    path.write_bytes(data[:-1000])
    _export_fails(vault, clip, tmp_path / "out.mp4", "truncated or extended")
    path.write_bytes(data + b"\x00")
    _export_fails(vault, clip, tmp_path / "out.mp4", "truncated or extended")
    assert vault.verify().problems and vault.export(other, tmp_path / "ok.bin").size == 15000


def test_truncation_at_a_chunk_boundary_fails_authentication(
    vault: Vault, two_segments: tuple[str, str], tmp_path: Path
) -> None:
    """Even without the size recorded in the index, the missing final flag gives it away."""
    clip, _ = two_segments
    path = segment_path(vault, clip)
    cut = tmp_path / "cut.lvs"
    cut.write_bytes(path.read_bytes()[: SEGMENT_HEADER_SIZE + 10 * STORED_CHUNK])
    _, key = vault._unlock(vault._index.get(clip))  # test-only access to the segment key
    with pytest.raises(VaultIntegrityError, match="without its final chunk"):
        list(read_segment_file(cut, key, bytes.fromhex(clip)))


def test_reordered_and_dropped_chunks_are_detected(
    vault: Vault, two_segments: tuple[str, str], tmp_path: Path
) -> None:
    clip, _ = two_segments
    path = segment_path(vault, clip)
    data = path.read_bytes()
    header, body = data[:SEGMENT_HEADER_SIZE], data[SEGMENT_HEADER_SIZE:]
    chunks = [body[i : i + STORED_CHUNK] for i in range(0, len(body), STORED_CHUNK)]

    path.write_bytes(header + b"".join([chunks[0], chunks[2], chunks[1], *chunks[3:]]))
    _export_fails(vault, clip, tmp_path / "out.mp4", "chunk 1 of 125 failed authentication")

    _, key = vault._unlock(vault._index.get(clip))
    dropped = tmp_path / "dropped.lvs"
    dropped.write_bytes(header + b"".join([chunks[0], *chunks[2:]]))
    with pytest.raises(VaultIntegrityError, match="chunk 1 of 124 failed authentication"):
        list(read_segment_file(dropped, key, bytes.fromhex(clip)))


def test_swapped_segment_files_are_detected(
    vault: Vault, two_segments: tuple[str, str], tmp_path: Path
) -> None:
    clip, other = two_segments
    shutil.copyfile(segment_path(vault, other), segment_path(vault, clip))
    with pytest.raises(VaultIntegrityError, match="files swapped or renamed"):
        b"".join(vault.open_segment(clip))


def test_tampered_index_entry_is_detected(vault: Vault, two_segments: tuple[str, str]) -> None:
    clip, other = two_segments
    with sqlite3.connect(vault.root / "index.sqlite") as db:
        (meta,) = db.execute("SELECT sealed_meta FROM segments WHERE id=?", (clip,)).fetchone()
        meta = bytearray(meta)
        meta[20] ^= 1
        db.execute("UPDATE segments SET sealed_meta=? WHERE id=?", (bytes(meta), clip))
    with pytest.raises(VaultIntegrityError, match="metadata in index.sqlite failed"):
        vault.info(clip)
    assert vault.info(other).size == 15000
    report = vault.verify()
    assert len(report.problems) == 1 and clip in report.problems[0]
    vault.delete(clip)  # a damaged segment can still be deleted
    assert vault.verify().ok


# ---- deleting ------------------------------------------------------------------------------


def test_delete_leaves_other_segments_intact(vault: Vault) -> None:
    a = _ingest_bytes(vault, b"A" * 20000, "a")
    b = _ingest_bytes(vault, b"B" * 20000, "b")
    b_file = segment_path(vault, b).read_bytes()
    assert vault.delete(a[:10]) == a
    assert [s.segment_id for s in vault.list()] == [b]
    assert segment_path(vault, b).read_bytes() == b_file
    assert b"".join(vault.open_segment(b)) == b"B" * 20000
    assert vault.verify().ok
    with pytest.raises(SegmentNotFoundError):
        vault.delete(a)


def test_delete_crypto_shreds_the_segment_key(
    vault: Vault, vault_dir: Path, tmp_path: Path
) -> None:
    keep = _ingest_bytes(vault, b"keep" * 5000, "keep")
    gone = _ingest_bytes(vault, b"gone" * 5000, "gone-camera")
    with sqlite3.connect(vault_dir / "index.sqlite") as db:
        wrapped, sealed_meta = db.execute(
            "SELECT wrapped_key, sealed_meta FROM segments WHERE id=?", (gone,)
        ).fetchone()
    _, segment_key = vault._unlock(vault._index.get(gone))
    ciphertext_copy = tmp_path / "stolen.lvs"
    shutil.copyfile(segment_path(vault, gone), ciphertext_copy)

    vault.delete(gone)

    vault_bytes = b"".join(p.read_bytes() for p in vault_dir.rglob("*") if p.is_file())
    for secret in (wrapped, wrapped[12:28], sealed_meta, segment_key):
        assert bytes(secret) not in vault_bytes  # not in the db, its WAL or any segment
    assert not segment_path(vault, gone).exists()
    with pytest.raises(SegmentNotFoundError):
        vault.open_segment(gone)

    # Putting the ciphertext back does not resurrect it: with no key it is quarantined, and
    # adopt cannot bring it back.
    shutil.copyfile(ciphertext_copy, segment_path(vault, gone))
    vault.close()
    with Vault.open(vault_dir, passphrase=PASSPHRASE) as again:
        assert [s.segment_id for s in again.list()] == [keep]
        assert any(gone in note and "quarantine" in note for note in again.recovered)
        assert not segment_path(again, gone).exists()
        report = again.adopt()
        assert report.adopted == () and "key row is gone" in report.kept[0]
        with pytest.raises(SegmentNotFoundError):
            again.export(gone, tmp_path / "x")


# ---- retention -----------------------------------------------------------------------------


def test_retention_with_injected_clock(vault: Vault, clock: FakeClock) -> None:
    ages = {}
    for day in (0, 1, 5, 9):
        clock.now = T0 + day * DAY
        ages[day] = _ingest_bytes(vault, bytes([day]) * 1000, f"day{day}")
    clock.now = T0 + 10 * DAY

    planned = vault.apply_retention(3, dry_run=True)
    assert [s.segment_id for s in planned] == [ages[0], ages[1], ages[5]]
    assert len(vault.list()) == 4

    deleted = vault.apply_retention(3, now=T0 + 7 * DAY)
    assert [s.source_name for s in deleted] == ["day0", "day1"]
    assert [s.segment_id for s in vault.list()] == [ages[5], ages[9]]
    assert vault.apply_retention(3, now=T0 + 7 * DAY) == []
    with pytest.raises(VaultError, match="non-negative"):
        vault.apply_retention(-1)


# ---- crash recovery (simulated here; real kills in test_vault_crash.py) ----------------------


def test_leftovers_are_handled_on_open_and_reported(vault: Vault, vault_dir: Path) -> None:
    """A temp file is provably garbage and removed; an unknown segment file is quarantined."""
    keep = _ingest_bytes(vault, b"k" * 7000)
    vault.close()
    part = vault_dir / "tmp" / f"{'ab' * 16}.lvs.part"
    part.write_bytes(b"half a segment")
    orphan = vault_dir / "segments" / f"{'cd' * 16}.lvs"
    orphan.write_bytes(b"renamed but never committed")
    with Vault.open(vault_dir, passphrase=PASSPHRASE) as again:
        assert not part.exists() and not orphan.exists()
        assert (
            vault_dir / "quarantine" / orphan.name
        ).read_bytes() == b"renamed but never committed"
        report = again.verify()
        assert report.ok and report.checked == 1
        assert len(report.recovered) == 2
        assert report.quarantined == (orphan.name,)
        assert [s.segment_id for s in again.list()] == [keep]


def test_open_does_not_touch_a_live_ingest(vault: Vault, vault_dir: Path) -> None:
    writer = vault.open_writer(SegmentMetadata(source_name="live"))
    writer.write(b"r" * 50000)
    with Vault.open(vault_dir, passphrase=PASSPHRASE) as second:  # e.g. the CLI, meanwhile
        assert second.recovered == ()
        assert second.verify().recovered == ()
    info = writer.commit()
    assert b"".join(vault.open_segment(info.segment_id)) == b"r" * 50000


def test_resolve_prefixes(vault: Vault) -> None:
    segment_id = _ingest_bytes(vault, b"p")
    assert vault.resolve(segment_id[:6].upper()) == segment_id
    with pytest.raises(VaultError, match="at least 6 hex"):
        vault.resolve("abc")
    with pytest.raises(SegmentNotFoundError, match="vault list"):
        vault.resolve("0" * 32 if not segment_id.startswith("0") else "f" * 32)
