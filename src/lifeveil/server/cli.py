"""``lifeveil server ...``: run the server and administer tenants, devices and heads.

Commands that change the database work on the data directory directly (whoever can read it
is the administrator); they are safe to run while the server is up (SQLite WAL).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from lifeveil.errors import InputError, UnknownNameError
from lifeveil.server import admin
from lifeveil.server.config import CONFIG_FILE, ServerConfig
from lifeveil.server.store import ZStore
from lifeveil.transport.protocol import UPLINK_PATH

DEFAULT_DATA_DIR = os.environ.get("LIFEVEIL_SERVER_DIR", ".lifeveil/server")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``lifeveil server`` and its subcommands."""
    parser = subparsers.add_parser(
        "server",
        help="run the z server (HTTPS + WebSocket) and manage tenants, devices and heads",
        description=__doc__,
    )
    sub = parser.add_subparsers(dest="server_command", metavar="SUBCOMMAND", required=True)
    _add_init(sub)
    _add_run(sub)
    _add_tenant(sub)
    _add_user(sub)
    _add_device(sub)
    _add_revoke(sub)
    _add_train_head(sub)
    _add_status(sub)


def _common(parser: argparse.ArgumentParser, func: Callable[[argparse.Namespace], int]) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(DEFAULT_DATA_DIR),
        help=f"server data directory (default: $LIFEVEIL_SERVER_DIR or {DEFAULT_DATA_DIR})",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(func=func)


def _add_init(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="create data dir, database, TLS certificate, admin token")
    _wire_options(p)
    _common(p, cmd_init)


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="serve HTTPS + WSS (initialises the data dir on first run)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8443, help="TCP port (default 8443)")
    _wire_options(p)
    _common(p, cmd_run)


def _wire_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--z-dim", type=int, help="dimension of z (default 64; fixed per database)")
    p.add_argument("--wire-dtype", choices=("fp16", "int8"), help="uplink payload encoding")
    p.add_argument(
        "--cert-name",
        action="append",
        default=[],
        metavar="NAME",
        help="extra DNS name or IP for the self-signed certificate (repeatable)",
    )


def _add_tenant(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("add-tenant", help="create a tenant and its first user (prints token)")
    p.add_argument("name", help="tenant name, e.g. a household")
    p.add_argument("--user", default="owner", help="first user's name (default: owner)")
    _common(p, cmd_add_tenant)


def _add_user(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("add-user", help="add a user to a tenant (prints token)")
    p.add_argument("--tenant", required=True)
    p.add_argument("name")
    _common(p, cmd_add_user)


def _add_device(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("register-device", help="register a device in a tenant (prints token)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--name", required=True, help="device name, unique within the tenant")
    _common(p, cmd_register_device)


def _add_revoke(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("revoke-device", help="disable a device token (its records stay)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--name", required=True)
    _common(p, cmd_revoke_device)


def _add_train_head(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-head", help="train a classification head from labelled z")
    p.add_argument("--tenant", required=True)
    p.add_argument("--name", required=True, help="head name, e.g. activity")
    p.add_argument(
        "--labels",
        required=True,
        type=Path,
        help="CSV with columns device,seq,label (stored records) or label,z0..z{d-1}",
    )
    _common(p, cmd_train_head)


def _add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="tenants, devices, record counts and heads")
    _common(p, cmd_status)


# -- commands ---------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    """``lifeveil server init``."""
    report = admin.init_data_dir(_config(args), tuple(args.cert_name))
    _print_init(report, args.json)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``lifeveil server run``."""
    from lifeveil.server.run import serve  # uvicorn only when serving

    report = admin.init_data_dir(_config(args), tuple(args.cert_name))
    _print_init(report, args.json)
    print(
        f"serving https://{args.host}:{args.port}  uplink wss://{args.host}:{args.port}"
        f"{UPLINK_PATH}",
        flush=True,
    )
    serve(report.config, args.host, args.port)
    return 0


def cmd_add_tenant(args: argparse.Namespace) -> int:
    """``lifeveil server add-tenant``."""
    with _store(args) as store:
        tenant, user = admin.create_tenant(store, args.name, args.user)
    assert user is not None
    _emit(args, {"tenant": tenant.name, "user": user.principal.name, "token": user.token})
    return 0


def cmd_add_user(args: argparse.Namespace) -> int:
    """``lifeveil server add-user``."""
    with _store(args) as store:
        issued = admin.issue_principal(
            store, "user", args.name, admin.require_tenant(store, args.tenant)
        )
    _emit(args, {"tenant": args.tenant, "user": issued.principal.name, "token": issued.token})
    return 0


def cmd_register_device(args: argparse.Namespace) -> int:
    """``lifeveil server register-device``."""
    with _store(args) as store:
        tenant = admin.require_tenant(store, args.tenant)
        issued = admin.issue_principal(store, "device", args.name, tenant)
    config = _config(args)
    _emit(
        args,
        {
            "tenant": tenant.name,
            "device": issued.principal.name,
            "token": issued.token,
            "wire": config.wire.token(),
            "cafile": str(config.cert_path.resolve()),
        },
    )
    return 0


def cmd_revoke_device(args: argparse.Namespace) -> int:
    """``lifeveil server revoke-device``."""
    with _store(args) as store:
        tenant = admin.require_tenant(store, args.tenant)
        device = store.get_device(tenant.id, args.name)
        if device is None:
            raise UnknownNameError(f"tenant {tenant.name!r} has no active device {args.name!r}")
        store.revoke_principal(device.id)
    _emit(args, {"tenant": tenant.name, "device": args.name, "revoked": True}, secret=False)
    return 0


def cmd_train_head(args: argparse.Namespace) -> int:
    """``lifeveil server train-head``."""
    with _store(args) as store:
        tenant = admin.require_tenant(store, args.tenant)
        head = admin.train_head_from_csv(store, tenant, args.name, args.labels)
    summary = {
        "tenant": tenant.name,
        "head": head.name,
        "classes": list(head.classes),
        "n_train": head.n_train,
        **head.metrics,
    }
    _emit(args, summary, secret=False)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """``lifeveil server status``."""
    with _store(args) as store:
        tenants = []
        for tenant in store.list_tenants():
            devices = [d.__dict__ for d in store.list_devices(tenant.id)]
            heads = [h.name for h in store.list_heads(tenant.id)]
            tenants.append({"tenant": tenant.name, "devices": devices, "heads": heads})
    if args.json:
        print(json.dumps({"tenants": tenants}, indent=2))
        return 0
    for t in tenants:
        print(f"tenant {t['tenant']}: heads {', '.join(t['heads']) or '(none)'}")
        for d in t["devices"]:
            print(f"  device {d['name']}: {d['n_records']} records")
    if not tenants:
        print("no tenants yet; create one with `lifeveil server add-tenant NAME`")
    return 0


# -- helpers ------------------------------------------------------------------------------------
def _config(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig.load(
        args.data_dir,
        z_dim=getattr(args, "z_dim", None),
        wire_dtype=getattr(args, "wire_dtype", None),
    )


@contextlib.contextmanager
def _store(args: argparse.Namespace) -> Iterator[ZStore]:
    if not (args.data_dir / CONFIG_FILE).is_file():
        raise InputError(
            f"{args.data_dir} is not a LifeVeil server data directory; create it with "
            f"`lifeveil server init --data-dir {args.data_dir}`"
        )
    store = admin.open_store(_config(args))
    try:
        yield store
    finally:
        store.close()


def _print_init(report: admin.InitReport, as_json: bool) -> None:
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


def _emit(args: argparse.Namespace, data: dict[str, object], secret: bool = True) -> None:
    if args.json:
        print(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        print(f"{key}: {value}")
    if secret:
        print("The token is shown only now; the server keeps only its hash.")
