"""``lifeveil bench``: the privacy-utility benchmark of LifeVeil against baselines.

A thin layer over :func:`lifeveil.bench.runner.run_bench`; ``--list`` prints what can be
chosen (methods, presets, attacks, tasks).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lifeveil.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark privacy methods: utility, privacy attacks, reconstruction, efficiency",
        description=(
            "Run every task and attack on the features each method would send to a server, and "
            "write OUT/results.json, OUT/summary.md and OUT/report.html (figures embedded). "
            "Jobs (method setting x seed) run in local processes, or on Ray with --ray."
        ),
    )
    p.add_argument(
        "--preset",
        default="quick",
        help="quick (< 5 min on 2 cores) or full (default: %(default)s)",
    )
    p.add_argument("--out", type=Path, help="output folder (required unless --list)")
    p.add_argument("--methods", help="comma-separated method families (default: all in the preset)")
    p.add_argument("--seeds", help="comma-separated job seeds (default: the preset's)")
    p.add_argument(
        "--workers",
        type=int,
        help="parallel local processes (0 = in this process; default: 2)",
    )
    p.add_argument("--threads", type=int, help="torch threads per job (default: cores/workers)")
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run jobs on Ray: a cluster address, or 'local' to start one",
    )
    p.add_argument("--resume", action="store_true", help="skip jobs already finished in OUT/jobs")
    p.add_argument(
        "--force",
        action="store_true",
        help="start over in an OUT that holds an earlier run (its jobs/ results are deleted)",
    )
    p.add_argument(
        "--data", type=Path, help="data root with faces-orl/, scenes-sun8/, action-clips/"
    )
    p.add_argument(
        "--msr-checkpoints",
        type=Path,
        metavar="DIR",
        help="folder of privatizer checkpoints (a lambda sweep) to add to msr; 'shipped' = the sweep in the package",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="run no job: rewrite OUT/summary.md, OUT/report.html and OUT/figures from "
        "OUT/results.json (e.g. after a change to the report)",
    )
    p.add_argument(
        "--list", action="store_true", help="list methods, presets, attacks and tasks, then exit"
    )
    p.add_argument("--json", action="store_true", help="with --list: print JSON")
    p.set_defaults(func=run)


def _csv(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def _seeds(text: str | None) -> list[int] | None:
    items = _csv(text)
    if items is None:
        return None
    try:
        return [int(x) for x in items]
    except ValueError:
        raise InputError(f"--seeds expects comma-separated integers, got {text!r}") from None


def available() -> dict[str, dict[str, str]]:
    """Everything ``lifeveil bench`` can run, by kind, with one-line help."""
    from lifeveil.bench.methods import METHODS
    from lifeveil.bench.presets import PRESETS

    out: dict[str, dict[str, str]] = {
        "methods": METHODS.describe(),
        "presets": {
            name: f"{len(p.methods)} method settings (msr: each per checkpoint) x {len(p.seeds)} seed(s), "
            f"{len(p.victim_identities)} victim identities"
            for name, p in PRESETS.items()
        },
    }
    for kind, module, attr in (
        ("attacks", "lifeveil.bench.attacks", "ATTACKS"),
        ("tasks", "lifeveil.bench.tasks", "TASKS"),
    ):
        try:
            registry = getattr(__import__(module, fromlist=[attr]), attr)
            out[kind] = registry.describe()
        except (ImportError, AttributeError):
            out[kind] = {}
    return out


def run(args: argparse.Namespace) -> int:
    if args.list:
        listing = available()
        if args.json:
            print(json.dumps(listing, indent=2))
        else:
            for kind, items in listing.items():
                print(f"{kind}:")
                for name, text in items.items():
                    print(f"  {name:<16} {text}")
        return 0
    if args.out is None:
        raise InputError("lifeveil bench needs --out DIR (or --list)")
    if args.report_only:
        from lifeveil.bench.report import render_reports

        render_reports(args.out)
        for name in ("summary.md", "report.html"):
            print(f"  {args.out / name}")
        return 0
    from lifeveil.bench.runner import run_bench

    _check_out_folder(args)
    try:
        result = _run(args, run_bench)
    except KeyboardInterrupt:
        done = len(list((args.out / "jobs").glob("*.json")))
        print(
            f"lifeveil bench: interrupted; {done} finished job(s) kept in {args.out / 'jobs'} - "
            f"add --resume to the same command to run only the rest",
            file=sys.stderr,
        )
        return 130
    print(f"{len(result.jobs)} jobs finished, {len(result.failed)} failed")
    for name in ("results.json", "summary.md", "report.html"):
        print(f"  {args.out / name}")
    return 1 if result.failed else 0


def _run(args: argparse.Namespace, run_bench):  # noqa: ANN001, ANN202
    """``run_bench`` with the command line's options."""
    return run_bench(
        preset=args.preset,
        out=args.out,
        methods=_csv(args.methods),
        seeds=_seeds(args.seeds),
        workers=args.workers,
        threads=args.threads,
        ray=args.ray,
        resume=args.resume,
        data_root=args.data,
        msr_checkpoints_dir=args.msr_checkpoints,
    )


def _check_out_folder(args: argparse.Namespace) -> None:
    """An OUT with finished jobs needs --resume (continue) or --force (start over)."""
    from lifeveil.errors import InputError

    if args.force and args.resume:
        raise InputError("--resume continues a run and --force starts over - pick one")
    jobs = sorted((args.out / "jobs").glob("*.json")) if (args.out / "jobs").is_dir() else []
    if not jobs or args.resume:
        return
    if not args.force:
        raise InputError(
            f"{args.out} already holds a benchmark run ({len(jobs)} job result(s) in "
            f"{args.out / 'jobs'}) - pass --resume to continue it, --force to start over, "
            "or choose another --out"
        )
    for job in jobs:
        job.unlink()
