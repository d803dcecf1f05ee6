"""``lifeveil vault``: a thin command line over ``lifeveil.vault.Vault``.

The vault folder comes from ``--vault DIR`` or ``$LIFEVEIL_VAULT``. The secret is a key file
(``--key-file``) or a passphrase from ``--passphrase-file``, ``$LIFEVEIL_VAULT_PASSPHRASE``
or an interactive prompt, in that order. Warnings about the vault (an index rolled back,
files in quarantine) go to stderr, one line each, so ``list --json`` stays parseable.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from lifeveil.errors import VaultError, VaultIntegrityError, VaultKeyError
from lifeveil.vault.keys import KdfParams, generate_key_file
from lifeveil.vault.quarantine import AdoptReport, PurgeReport
from lifeveil.vault.rollback import IndexRollbackError
from lifeveil.vault.vault import DEFAULT_CHUNK_SIZE, SegmentInfo, SegmentMetadata, Vault

VAULT_ENV = "LIFEVEIL_VAULT"
PASSPHRASE_ENV = "LIFEVEIL_VAULT_PASSPHRASE"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``lifeveil vault`` and its actions."""
    parser = sub.add_parser(
        "vault",
        help="encrypted on-device storage of raw video segments",
        description=(
            "Store raw video segments encrypted on the device (AES-256-GCM, a key per "
            "segment, master key wrapped by an Argon2id passphrase or a key file)."
        ),
    )
    actions = parser.add_subparsers(dest="vault_command", metavar="ACTION", required=True)
    common = _common_options()
    _add_init(actions, common)
    _add_ingest(actions, common)
    _add_list(actions, common)
    _add_export(actions, common)
    _add_delete(actions, common)
    _add_retention(actions, common)
    _add_verify(actions, common)
    _add_adopt(actions, common)
    _add_purge(actions, common)


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--vault",
        metavar="DIR",
        default=os.environ.get(VAULT_ENV),
        help=f"vault folder (default: ${VAULT_ENV})",
    )
    secret = common.add_mutually_exclusive_group()
    secret.add_argument(
        "--passphrase-file",
        metavar="FILE",
        help=f"read the passphrase from FILE (else ${PASSPHRASE_ENV}, else a prompt)",
    )
    secret.add_argument("--key-file", metavar="FILE", help="unlock with a key file instead")
    return common


def _add_init(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = actions.add_parser(
        "init",
        parents=[common],
        help="create a new vault",
        description="Create a vault in a new or empty folder. With --key-file FILE, FILE is "
        "created with 32 random bytes if it does not exist: keep it safe, it is the only key.",
    )
    defaults = KdfParams()
    p.add_argument(
        "--argon2-time-cost",
        type=int,
        default=defaults.time_cost,
        metavar="N",
        help="Argon2id passes (default: %(default)s)",
    )
    p.add_argument(
        "--argon2-memory-kib",
        type=int,
        default=defaults.memory_kib,
        metavar="KIB",
        help="Argon2id memory in KiB (default: %(default)s)",
    )
    p.add_argument(
        "--argon2-parallelism",
        type=int,
        default=defaults.parallelism,
        metavar="N",
        help="Argon2id lanes (default: %(default)s)",
    )
    p.set_defaults(func=run_init)


def _add_ingest(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = actions.add_parser("ingest", parents=[common], help="encrypt files into the vault")
    p.add_argument("files", nargs="+", metavar="FILE", help="files to store; '-' reads stdin")
    p.add_argument("--source", help="source name to record (default: the file name)")
    p.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="duration to record (default: probed from the video)",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        metavar="BYTES",
        help="plaintext bytes per authenticated chunk (default: %(default)s)",
    )
    p.set_defaults(func=run_ingest)


def _add_list(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = actions.add_parser("list", parents=[common], help="list stored segments")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_list)


def _add_export(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = actions.add_parser("export", parents=[common], help="decrypt a segment to a file")
    p.add_argument("segment", metavar="ID", help="segment id (or a unique prefix)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p.set_defaults(func=run_export)


def _add_delete(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = actions.add_parser(
        "delete",
        parents=[common],
        help="crypto-shred segments (irreversible)",
        description="Destroy the segments' keys, then their files: the data cannot be recovered.",
    )
    p.add_argument("segments", nargs="+", metavar="ID", help="segment ids (or unique prefixes)")
    p.set_defaults(func=run_delete)


def _add_retention(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = actions.add_parser("retention", parents=[common], help="delete segments older than N days")
    p.add_argument(
        "--older-than-days",
        type=float,
        required=True,
        metavar="N",
        help="crypto-shred segments created more than N days ago",
    )
    p.add_argument("--dry-run", action="store_true", help="only print what would be deleted")
    p.set_defaults(func=run_retention)


def _add_verify(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = actions.add_parser("verify", parents=[common], help="decrypt and check every segment")
    p.set_defaults(func=run_verify)


def _add_adopt(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = actions.add_parser(
        "adopt",
        parents=[common],
        help="put quarantined segment files back into the vault",
        description="Re-register quarantined segment files whose key is in index.sqlite or in "
        "another copy of it (--from-index) and that decrypt and authenticate in full. Files "
        "whose key is gone stay quarantined. With nothing left in quarantine, the index is "
        "accepted as the vault's state (clears an index rollback warning).",
    )
    p.add_argument(
        "--from-index",
        metavar="FILE",
        help="another copy of this vault's index.sqlite (e.g. the newer one) to take keys from",
    )
    p.set_defaults(func=run_adopt)


def _add_purge(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = actions.add_parser(
        "purge",
        parents=[common],
        help="delete quarantined segment files (irreversible)",
        description="Delete files from the vault's quarantine/ for good. Asks for confirmation "
        "on a terminal; elsewhere pass --yes. With nothing left in quarantine, the index is "
        "accepted as the vault's state (clears an index rollback warning).",
    )
    p.add_argument(
        "files",
        nargs="*",
        metavar="NAME",
        help="quarantined file names or segment id prefixes (default: all)",
    )
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=run_purge)


# ---- secrets --------------------------------------------------------------------------------


def _vault_dir(args: argparse.Namespace) -> Path:
    if not args.vault:
        raise VaultError(f"no vault folder: pass --vault DIR or set ${VAULT_ENV}")
    return Path(args.vault)


def _read_passphrase(args: argparse.Namespace, *, confirm: bool) -> str:
    if args.passphrase_file:
        try:
            text = Path(args.passphrase_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise VaultKeyError(
                f"{args.passphrase_file}: cannot read passphrase file ({exc.strerror})"
            ) from None
        passphrase = text.removesuffix("\n").removesuffix("\r")
    elif os.environ.get(PASSPHRASE_ENV) is not None:
        passphrase = os.environ[PASSPHRASE_ENV]
    else:
        passphrase = _prompt_passphrase(confirm)
    if not passphrase:
        raise VaultKeyError("the passphrase is empty; choose a non-empty passphrase")
    return passphrase


def _prompt_passphrase(confirm: bool) -> str:
    if not sys.stdin.isatty():
        raise VaultKeyError(
            f"no passphrase: use --passphrase-file, ${PASSPHRASE_ENV} or --key-file, or run "
            "interactively"
        )
    passphrase = getpass.getpass("Vault passphrase: ")
    if confirm and getpass.getpass("Repeat passphrase: ") != passphrase:
        raise VaultKeyError("the two passphrases differ; nothing was created")
    return passphrase


def _secret(args: argparse.Namespace, *, confirm: bool = False) -> dict[str, object]:
    if args.key_file:
        return {"key_file": args.key_file}
    return {"passphrase": _read_passphrase(args, confirm=confirm)}


def _open(args: argparse.Namespace, *, warn: bool = True, **options: object) -> Vault:
    vault = Vault.open(_vault_dir(args), **_secret(args), **options)  # type: ignore[arg-type]
    if warn:
        _print_warnings(vault.warnings())
    return vault


def _print_warnings(lines: list[str] | tuple[str, ...]) -> None:
    for line in lines:
        print(f"lifeveil vault: warning: {line}", file=sys.stderr)


# ---- actions --------------------------------------------------------------------------------


def run_init(args: argparse.Namespace) -> int:
    """``lifeveil vault init``."""
    root = _vault_dir(args)
    kdf = KdfParams(args.argon2_time_cost, args.argon2_memory_kib, args.argon2_parallelism)
    new_key_file = bool(args.key_file) and not Path(args.key_file).exists()
    if new_key_file:
        generate_key_file(args.key_file)
    try:
        vault = Vault.init(root, kdf=kdf, **_secret(args, confirm=True))  # type: ignore[arg-type]
    except BaseException:
        if new_key_file:  # it protects nothing yet
            Path(args.key_file).unlink(missing_ok=True)
        raise
    with vault:
        if new_key_file:
            print(f"created key file {args.key_file} (keep it safe: without it the vault is lost)")
        print(f"created vault {vault.vault_id} in {root}")
    return 0


def run_ingest(args: argparse.Namespace) -> int:
    """``lifeveil vault ingest``."""
    if args.files.count("-") > 1:
        raise VaultError("'-' (stdin) can be given only once")
    with _open(args, chunk_size=args.chunk_size) as vault:
        for name in args.files:
            meta = SegmentMetadata(source_name=args.source, duration_s=args.duration)
            if name == "-":
                info = vault.ingest(sys.stdin.buffer, meta)
            else:
                info = vault.ingest(Path(name), meta)
            print(f"{info.segment_id}  {_size(info.size)}  {info.source_name or '-'}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    """``lifeveil vault list``."""
    with _open(args) as vault:
        segments = vault.list()
    if args.json:
        print(json.dumps([_as_json(s) for s in segments], indent=2))
        return 0
    rows = [("ID", "CREATED (UTC)", "SOURCE", "SIZE", "DURATION")]
    rows += [_table_row(s) for s in segments]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"{len(segments)} segment(s), {_size(sum(s.size for s in segments))}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``lifeveil vault export``."""
    with _open(args) as vault:
        info = vault.export(args.segment, args.output, overwrite=args.force)
    print(f"exported {info.segment_id} ({_size(info.size)}) to {args.output}")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    """``lifeveil vault delete``."""
    with _open(args) as vault:
        full_ids = [vault.resolve(s) for s in args.segments]  # all resolve before any delete
        for segment_id in full_ids:
            vault.delete(segment_id)
            print(f"deleted {segment_id} (key destroyed)")
    return 0


def run_retention(args: argparse.Namespace) -> int:
    """``lifeveil vault retention``."""
    with _open(args) as vault:
        expired = vault.apply_retention(args.older_than_days, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for info in expired:
        print(f"{verb} {info.segment_id}  {_created(info)}  {info.source_name or '-'}")
    print(f"{verb} {len(expired)} segment(s) older than {args.older_than_days:g} days")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """``lifeveil vault verify``; fails (non-zero) if any segment is damaged or the index is
    rolled back or altered. Quarantined files alone are warnings."""
    with _open(args, warn=False) as vault:
        report = vault.verify()
    for note in report.recovered:
        print(f"recovered: {note}")
    for name in report.quarantined:
        print(f"QUARANTINED: quarantine/{name}")
    for problem in report.problems:
        print(f"DAMAGED: {problem}")
    _print_warnings(report.warnings)
    if report.problems:
        index = "" if report.index_ok else "; index.sqlite is not the vault's latest state either"
        raise VaultIntegrityError(
            f"{len(report.problems)} of {report.checked} segment(s) failed verification "
            f"(listed above); the others are intact{index}"
        )
    if not report.index_ok:
        raise IndexRollbackError(
            f"{report.checked} segment(s) decrypted and authenticated, but index.sqlite is not "
            "the vault's latest state (warning above): put the newer index.sqlite back, or "
            "settle with `lifeveil vault adopt` and `lifeveil vault purge`"
        )
    print(f"OK: {report.checked} segment(s) decrypted and authenticated")
    return 0


def run_adopt(args: argparse.Namespace) -> int:
    """``lifeveil vault adopt``."""
    with _open(args, warn=False) as vault:
        report = vault.adopt(args.from_index)
        remaining = vault.warnings()
    lines = [f"adopted {segment_id}" for segment_id in report.adopted]
    _print_settlement(lines, report, f"{len(report.adopted)} adopted, {{}} still in quarantine")
    _print_warnings(remaining)
    return 0


def run_purge(args: argparse.Namespace) -> int:
    """``lifeveil vault purge``; destructive, so it asks (or needs --yes)."""
    with _open(args, warn=False) as vault:
        chosen = vault.select_quarantined(args.files or None)
        if chosen and not args.yes:
            _confirm_purge(len(chosen), sum(f.size for f in chosen))
        report = vault.purge([f.path.name for f in chosen])
        remaining = vault.warnings()
    lines = [f"purged quarantine/{name}" for name in report.purged]
    _print_settlement(lines, report, f"{len(report.purged)} purged, {{}} kept")
    _print_warnings(remaining)
    return 0


def _print_settlement(done: list[str], report: AdoptReport | PurgeReport, summary: str) -> None:
    """What adopt/purge did: one line per file handled, per file kept (with the reason),
    whether the index is now accepted, and ``summary`` with the kept count filled in."""
    kept = report.kept
    for line in [*done, *(f"kept: {reason}" for reason in kept)]:
        print(line)
    if report.settled:
        print("index.sqlite accepted as the vault's state (the rollback warning is cleared)")
    print(summary.format(len(kept)))


def _confirm_purge(count: int, size: int) -> None:
    what = f"{count} quarantined file(s) ({_size(size)})"
    if not sys.stdin.isatty():
        raise VaultError(
            f"purge would delete {what} for good: pass --yes to confirm (stdin is not a "
            "terminal, so it cannot ask)"
        )
    answer = input(f"Delete {what} for good? This cannot be undone. [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise VaultError("purge cancelled; nothing was deleted")


# ---- formatting -----------------------------------------------------------------------------


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = n / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _created(info: SegmentInfo) -> str:
    return datetime.fromtimestamp(info.created_at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _table_row(info: SegmentInfo) -> tuple[str, str, str, str, str]:
    duration = "-" if info.duration_s is None else f"{info.duration_s:.1f} s"
    return (info.segment_id, _created(info), info.source_name or "-", _size(info.size), duration)


def _as_json(info: SegmentInfo) -> dict[str, object]:
    return {
        "id": info.segment_id,
        "created_at": info.created_at,
        "source_name": info.source_name,
        "size": info.size,
        "stored_size": info.stored_size,
        "duration_s": info.duration_s,
        "sha256": info.sha256,
        "extra": dict(info.extra),
    }
