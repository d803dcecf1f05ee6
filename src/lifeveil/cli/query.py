"""``lifeveil query``: ask a LifeVeil server from the shell (k-NN, timeline, classify, list, count,
representation spaces and migrations).

Uses the same client as the device agent: TLS verified against ``--cafile`` (the server's
``cert.pem``) or the system store, a fresh nonce and timestamp on every POST. The token is
read from a file (a bare token, or the JSON ``lifeveil device enroll`` writes), never from the
command line, so it does not end up in shell history.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from lifeveil.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``lifeveil query`` and its actions."""
    p = sub.add_parser(
        "query",
        help="query a LifeVeil server from the shell: knn, timeline, classify, list, count, "
        "spaces, migrate",
        description=__doc__,
    )
    actions = p.add_subparsers(dest="query_command", metavar="ACTION", required=True)
    q = actions.add_parser("knn", help="stored records most similar to a z (row of a z.npy)")
    _z_source(q)
    q.add_argument("-k", type=int, default=10, help="neighbours (default 10)")
    q.add_argument("--device", help="only this device's records")
    _space(q)
    _common(q, _knn)
    q = actions.add_parser("classify", help="apply a trained head to z (rows of a z.npy)")
    q.add_argument("--head", required=True, help="head name (see `lifeveil query list`)")
    _z_source(q, all_rows=True)
    _space(q)
    _common(q, _classify)
    q = actions.add_parser("timeline", help="labelled segments between two capture times")
    q.add_argument("--head", required=True)
    q.add_argument("--start", required=True, help="ISO time (2026-12-02T08:00) or Unix seconds")
    q.add_argument("--end", required=True, help="ISO time or Unix seconds")
    q.add_argument("--device", help="only this device's records")
    _space(q)
    _common(q, _timeline)
    q = actions.add_parser("list", help="devices (records, last seen) and trained heads")
    _space(q, "only the heads of this privatizer version's space")
    _common(q, _list)
    q = actions.add_parser("count", help="number of stored z, per device and in total")
    _space(q, "count the z of this privatizer version's space instead")
    _common(q, _count)
    q = actions.add_parser(
        "spaces", help="representation spaces (privatizer versions) and migrations"
    )
    _common(q, _spaces)
    q = actions.add_parser(
        "migrate", help="send an adapter (`lifeveil adapt` output); the server migrates stored z"
    )
    q.add_argument("--adapter", type=Path, required=True, help="NAME.safetensors")
    _common(q, _migrate)


def _common(p: argparse.ArgumentParser, func: Any) -> None:  # noqa: ANN401
    p.add_argument("--server", help="https://HOST:PORT (default: from --token-file's JSON)")
    p.add_argument(
        "--token-file",
        type=Path,
        required=True,
        help="file holding a user token (or a device.json from `lifeveil device enroll`)",
    )
    p.add_argument("--cafile", help="PEM to trust, e.g. the server's cert.pem")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=func)


def _space(p: argparse.ArgumentParser, help_: str | None = None) -> None:
    p.add_argument(
        "--space",
        metavar="VERSION",
        help=help_
        or "privatizer version whose z to use (default: the tenant's default space; "
        "see `lifeveil query spaces`)",
    )


def _z_source(p: argparse.ArgumentParser, all_rows: bool = False) -> None:
    p.add_argument("--z", type=Path, required=True, help="z.npy written by `lifeveil encode`")
    help_ = "row(s) of --z, e.g. 3 or 0:10 (default: all)" if all_rows else "row of --z (default 0)"
    p.add_argument("--row", default=None if all_rows else "0", help=help_)


# -- actions -----------------------------------------------------------------------------------
def _knn(args: argparse.Namespace) -> int:
    z = _load_z(args)
    with _client(args) as client:
        hits = client.knn(z[0], k=args.k, device=args.device, space=args.space)
    rows = [{**h.__dict__, "captured": _iso(h.timestamp_us)} for h in hits]
    return _emit(args, rows, ["device", "seq", "captured", "score"])


def _classify(args: argparse.Namespace) -> int:
    z = _load_z(args)
    with _client(args) as client:
        preds = client.classify(args.head, z, space=args.space)
    rows = [{"row": i, "label": p.label, "confidence": p.confidence} for i, p in enumerate(preds)]
    return _emit(args, rows, ["row", "label", "confidence"])


def _timeline(args: argparse.Namespace) -> int:
    start, end = _time_us(args.start, "--start"), _time_us(args.end, "--end")
    if end < start:
        raise InputError(f"--end ({args.end}) is before --start ({args.start})")
    with _client(args) as client:
        segments = client.timeline(args.head, start, end, device=args.device, space=args.space)
    rows = [
        {
            "label": s.label,
            "start": _iso(s.start_us),
            "end": _iso(s.end_us),
            "n": s.n,
            "confidence": s.mean_confidence,
        }
        for s in segments
    ]
    return _emit(args, rows, ["label", "start", "end", "n", "confidence"])


def _list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        devices, heads = client.devices(), client.heads()
        if args.space:
            tag = _space_of(client.spaces(), args.space)["tag"]
            heads = [h for h in heads if h.get("space") == tag]
    if args.json:
        print(json.dumps({"devices": devices, "heads": heads}, indent=2))
        return 0
    _table(
        [{**d, "last_seen": _iso(d.get("last_seen_us"))} for d in devices],
        ["name", "n_records", "last_seen"],
    )
    print()
    _table(
        [
            {"head": h["name"], "classes": ", ".join(h["classes"]), "n_train": h["n_train"]}
            for h in heads
        ],
        ["head", "classes", "n_train"],
    )
    return 0


def _count(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.space:
            space = _space_of(client.spaces(), args.space)
            row = {"space": args.space, "records": space["n_records"]}
            return _emit(args, [row], ["space", "records"])
        devices = client.devices()
    rows = [{"device": d["name"], "records": d["n_records"]} for d in devices]
    rows.append({"device": "(total)", "records": sum(r["records"] for r in rows)})
    return _emit(args, rows, ["device", "records"])


def _spaces(args: argparse.Namespace) -> int:
    with _client(args) as client:
        spaces, migrations = client.spaces(), client.migrations()
    if args.json:
        print(json.dumps({"spaces": spaces, "migrations": migrations}, indent=2))
        return 0
    _table(
        [
            {**s, "version": s["version"] or "(undeclared)", "default": "*" * s["is_default"]}
            for s in spaces
        ],
        ["version", "tag", "n_records", "default"],
    )
    if migrations:
        print()
        _table(migrations, ["id", "old_version", "new_version", "status", "done", "total"])
    return 0


def _migrate(args: argparse.Namespace) -> int:
    if not args.adapter.is_file():
        raise InputError(f"{args.adapter}: no such adapter file (write one with `lifeveil adapt`)")
    with _client(args) as client:
        migration = client.start_migration(args.adapter)
    if args.json:
        print(json.dumps(migration, indent=2))
        return 0
    print(
        f"migration {migration['id']} {migration['status']}: {migration['old_version']} -> "
        f"{migration['new_version']}, {migration['done']} z done; the server goes on in the "
        "background (follow it with `lifeveil query spaces`)"
    )
    return 0


def _space_of(spaces: list[dict[str, Any]], version: str) -> dict[str, Any]:
    for space in spaces:
        if space["version"] == version or (space["version"] is None and version == "undeclared"):
            return space
    known = ", ".join(s["version"] for s in spaces if s["version"]) or "(none)"
    raise InputError(f"--space {version}: not a space of your tenant (registered: {known})")


# -- helpers -----------------------------------------------------------------------------------
def _client(args: argparse.Namespace):  # noqa: ANN202  (a QueryClient)
    from lifeveil.transport.client import QueryClient

    token, server, cafile = _credentials(args)
    try:
        with QueryClient(server, token, cafile=cafile) as probe:  # learns the server's wire
            info = probe.info()
    except Exception as exc:  # noqa: BLE001  (httpx connection errors have many types)
        raise InputError(_connection_hint(server, exc)) from None
    from lifeveil.transport.frame import WireSpec

    return QueryClient(server, token, cafile=cafile, wire=WireSpec.from_token(info["wire"]))


def _connection_hint(server: str, exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower():
        return f"{server}: TLS certificate not trusted ({text[:120]}) - pass the server's cert.pem with --cafile"
    return f"{server}: cannot reach the server ({text[:120]}) - is `lifeveil server run` up at that address?"


def _credentials(args: argparse.Namespace) -> tuple[str, str, str | None]:
    path: Path = args.token_file
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the token file ({exc.strerror})") from None
    server, cafile, token = args.server, args.cafile, text
    if text.startswith("{"):
        data = json.loads(text)
        token = data.get("token", "")
        server = server or data.get("server")
        cafile = cafile or data.get("cafile")
    if not token:
        raise InputError(f"{path}: no token in the file")
    if not server:
        raise InputError("no server address: pass --server https://HOST:PORT")
    return token, server, cafile


def _load_z(args: argparse.Namespace):  # noqa: ANN202  (np.ndarray (n, d))
    import numpy as np

    try:
        z = np.load(args.z)
    except (OSError, ValueError) as exc:
        raise InputError(f"{args.z}: not a readable .npy file ({exc})") from None
    z = np.atleast_2d(np.asarray(z, dtype=np.float32))
    if args.row is None:
        return z
    try:
        if ":" in args.row:
            a, b = (int(x) if x else None for x in args.row.split(":", 1))
            picked = z[a:b]
        else:
            picked = z[int(args.row)][None]
    except (ValueError, IndexError):
        raise InputError(
            f"--row {args.row!r}: not a row or range of the {len(z)} rows in {args.z}"
        ) from None
    if len(picked) == 0:
        raise InputError(f"--row {args.row!r} selects no row of {args.z}")
    return picked


def _time_us(text: str, flag: str) -> int:
    try:
        return int(float(text) * 1e6)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{flag} {text!r}: use ISO time (2026-12-02T08:00) or Unix seconds"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as a person types it
    return int(when.timestamp() * 1e6)


def _iso(time_us: int | None) -> str:
    if time_us is None:
        return "-"
    return dt.datetime.fromtimestamp(time_us / 1e6).astimezone().isoformat(timespec="seconds")


def _emit(args: argparse.Namespace, rows: list[dict[str, Any]], columns: list[str]) -> int:
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _table(rows, columns)
    return 0


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    widths = {c: max([len(c)] + [len(cell(r.get(c, ""))) for r in rows]) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(cell(r.get(c, "")).ljust(widths[c]) for c in columns))
    if not rows:
        print("(none)", file=sys.stdout)
