"""What ``lifeveil server ...`` commands share: options, the store they open, how they print.

Split from :mod:`lifeveil.server.cli` (which keeps the argument parsing and the commands);
nothing here imports a web framework or a database driver at module level.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import time
from collections.abc import Iterator

from lifeveil.errors import InputError
from lifeveil.server import admin
from lifeveil.server.config import CONFIG_FILE, ServerConfig
from lifeveil.server.store import ZStore
from lifeveil.transport.frame import WIRE_DTYPES


def add_wire_options(p: argparse.ArgumentParser) -> None:
    """``--z-dim``, ``--wire-dtype``, ``--store`` and ``--cert-name`` (init and run)."""
    p.add_argument("--z-dim", type=int, help="dimension of z (default 64; fixed per database)")
    p.add_argument(
        "--wire-dtype",
        choices=WIRE_DTYPES,
        help="uplink payload encoding: fp16, int8, or fsqL for an L-level fsq privatizer "
        "(exact, fewest bytes; the default privatizer is fsq5) (default: fp16)",
    )
    p.add_argument(
        "--store",
        metavar="NAME_OR_DSN",
        help="where z are stored, saved in server.toml on first init: 'sqlite' (default, a file "
        "in the data dir) or postgresql://USER@HOST:PORT/DB (PostgreSQL with pgvector; give the "
        "password by PGPASSWORD or ~/.pgpass)",
    )
    p.add_argument(
        "--cert-name",
        action="append",
        default=[],
        metavar="NAME",
        help="extra DNS name or IP for the self-signed certificate (repeatable)",
    )


def add_expiry_option(p: argparse.ArgumentParser) -> None:
    """``--expires-days`` for commands that issue a token."""
    p.add_argument(
        "--expires-days",
        type=float,
        metavar="DAYS",
        help="the token stops working after DAYS days (default: never; rotate to renew)",
    )


def expiry(args: argparse.Namespace) -> int | None:
    """``--expires-days`` as an expiry time in microseconds since the epoch (None: never)."""
    days = getattr(args, "expires_days", None)
    if days is None:
        return None
    if not days > 0:
        raise InputError(f"--expires-days must be > 0, got {days}")
    return time.time_ns() // 1000 + int(days * 86_400e6)


def when(time_us: int | None) -> str:
    """A time in microseconds since the epoch as UTC text (None: ``never``)."""
    if time_us is None:
        return "never"
    return dt.datetime.fromtimestamp(time_us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The data directory's config, with ``--z-dim``, ``--wire-dtype`` and ``--store``."""
    return ServerConfig.load(
        args.data_dir,
        z_dim=getattr(args, "z_dim", None),
        wire_dtype=getattr(args, "wire_dtype", None),
        **store_overrides(getattr(args, "store", None)),
    )


#: How a ``--store`` value that is a PostgreSQL URL begins.
POSTGRES_URL_PREFIXES = ("postgresql://", "postgres://")


def sqlite_or_dsn(store: str) -> str:
    """``--store sqlite|DSN`` of the measurement commands (``server bench``, ``demo
    load-test``): "" for sqlite, the URL for a PostgreSQL one, else a one-line InputError."""
    if store == "sqlite":
        return ""
    if store.startswith(POSTGRES_URL_PREFIXES):
        return store
    raise InputError(f"--store {store!r}: use sqlite or a postgresql:// URL")


def store_overrides(store: str | None) -> dict[str, str]:
    """``--store`` as config fields: a backend name, or a PostgreSQL URL (-> its DSN).

    >>> store_overrides("postgresql://lv@db/lifeveil")
    {'store': 'postgresql', 'store_dsn': 'postgresql://lv@db/lifeveil'}
    """
    if store is None:
        return {}
    if store.startswith(POSTGRES_URL_PREFIXES):
        return {"store": "postgresql", "store_dsn": store}
    if "://" in store:
        raise InputError(f"--store {store!r}: only postgresql:// URLs are supported")
    return {"store": store}


@contextlib.contextmanager
def store_from_args(args: argparse.Namespace) -> Iterator[ZStore]:
    """Open the data directory's store (it must exist) and close it afterwards."""
    if not (args.data_dir / CONFIG_FILE).is_file():
        raise InputError(
            f"{args.data_dir} is not a LifeVeil server data directory; create it with "
            f"`lifeveil server init --data-dir {args.data_dir}`"
        )
    store = admin.open_store(config_from_args(args))
    try:
        yield store
    finally:
        store.close()


def print_init(report: admin.InitReport, as_json: bool) -> None:
    """Print what ``init`` and ``run`` set up (the admin token only when it is new)."""
    info = {
        "data_dir": str(report.config.data_dir),
        "wire": report.config.wire.token(),
        "cert": str(report.config.cert_path),
        "cert_sha256": report.fingerprint,
    }
    if report.admin_token:
        info["admin_token"] = report.admin_token
    if as_json:
        print(json.dumps(info, indent=2), flush=True)
        return
    for key, value in info.items():
        print(f"{key}: {value}")
    if report.admin_token:
        print("The admin token is shown only now; store it somewhere safe.", flush=True)


def emit(args: argparse.Namespace, data: dict[str, object], secret: bool = True) -> None:
    """Print ``data`` as JSON or ``key: value`` lines; ``secret``: note the token is shown once."""
    if args.json:
        print(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        print(f"{key}: {value}")
    if secret:
        print("The token is shown only now; the server keeps only its hash.")
