"""`lifeveil vault ...` end to end through lifeveil.cli.main.main."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from lifeveil.cli.main import main
from lifeveil.vault import Vault

from .vault_support import PASSPHRASE

FAST = ["--argon2-time-cost", "1", "--argon2-memory-kib", "8", "--argon2-parallelism", "1"]


@pytest.fixture
def cli_vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A vault created by `vault init`, with LIFEVEIL_VAULT and the passphrase file set."""
    monkeypatch.delenv("LIFEVEIL_VAULT_PASSPHRASE", raising=False)
    root = tmp_path / "vault"
    secret = tmp_path / "passphrase.txt"
    secret.write_text(PASSPHRASE + "\n")
    monkeypatch.setenv("LIFEVEIL_VAULT", str(root))
    assert main(["vault", "init", "--passphrase-file", str(secret), *FAST]) == 0
    monkeypatch.setenv("LIFEVEIL_VAULT_PASSPHRASE", PASSPHRASE)
    return root


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str, expected: str) -> None:
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("lifeveil vault: error: ")
    assert expected in err


def test_cli_lifecycle(cli_vault: Path, bikes: Path, tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    code, out, _ = _run(["vault", "ingest", str(bikes), "--chunk-size", "4096"], capsys)
    assert code == 0
    segment_id = out.split()[0]
    assert len(segment_id) == 32 and "bikes.mp4" in out

    code, out, _ = _run(["vault", "list"], capsys)
    header, row, total = out.splitlines()
    assert header.split()[:3] == ["ID", "CREATED", "(UTC)"]
    assert row.startswith(segment_id) and "bikes.mp4" in row and "10.0 s" in row
    assert "497.9 KiB" in row and total.startswith("1 segment(s)")

    code, out, _ = _run(["vault", "list", "--json"], capsys)
    assert json.loads(out)[0]["size"] == bikes.stat().st_size

    out_file = tmp_path / "back.mp4"
    code, out, _ = _run(["vault", "export", segment_id[:8], "-o", str(out_file)], capsys)
    assert code == 0 and out_file.read_bytes() == bikes.read_bytes()
    code, _, err = _run(["vault", "export", segment_id, "-o", str(out_file)], capsys)
    _one_line_error(code, err, "already exists")
    assert _run(["vault", "export", segment_id, "-o", str(out_file), "--force"], capsys)[0] == 0

    code, out, _ = _run(["vault", "verify"], capsys)
    assert code == 0 and "OK: 1 segment(s)" in out

    code, out, _ = _run(["vault", "retention", "--older-than-days", "0", "--dry-run"], capsys)
    assert code == 0 and f"would delete {segment_id}" in out
    code, out, _ = _run(["vault", "retention", "--older-than-days", "30"], capsys)
    assert code == 0 and "deleted 0 segment(s)" in out

    code, _, err = _run(["vault", "retention", "--older-than-days", "0"], capsys)
    _one_line_error(code, err, "pass --yes to confirm")  # stdin is not a terminal here
    code, _, err = _run(["vault", "delete", segment_id], capsys)
    _one_line_error(code, err, "pass --yes to confirm")
    code, out, _ = _run(["vault", "delete", segment_id, "--yes"], capsys)
    assert code == 0 and f"deleted {segment_id}" in out
    code, out, _ = _run(["vault", "list"], capsys)
    assert out.splitlines()[-1].startswith("0 segment(s)")


def test_cli_errors_are_one_line(cli_vault: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    capsys.readouterr()
    monkeypatch.setenv("LIFEVEIL_VAULT_PASSPHRASE", "not it")
    code, _, err = _run(["vault", "list"], capsys)
    _one_line_error(code, err, "wrong passphrase or key file")

    monkeypatch.setenv("LIFEVEIL_VAULT_PASSPHRASE", PASSPHRASE)
    code, _, err = _run(["vault", "export", "0123456789", "-o", str(tmp_path / "x")], capsys)
    _one_line_error(code, err, "no segment 0123456789")
    code, _, err = _run(["vault", "ingest", str(tmp_path / "missing.mp4")], capsys)
    _one_line_error(code, err, "no such file")
    code, _, err = _run(["vault", "list", "--vault", str(tmp_path)], capsys)
    _one_line_error(code, err, "not a LifeVeil vault")

    monkeypatch.delenv("LIFEVEIL_VAULT")
    code, _, err = _run(["vault", "list"], capsys)
    _one_line_error(code, err, "--vault DIR")


def test_cli_verify_fails_on_tampering(cli_vault: Path, tmp_path: Path, capsys) -> None:
    clip = tmp_path / "clip.bin"
    clip.write_bytes(b"raw video" * 10000)
    assert main(["vault", "ingest", str(clip), str(clip), "--chunk-size", "4096"]) == 0
    segment_file = sorted((cli_vault / "segments").iterdir())[0]
    data = bytearray(segment_file.read_bytes())
    data[5000] ^= 0x80
    segment_file.write_bytes(bytes(data))
    capsys.readouterr()
    code, out, err = _run(["vault", "verify"], capsys)
    _one_line_error(code, err, "1 of 2 segment(s) failed verification")
    assert f"DAMAGED: segment {segment_file.stem}: chunk 1 of 22 failed authentication" in out


def test_cli_key_file_mode_and_stdin(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("LIFEVEIL_VAULT", raising=False)
    root, key = tmp_path / "vault", tmp_path / "vault.key.bin"
    code, out, _ = _run(["vault", "init", "--vault", str(root), "--key-file", str(key)], capsys)
    assert code == 0 and "created key file" in out and len(key.read_bytes()) == 32

    piped = io.TextIOWrapper(io.BytesIO(b"piped camera bytes" * 500))
    monkeypatch.setattr("sys.stdin", piped)
    argv = ["vault", "ingest", "-", "--source", "cam0", "--duration", "2.5"]
    code, out, _ = _run([*argv, "--vault", str(root), "--key-file", str(key)], capsys)
    assert code == 0
    with Vault.open(root, key_file=key) as vault:
        (info,) = vault.list()
        assert (info.source_name, info.duration_s, info.size) == ("cam0", 2.5, 9000)

    code, _, err = _run(["vault", "list", "--vault", str(root)], capsys)
    _one_line_error(code, err, "no passphrase")  # stdin is not a terminal: no prompt


# ---- index rollback, quarantine, adopt and purge (issue 9) ----------------------------------


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def rolled_back_cli(cli_vault: Path, tmp_path: Path, capsys) -> tuple[Path, str]:
    """`cp vault/index.sqlite old; vault ingest f; cp old vault/index.sqlite` (the repro).

    Returns the newer index copy and the id of the segment only it knows."""
    first, second = tmp_path / "a.bin", tmp_path / "f.bin"
    first.write_bytes(b"first" * 1000)
    second.write_bytes(b"second" * 1000)
    assert main(["vault", "ingest", str(first)]) == 0
    shutil.copyfile(cli_vault / "index.sqlite", tmp_path / "old.sqlite")
    assert main(["vault", "ingest", str(second)]) == 0
    new_id = capsys.readouterr().out.splitlines()[-1].split()[0]
    shutil.copyfile(cli_vault / "index.sqlite", tmp_path / "new.sqlite")
    shutil.copyfile(tmp_path / "old.sqlite", cli_vault / "index.sqlite")
    return tmp_path / "new.sqlite", new_id


def test_cli_rollback_repro_keeps_every_file_and_warns(
    cli_vault: Path, rolled_back_cli: tuple[Path, str], capsys
) -> None:
    _, new_id = rolled_back_cli
    before = _all_files(cli_vault)
    code, out, err = _run(["vault", "list"], capsys)
    assert code == 0 and out.splitlines()[-1].startswith("1 segment(s)")
    after = _all_files(cli_vault)
    assert len(after) == len(before)  # the issue: 4 files became 3
    assert f"quarantine/{new_id}.lvs" in after and f"segments/{new_id}.lvs" in before
    warnings = err.splitlines()
    assert len(warnings) == 2 and all(w.startswith("lifeveil vault: warning: ") for w in warnings)
    assert "index.sqlite was rolled back: it is at change 1 but this vault reached change 2" in err
    assert "1 segment file(s) in quarantine/ are not in index.sqlite (kept, not deleted)" in err

    code, out, err = _run(["vault", "list", "--json"], capsys)
    assert len(json.loads(out)) == 1 and "rolled back" in err  # stdout stays JSON

    code, out, err = _run(["vault", "verify"], capsys)
    assert code != 0 and f"QUARANTINED: quarantine/{new_id}.lvs" in out
    assert err.splitlines()[-1].startswith("lifeveil vault: error: 1 segment(s) decrypted")
    assert "not the vault's latest state" in err.splitlines()[-1]


def test_cli_adopt_from_the_newer_index(
    cli_vault: Path, rolled_back_cli: tuple[Path, str], capsys
) -> None:
    newer, new_id = rolled_back_cli
    code, out, _ = _run(["vault", "adopt"], capsys)
    assert code == 0 and "key row is gone" in out and "0 adopted, 1 still in quarantine" in out
    code, out, err = _run(["vault", "adopt", "--from-index", str(newer)], capsys)
    assert code == 0 and f"adopted {new_id}" in out and "accepted" in out and err == ""
    code, out, err = _run(["vault", "list"], capsys)
    assert out.splitlines()[-1].startswith("2 segment(s)") and err == ""
    code, out, err = _run(["vault", "verify"], capsys)
    assert code == 0 and "OK: 2 segment(s)" in out and err == ""


def test_cli_purge_needs_yes_without_a_terminal(
    cli_vault: Path, rolled_back_cli: tuple[Path, str], capsys
) -> None:
    _, new_id = rolled_back_cli
    _run(["vault", "list"], capsys)  # quarantines
    code, _, err = _run(["vault", "purge"], capsys)
    _one_line_error(code, err, "pass --yes to confirm")
    assert (cli_vault / "quarantine" / f"{new_id}.lvs").exists()
    code, out, err = _run(["vault", "purge", "--yes"], capsys)
    assert code == 0 and f"purged quarantine/{new_id}.lvs" in out and err == ""
    assert not (cli_vault / "quarantine" / f"{new_id}.lvs").exists()
    code, _, err = _run(["vault", "verify"], capsys)
    assert code == 0 and err == ""


@pytest.mark.parametrize(("answer", "purged"), [("n", False), ("y", True)])
def test_cli_purge_asks_on_a_terminal(
    cli_vault: Path,
    rolled_back_cli: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys,
    answer: str,
    purged: bool,
) -> None:
    _, new_id = rolled_back_cli
    _run(["vault", "list"], capsys)
    asked = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or answer)
    code, _, err = _run(["vault", "purge", new_id[:8]], capsys)
    assert "Delete 1 quarantined file(s)" in asked[0] and "cannot be undone" in asked[0]
    assert (code == 0) is purged
    assert (cli_vault / "quarantine" / f"{new_id}.lvs").exists() is not purged
    if not purged:
        _one_line_error(code, err, "purge cancelled; nothing was deleted")


def test_export_to_stdout_and_into_a_missing_folder(
    cli_vault: Path, bikes: Path, tmp_path: Path, capsysbinary
) -> None:
    assert main(["vault", "ingest", str(bikes)]) == 0
    segment_id = capsysbinary.readouterr().out.split()[0].decode()
    assert main(["vault", "export", segment_id, "-o", "-"]) == 0
    out, err = capsysbinary.readouterr()
    assert out == bikes.read_bytes() and b"to stdout" in err
    assert not Path("-").exists()
    missing = tmp_path / "no" / "such" / "folder" / "x.mp4"
    assert main(["vault", "export", segment_id, "-o", str(missing)]) == 2
    assert b"does not exist - create it first" in capsysbinary.readouterr().err
    assert not missing.parent.exists()
