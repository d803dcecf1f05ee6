"""The library behind ``lifeveil vault``: text views (``display``) and secrets (``secret``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifeveil.errors import VaultError, VaultIntegrityError, VaultKeyError
from lifeveil.vault import PurgeReport, SegmentInfo, VerifyReport
from lifeveil.vault.display import (
    format_size,
    purge_lines,
    retention_lines,
    segment_table,
    verify_lines,
    verify_verdict,
)
from lifeveil.vault.rollback import IndexRollbackError
from lifeveil.vault.secret import PASSPHRASE_ENV, create_vault, read_passphrase

from .vault_support import FAST_KDF, T0


def _info(segment_id: str, size: int, duration_s: float | None = None) -> SegmentInfo:
    return SegmentInfo(segment_id, T0, size, "0" * 64, size + 100, "cam0", duration_s)


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (3 << 20, "3.0 MiB")],
)
def test_format_size(n: int, text: str) -> None:
    assert format_size(n) == text
    assert format_size(5 << 30) == "5.0 GiB"


def test_segment_table_is_aligned_and_totals() -> None:
    lines = segment_table([_info("a" * 32, 2048, 9.5), _info("b" * 32, 10)])
    assert lines[0].split() == ["ID", "CREATED", "(UTC)", "SOURCE", "SIZE", "DURATION"]
    assert lines[1].endswith("2.0 KiB  9.5 s") and "2023-11-14 22:13:20" in lines[1]
    assert lines[2].endswith("10 B     -")
    assert lines[0].index("SOURCE") == lines[1].index("cam0") == lines[2].index("cam0")
    assert lines[-1] == "2 segment(s), 2.0 KiB"


def test_retention_lines_say_would_on_a_dry_run() -> None:
    lines = retention_lines([_info("c" * 32, 1)], 7.0, dry_run=True)
    assert lines == [
        f"would delete {'c' * 32}  2023-11-14 22:13:20  cam0",
        "would delete 1 segment(s) older than 7 days",
    ]


def test_verify_verdict_raises_the_typed_error() -> None:
    assert verify_verdict(VerifyReport(3)) == "OK: 3 segment(s) decrypted and authenticated"
    with pytest.raises(VaultIntegrityError, match="1 of 3 segment"):
        verify_verdict(VerifyReport(3, problems=("bad",)))
    with pytest.raises(IndexRollbackError, match="not the vault's latest state"):
        verify_verdict(VerifyReport(3, index_ok=False))
    report = VerifyReport(1, ("x",), ("r",), quarantined=("q.lvs",))
    assert verify_lines(report) == ["recovered: r", "QUARANTINED: quarantine/q.lvs", "DAMAGED: x"]


def test_purge_lines_fill_in_the_kept_count() -> None:
    report = PurgeReport(("a.lvs",), ("b.lvs: in use",), settled=True)
    lines = purge_lines(report)
    assert lines[:2] == ["purged quarantine/a.lvs", "kept: b.lvs: in use"]
    assert lines[-1] == "1 purged, 1 kept" and "accepted" in lines[2]


def test_read_passphrase_order_and_refusals(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "from env")
    file = tmp_path / "pass.txt"
    file.write_text("from file\n", encoding="utf-8")
    assert read_passphrase(str(file), confirm=False) == "from file"
    assert read_passphrase(None, confirm=False) == "from env"
    monkeypatch.setenv(PASSPHRASE_ENV, "")
    with pytest.raises(VaultKeyError, match="empty"):
        read_passphrase(None, confirm=False)


def test_create_vault_removes_a_key_file_it_made_when_init_fails(tmp_path: Path) -> None:
    key_file = tmp_path / "new.key"
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "something").write_text("not empty")
    with pytest.raises(VaultError, match="not an empty folder"):
        create_vault(occupied, kdf=FAST_KDF, key_file=str(key_file))
    assert not key_file.exists()
    vault, created = create_vault(tmp_path / "v", kdf=FAST_KDF, key_file=str(key_file))
    with vault:
        assert created and key_file.stat().st_size == 32
