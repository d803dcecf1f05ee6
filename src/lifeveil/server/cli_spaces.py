"""``lifeveil server migrate`` and ``lifeveil server spaces``: representation spaces from the
administrator's shell (issue 14).

``migrate`` applies an adapter file (``lifeveil adapt`` output) to a tenant's stored z in the
calling process, printing progress; killed midway, it resumes where it stopped when run again
with the same file (a running server also resumes it when it next starts).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from lifeveil.errors import InputError
from lifeveil.server import admin
from lifeveil.server.cli_support import store_from_args, when
from lifeveil.server.migrate import read_adapter, run_migration, start_migration
from lifeveil.server.store_spaces import MigrationInfo

Common = Callable[[argparse.ArgumentParser, Callable[[argparse.Namespace], int]], None]


def add_parsers(sub: argparse._SubParsersAction, common: Common) -> None:
    """Register ``migrate`` and ``spaces`` under ``lifeveil server``."""
    p = sub.add_parser(
        "migrate",
        help="apply an adapter to a tenant's stored z (old privatizer version -> new); "
        "resumable by rerunning",
        description=__doc__,
    )
    p.add_argument("--tenant", required=True)
    p.add_argument("--adapter", required=True, type=Path, help="NAME.safetensors from adapt")
    p.add_argument("--batch", type=int, default=2_000, help="rows per transaction (2000)")
    common(p, cmd_migrate)
    p = sub.add_parser("spaces", help="a tenant's representation spaces and migrations")
    p.add_argument("--tenant", required=True)
    common(p, cmd_spaces)


def cmd_migrate(args: argparse.Namespace) -> int:
    """``lifeveil server migrate``."""
    if args.batch < 1:
        raise InputError(f"--batch {args.batch}: give a positive number of rows")
    try:
        data = Path(args.adapter).read_bytes()
    except OSError as exc:
        raise InputError(f"{args.adapter}: cannot read the adapter file ({exc.strerror})") from None
    adapter = read_adapter(data)
    with store_from_args(args) as store:
        tenant = admin.require_tenant(store, args.tenant)
        migration = start_migration(store, tenant.id, adapter)
        admin.audit(store, admin.CLI_ACTOR, "migrate", f"{tenant.name}/{migration.id}")
        if not args.json:
            print(
                f"migration {migration.id}: {adapter.old_version} -> {adapter.new_version}, "
                f"{migration.done} z done before this run"
            )
        progress = None if args.json else _print_progress
        final = run_migration(store, migration, adapter, batch=args.batch, progress=progress)
    if args.json:
        print(json.dumps(final.as_dict(), indent=2))
    else:
        print(f"migration {final.id} {final.status}: {final.done} z in space {final.new_version}")
    return 0


def _print_progress(migration: MigrationInfo, done: int, total: int) -> None:
    share = f" ({100 * done / total:.0f} %)" if total else ""
    print(f"  {done} of {total} z{share}", flush=True)


def cmd_spaces(args: argparse.Namespace) -> int:
    """``lifeveil server spaces``."""
    with store_from_args(args) as store:
        tenant = admin.require_tenant(store, args.tenant)
        spaces = store.list_spaces(tenant.id)
        migrations = store.list_migrations(tenant.id)
    if args.json:
        doc = {
            "spaces": [s.as_dict() for s in spaces],
            "migrations": [m.as_dict() for m in migrations],
        }
        print(json.dumps(doc, indent=2))
        return 0
    for s in spaces:
        mark = "*" if s.is_default else " "
        print(f"{mark} {s.version or '(undeclared)':16} tag {s.tag:5}  {s.n_records} z")
    for m in migrations:
        print(
            f"migration {m.id}: {m.old_version} -> {m.new_version} {m.status}, {m.done} z, "
            f"started {when(m.started_us)} {m.message}".rstrip()
        )
    return 0
