"""``lifeveil info``: teachers, model facts, throughput benchmark and held-out evaluation."""

from __future__ import annotations

import argparse
import json

from lifeveil.cli.common import add_threads_arg, apply_threads


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="describe a privatizer; benchmark throughput; evaluate on held-out data",
        description=(
            "Without options: the teachers available and the default privatizer's size. "
            "--speed: frames/s of the privatizer and its teacher at batch 1 and 32. "
            "--sun8 ROOT: KL bits per frame and cosine(decoded z, teacher) on SUN8's held-out test split."
        ),
    )
    p.add_argument(
        "--model", nargs="*", default=[None], help="checkpoint(s) (default: the shipped privatizer)"
    )
    p.add_argument("--speed", action="store_true", help="measure encoding throughput (frames/s)")
    p.add_argument("--sun8", help="SUN8 root: evaluate on its held-out test split")
    p.add_argument(
        "--throughput",
        metavar="CLIP",
        help="device benchmark on a video: decode only, privatize every frame in ONNX Runtime "
        "and PyTorch, and deface if installed (fps and ratios)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_threads_arg(p)
    p.set_defaults(func=run, threads=2)


def run(args: argparse.Namespace) -> int:
    from lifeveil.privatizer import Privatizer
    from lifeveil.privatizer.metrics import model_cost, privatizer_cost, throughput
    from lifeveil.teachers import TEACHERS, create_teacher

    apply_threads(args)
    if args.throughput:
        return _throughput(args)
    report: dict[str, object] = {
        "teachers": TEACHERS.describe(),
        "threads": args.threads,
        "models": [],
    }
    heldout = _load_heldout(args.sun8) if args.sun8 else None
    for path in args.model:
        p = Privatizer.load(path)
        cost = privatizer_cost(p)
        entry: dict[str, object] = {
            "checkpoint": str(path or "default"),
            "config": p.cfg.to_dict(),
            "params": cost.params,
            "mflops": round(cost.mflops, 1),
        }
        teacher = create_teacher(p.cfg.teacher)
        if args.speed:
            tcost = model_cost(teacher, teacher.input_size)
            entry["teacher"] = {
                "name": teacher.name,
                "params": tcost.params,
                "mflops": round(tcost.mflops, 1),
            }
            for b in (1, 32):
                entry[f"privatizer_fps_b{b}"] = round(throughput(p.model, p.input_size, b), 1)
                entry[f"teacher_fps_b{b}"] = round(throughput(teacher, teacher.input_size, b), 1)
        if heldout is not None:
            from lifeveil.privatizer.metrics import evaluate_heldout

            entry["heldout_sun8_test"] = evaluate_heldout(p, teacher, heldout).__dict__
        report["models"].append(entry)  # type: ignore[union-attr]
    print(json.dumps(report, indent=2) if args.json else _text(report))
    return 0


def _throughput(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lifeveil.device.throughput import device_benchmark
    from lifeveil.errors import InputError

    if not Path(args.throughput).is_file():
        raise InputError(f"{args.throughput}: no such video file")
    report = device_benchmark(args.throughput, args.model[0], threads=args.threads)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['clip']} ({report['threads']} threads, batch {report['batch']}):")
    for row in report["rows"]:  # type: ignore[union-attr]
        print(
            f"  {row['name']:22} {row['frames']:6d} frames {row['seconds']:7.2f} s {row['fps']:8.1f} fps"
        )
    for name, ratio in report.get("vs_deface", {}).items():  # type: ignore[union-attr]
        print(f"  {name} is {ratio:.1f}x deface's fps")
    if "vs_deface" not in report:
        print("  (deface not installed: pip install deface to compare)")
    return 0


def _load_heldout(root: str) -> list:
    from lifeveil.data import load_sun8

    return load_sun8(root, "test").images


def _text(report: dict) -> str:
    lines = ["teachers:"] + [f"  {k:20s} {v}" for k, v in report["teachers"].items()]
    for m in report["models"]:
        c = m["config"]
        from lifeveil.privatizer.config import PrivatizerConfig

        label = PrivatizerConfig.from_dict(c).label
        lines.append(
            f"privatizer {m['checkpoint']}: {label}, z_dim={c['z_dim']} input {c['input_size']}px "
            f"teacher={c['teacher']}; {m['params'] / 1e6:.2f} M params, {m['mflops']:.0f} MFLOPs/frame"
        )
        if "teacher" in m:
            t = m["teacher"]
            lines.append(
                f"  teacher {t['name']}: {t['params'] / 1e6:.2f} M params, {t['mflops']:.0f} MFLOPs/frame"
            )
            lines.append(
                f"  throughput ({report['threads']} threads): privatizer {m['privatizer_fps_b1']} fps (batch 1), "
                f"{m['privatizer_fps_b32']} fps (batch 32); teacher {m['teacher_fps_b1']} / {m['teacher_fps_b32']} fps"
            )
        if "heldout_sun8_test" in m:
            h = m["heldout_sun8_test"]
            bits = "bits/frame (exact code size)" if c.get("bottleneck") == "fsq" else "bits/frame"
            lines.append(
                f"  SUN8 test ({h['n']} images): KL {h['kl_bits_mean']:.1f} +- {h['kl_bits_std']:.1f} {bits}, "
                f"cos(decoded z, teacher), standardised: {h['cosine_mean']:.3f} (z=mean), "
                f"{h['cosine_sampled']:.3f} (z sampled); raw units {h['cosine_raw']:.3f}"
            )
    return "\n".join(lines)
