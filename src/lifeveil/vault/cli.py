"""``lifeveil vault``: a thin command line over ``lifeveil.vault.Vault``.

The vault folder comes from ``--vault DIR`` or ``$LIFEVEIL_VAULT``. The secret is a key file
(``--key-file``) or a passphrase from ``--passphrase-file``, ``$LIFEVEIL_VAULT_PASSPHRASE``
or an interactive prompt, in that order. Warnings about the vault (an index rolled back,
files in quarantine) go to stderr, one line each, so ``list --json`` stays parseable.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lifeveil.errors import InputError, VaultError
from lifeveil.vault.display import (
    adopt_lines,
    format_size,
    purge_lines,
    retention_lines,
    segment_line,
    segment_table,
    segments_json,
    verify_lines,
    verify_verdict,
)
from lifeveil.vault.keys import KdfParams
from lifeveil.vault.records import DEFAULT_CHUNK_SIZE, SegmentMetadata
from lifeveil.vault.secret import PASSPHRASE_ENV, create_vault, unlock_secret
from lifeveil.vault.vault import Vault

VAULT_ENV = "LIFEVEIL_VAULT"


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
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="file to write (its folder must exist), or - for stdout (streamed: a damaged "
        "chunk stops it with an error and exit 1)",
    )
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p.set_defaults(func=run_export)


def _add_delete(actions: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = actions.add_parser(
        "delete",
        parents=[common],
        help="crypto-shred segments (irreversible)",
        description="Destroy the segments' keys, then their files: the data cannot be recovered. "
        "Asks for confirmation on a terminal; elsewhere pass --yes.",
    )
    p.add_argument("segments", nargs="+", metavar="ID", help="segment ids (or unique prefixes)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
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
    p.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (needed off a terminal)"
    )
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


# ---- opening --------------------------------------------------------------------------------


def _vault_dir(args: argparse.Namespace) -> Path:
    if not args.vault:
        raise VaultError(f"no vault folder: pass --vault DIR or set ${VAULT_ENV}")
    return Path(args.vault)


def _open(args: argparse.Namespace, *, warn: bool = True, **options: object) -> Vault:
    root = _vault_dir(args)  # before the secret: a missing folder is reported first
    secret = unlock_secret(args.key_file, args.passphrase_file)
    vault = Vault.open(root, **secret, **options)  # type: ignore[arg-type]
    if warn:
        _print_warnings(vault.warnings())
    return vault


def _print(lines: list[str]) -> None:
    for line in lines:
        print(line)


def _print_warnings(lines: list[str] | tuple[str, ...]) -> None:
    for line in lines:
        print(f"lifeveil vault: warning: {line}", file=sys.stderr)


# ---- actions --------------------------------------------------------------------------------


def run_init(args: argparse.Namespace) -> int:
    """``lifeveil vault init``."""
    root = _vault_dir(args)
    kdf = KdfParams(args.argon2_time_cost, args.argon2_memory_kib, args.argon2_parallelism)
    vault, new_key_file = create_vault(
        root, kdf=kdf, key_file=args.key_file, passphrase_file=args.passphrase_file
    )
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
            source = sys.stdin.buffer if name == "-" else Path(name)
            print(segment_line(vault.ingest(source, meta)))
    return 0


def run_list(args: argparse.Namespace) -> int:
    """``lifeveil vault list``."""
    with _open(args) as vault:
        segments = vault.list()
    _print([segments_json(segments)] if args.json else segment_table(segments))
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``lifeveil vault export``; ``-o -`` streams the plaintext to stdout."""
    if args.output == "-":
        with _open(args) as vault:
            info = vault.info(args.segment)
            for block in vault.open_segment(args.segment):
                sys.stdout.buffer.write(block)
            sys.stdout.buffer.flush()
        print(f"exported {info.segment_id} ({format_size(info.size)}) to stdout", file=sys.stderr)
        return 0
    folder = Path(args.output).resolve().parent
    if not folder.is_dir():
        raise InputError(f"{folder} does not exist - create it first, or write elsewhere")
    with _open(args) as vault:
        info = vault.export(args.segment, args.output, overwrite=args.force)
    print(f"exported {info.segment_id} ({format_size(info.size)}) to {args.output}")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    """``lifeveil vault delete``."""
    with _open(args) as vault:
        full_ids = [vault.resolve(s) for s in args.segments]  # all resolve before any delete
        if not args.yes:
            _confirm("delete", f"{len(full_ids)} segment(s)")
        for segment_id in full_ids:
            vault.delete(segment_id)
            print(f"deleted {segment_id} (key destroyed)")
    return 0


def run_retention(args: argparse.Namespace) -> int:
    """``lifeveil vault retention``."""
    with _open(args) as vault:
        doomed = vault.apply_retention(args.older_than_days, dry_run=True)
        if doomed and not args.dry_run and not args.yes:
            _confirm(
                "retention", f"{len(doomed)} segment(s) older than {args.older_than_days:g} days"
            )
        expired = vault.apply_retention(args.older_than_days, dry_run=args.dry_run)
    _print(retention_lines(expired, args.older_than_days, args.dry_run))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """``lifeveil vault verify``; fails (non-zero) if any segment is damaged or the index is
    rolled back or altered. Quarantined files alone are warnings."""
    with _open(args, warn=False) as vault:
        report = vault.verify()
    _print(verify_lines(report))
    _print_warnings(report.warnings)
    print(verify_verdict(report))
    return 0


def run_adopt(args: argparse.Namespace) -> int:
    """``lifeveil vault adopt``."""
    with _open(args, warn=False) as vault:
        report = vault.adopt(args.from_index)
        remaining = vault.warnings()
    _print(adopt_lines(report))
    _print_warnings(remaining)
    return 0


def run_purge(args: argparse.Namespace) -> int:
    """``lifeveil vault purge``; destructive, so it asks (or needs --yes)."""
    with _open(args, warn=False) as vault:
        chosen = vault.select_quarantined(args.files or None)
        if chosen and not args.yes:
            what = f"{len(chosen)} quarantined file(s) ({format_size(sum(f.size for f in chosen))})"
            _confirm("purge", what)
        report = vault.purge([f.path.name for f in chosen])
        remaining = vault.warnings()
    _print(purge_lines(report))
    _print_warnings(remaining)
    return 0


def _confirm(verb: str, what: str) -> None:
    """Ask before destroying ``what``; off a terminal, refuse (the user passes --yes)."""
    if not sys.stdin.isatty():
        raise InputError(
            f"{verb} would delete {what} for good: pass --yes to confirm (stdin is not a "
            "terminal, so it cannot ask)"
        )
    answer = input(f"Delete {what} for good? This cannot be undone. [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise VaultError(f"{verb} cancelled; nothing was deleted")
