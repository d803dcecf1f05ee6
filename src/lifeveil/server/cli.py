"""``lifeveil server ...``: run the server and administer tenants, devices and heads.

Commands that change the database work on the data directory directly (whoever can read it
is the administrator); they are safe to run while the server is up (SQLite WAL).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from lifeveil.server import admin, cli_spaces
from lifeveil.server import pg_store as _pg_store  # noqa: F401  (registers "postgresql")
from lifeveil.server.cli_support import (
    add_expiry_option,
    add_wire_options,
    config_from_args,
    emit,
    expiry,
    print_init,
    store_from_args,
    store_overrides,  # noqa: F401  (re-exported: callers import it from here)
    when,
)
from lifeveil.server.config import CONFIG_FILE
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
    _add_tokens(sub)
    _add_audit(sub)
    _add_train_head(sub)
    _add_status(sub)
    _add_bench(sub)
    cli_spaces.add_parsers(sub, _common)


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
    add_wire_options(p)
    _common(p, cmd_init)


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="serve HTTPS + WSS (initialises the data dir on first run)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8443, help="TCP port (default 8443)")
    add_wire_options(p)
    _common(p, cmd_run)


def _add_tenant(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("add-tenant", help="create a tenant and its first user (prints token)")
    p.add_argument("name", help="tenant name, e.g. a household")
    p.add_argument("--user", default="owner", help="first user's name (default: owner)")
    _common(p, cmd_add_tenant)


def _add_user(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("add-user", help="add a user to a tenant (prints token)")
    p.add_argument("--tenant", required=True)
    p.add_argument("name")
    p.add_argument(
        "--only-device",
        action="append",
        default=[],
        metavar="DEVICE",
        help="limit this user's queries to DEVICE's records (repeatable; default: every device)",
    )
    add_expiry_option(p)
    _common(p, cmd_add_user)


def _add_device(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("register-device", help="register a device in a tenant (prints token)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--name", required=True, help="device name, unique within the tenant")
    p.add_argument(
        "--allow-query",
        action="store_true",
        help="let the device token also query its own records (default: upload only)",
    )
    add_expiry_option(p)
    _common(p, cmd_register_device)


def _add_tokens(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokens", help="list, revoke or rotate admin, user and device tokens")
    tsub = p.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    q = tsub.add_parser("list", help="every token's owner, scopes and state (never the token)")
    q.add_argument("--tenant", help="only this tenant's tokens")
    _common(q, cmd_tokens_list)
    for action, func, text in (
        ("revoke", cmd_tokens_revoke, "disable a token at once (open sessions included)"),
        ("rotate", cmd_tokens_rotate, "issue a new token; the old one stops working at once"),
    ):
        q = tsub.add_parser(action, help=text)
        q.add_argument("kind", choices=("admin", "user", "device"))
        q.add_argument("name", help="the user's or device's name ('admin' for the admin)")
        q.add_argument("--tenant", help="the tenant (users and devices)")
        if action == "rotate":
            add_expiry_option(q)
        _common(q, func)


def _add_audit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="show the append-only log of administrative actions")
    p.add_argument("--last", type=int, default=50, metavar="N", help="entries (default 50)")
    _common(p, cmd_audit)


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


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark a store: ingest z/s, k-NN p50/p99 and recall@10 with N z stored",
    )
    p.add_argument("--n", type=int, action="append", help="z to preload (repeatable; 10000)")
    p.add_argument(
        "--store",
        default="sqlite",
        metavar="sqlite|DSN",
        help="sqlite (a fresh file per N, with its HNSW index) or a postgresql:// URL of an "
        "empty database (each run adds a tenant)",
    )
    p.add_argument("--z-dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=200, help="timed k-NN queries (200)")
    p.add_argument(
        "--extra",
        type=int,
        default=10_000,
        help="z ingested alone, then again while queries run (10000)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="stretches of ingest while querying, each between two alone ones (5)",
    )
    p.add_argument(
        "--query-rate",
        type=float,
        default=0.0,
        metavar="Q",
        help="k-NN queries per second while ingesting (0: back to back, the worst case)",
    )
    p.add_argument(
        "--knn-in-process",
        action="store_true",
        help="sqlite: keep the k-NN index in the benchmark's process, as a server with "
        "knn_process = false does (default: a worker process, as the server does)",
    )
    p.add_argument("--seed-z", type=Path, help=".npy of encoded z to centre the scenes on")
    p.add_argument("--out", type=Path, help="also write the reports to this JSON file")
    p.set_defaults(func=cmd_bench, json=False)


# -- commands ---------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    """``lifeveil server init``."""
    config = config_from_args(args)
    if not (config.data_dir / CONFIG_FILE).is_file() and config.store != "sqlite":
        admin.open_store(config).close()  # a wrong DSN fails here, before server.toml is saved
    report = admin.init_data_dir(config, tuple(args.cert_name))
    print_init(report, args.json)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``lifeveil server run``."""
    from lifeveil.server.run import serve  # uvicorn only when serving

    report = admin.init_data_dir(config_from_args(args), tuple(args.cert_name))
    print_init(report, args.json)
    print(
        f"serving https://{args.host}:{args.port}  uplink wss://{args.host}:{args.port}"
        f"{UPLINK_PATH}",
        flush=True,
    )
    serve(report.config, args.host, args.port)
    return 0


def cmd_add_tenant(args: argparse.Namespace) -> int:
    """``lifeveil server add-tenant``."""
    with store_from_args(args) as store:
        tenant, user = admin.create_tenant(store, args.name, args.user)
        admin.audit(store, admin.CLI_ACTOR, "add-tenant", tenant.name, f"first user {args.user}")
    assert user is not None
    emit(args, {"tenant": tenant.name, "user": user.principal.name, "token": user.token})
    return 0


def cmd_add_user(args: argparse.Namespace) -> int:
    """``lifeveil server add-user``."""
    with store_from_args(args) as store:
        scopes = admin.user_scopes(args.only_device)
        tenant = admin.require_tenant(store, args.tenant)
        issued = admin.issue_principal(store, "user", args.name, tenant, scopes, expiry(args))
        admin.audit(store, admin.CLI_ACTOR, "add-user", f"{tenant.name}/{args.name}", scopes)
    emit(args, {"tenant": args.tenant, "user": issued.principal.name, "token": issued.token})
    return 0


def cmd_register_device(args: argparse.Namespace) -> int:
    """``lifeveil server register-device``."""
    with store_from_args(args) as store:
        tenant = admin.require_tenant(store, args.tenant)
        scopes = admin.device_scopes(args.name, args.allow_query)
        issued = admin.issue_principal(store, "device", args.name, tenant, scopes, expiry(args))
        admin.audit(store, admin.CLI_ACTOR, "register-device", f"{tenant.name}/{args.name}", scopes)
    config = config_from_args(args)
    emit(
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
    with store_from_args(args) as store:
        device = admin.find_token_owner(store, "device", args.name, args.tenant)
        admin.revoke_token(store, device)
    emit(args, {"tenant": args.tenant, "device": args.name, "revoked": True}, secret=False)
    return 0


def cmd_tokens_list(args: argparse.Namespace) -> int:
    """``lifeveil server tokens list``."""
    with store_from_args(args) as store:
        tenant_id = admin.require_tenant(store, args.tenant).id if args.tenant else None
        tokens = store.list_tokens(tenant_id)
    now = time.time_ns() // 1000
    rows = [{**t.__dict__, "scopes": list(t.scopes), "state": t.state(now)} for t in tokens]
    if args.json:
        print(json.dumps({"tokens": rows}, indent=2))
        return 0
    print(f"{'state':8} {'kind':7} {'tenant/name':32} {'expires':20} scopes")
    for r in rows:
        owner = f"{r['tenant'] or '-'}/{r['name']}"
        print(
            f"{r['state']:8} {r['kind']:7} {owner:32} {when(r['expires_us']):20} "
            f"{' '.join(r['scopes'])}"
        )
    return 0


def cmd_tokens_revoke(args: argparse.Namespace) -> int:
    """``lifeveil server tokens revoke``."""
    with store_from_args(args) as store:
        admin.revoke_token(store, admin.find_token_owner(store, args.kind, args.name, args.tenant))
    emit(args, {"kind": args.kind, "name": args.name, "revoked": True}, secret=False)
    return 0


def cmd_tokens_rotate(args: argparse.Namespace) -> int:
    """``lifeveil server tokens rotate``."""
    with store_from_args(args) as store:
        owner = admin.find_token_owner(store, args.kind, args.name, args.tenant)
        issued = admin.rotate_token(store, owner, expiry(args))
    emit(args, {"kind": args.kind, "name": args.name, "token": issued.token})
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """``lifeveil server audit``."""
    with store_from_args(args) as store:
        entries = store.read_audit(max(1, args.last))
    if args.json:
        print(json.dumps({"audit": [e.__dict__ for e in entries]}, indent=2))
        return 0
    for e in entries:
        print(f"{when(e.time_us)}  {e.actor:24} {e.action:16} {e.target} {e.detail}".rstrip())
    if not entries:
        print("the audit log is empty")
    return 0


def cmd_train_head(args: argparse.Namespace) -> int:
    """``lifeveil server train-head``."""
    with store_from_args(args) as store:
        tenant = admin.require_tenant(store, args.tenant)
        head = admin.train_head_from_csv(store, tenant, args.name, args.labels)
        admin.audit(store, admin.CLI_ACTOR, "train-head", f"{tenant.name}/{head.name}")
    summary = {
        "tenant": tenant.name,
        "head": head.name,
        "classes": list(head.classes),
        "n_train": head.n_train,
        **head.metrics,
    }
    emit(args, summary, secret=False)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """``lifeveil server status``."""
    with store_from_args(args) as store:
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


def cmd_bench(args: argparse.Namespace) -> int:
    """``lifeveil server bench``."""
    from lifeveil.errors import InputError
    from lifeveil.server.store_bench import run_bench_command

    if args.query_rate < 0:
        raise InputError(f"--query-rate {args.query_rate}: give 0 (back to back) or more")
    if args.rounds < 1:
        raise InputError(f"--rounds {args.rounds}: give 1 or more")
    run_bench_command(
        args.store,
        args.n or [10_000],
        args.z_dim,
        args.queries,
        args.extra,
        args.seed_z,
        args.out,
        query_rate=args.query_rate,
        knn_process=not args.knn_in_process,
        rounds=args.rounds,
    )
    return 0
