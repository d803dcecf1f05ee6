"""``lifeveil train``: train a privatizer (or a lambda sweep) on images, CSVs and videos."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lifeveil.cli.common import add_threads_arg, apply_threads, parse_floats
from lifeveil.errors import InputError
from lifeveil.privatizer.config import PrivatizerConfig, TrainConfig
from lifeveil.privatizer.release import ReleaseMode

DEFAULT_RECIPE = (
    "lifeveil train --sun8 ../shared/data/scenes-sun8 --orl ../shared/data/faces-orl "
    "--lambdas 0.001,0.01,0.1 --threads 1 --out src/lifeveil/assets/privatizers"
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a privatizer on images, CSVs and videos",
        description=(
            "Train the privatizer M with the information-bottleneck objective "
            "utility(decoder(z), teacher(x)) + lambda * KL(q(z|x) || N(0, I)). "
            "No labels are needed: the frozen teacher provides the targets. "
            f"The shipped default model was made by:  {DEFAULT_RECIPE}"
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "inputs", nargs="*", help="image folders, CSV files (column 'path'), images or video files"
    )
    p.add_argument("--sun8", help="SUN8 root: only its fixed train split is used")
    p.add_argument(
        "--orl", help="ORL faces root: only identities s1-s10 are used (s11-s40 are attack victims)"
    )
    p.add_argument(
        "--out",
        required=True,
        help="checkpoint path NAME.safetensors (NAME.json is written beside); with --lambdas, a folder",
    )
    p.add_argument(
        "--lambdas",
        type=parse_floats,
        help="comma-separated lambda sweep, one checkpoint per value",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue training the checkpoint at --out"
    )
    defaults = PrivatizerConfig()
    p.add_argument(
        "--teacher", default=defaults.teacher, help="teacher name (see `lifeveil info --teachers`)"
    )
    p.add_argument(
        "--lam",
        type=float,
        default=defaults.lam,
        help="lambda: weight of KL (nats) against utility",
    )
    p.add_argument("--z-dim", type=int, default=defaults.z_dim, help="dimension of z")
    p.add_argument(
        "--input-size", type=int, default=defaults.input_size, help="student input side (px)"
    )
    p.add_argument("--utility-loss", choices=["cosine", "mse"], default=defaults.utility_loss)
    p.add_argument(
        "--clip-frames",
        type=int,
        default=defaults.clip_frames,
        help="frames pooled per z (clip mode if >1)",
    )
    p.add_argument(
        "--deploy-mode",
        choices=ReleaseMode.choices(),
        default=defaults.deploy_mode,
        help="what privatize() releases by default",
    )
    p.add_argument("--student-init", choices=["imagenet", "random"], default=defaults.student_init)
    p.add_argument(
        "--bottleneck",
        choices=["vib", "fsq"],
        default=defaults.bottleneck,
        help="vib: Gaussian posterior bounded by the KL (lambda); fsq: a deterministic quantised "
        "code of z-dim x log2(fsq-levels) bits that averaging cannot sharpen",
    )
    p.add_argument(
        "--fsq-levels",
        type=int,
        default=defaults.fsq_levels,
        help="values per fsq coordinate (odd)",
    )
    p.add_argument(
        "--frozen-blocks",
        type=int,
        default=defaults.frozen_blocks,
        help="leading student blocks kept frozen (their outputs are cached: more = faster training)",
    )
    inv = p.add_argument_group(
        "identity invariance (label-free; needs --faces-lfw)",
        "Face photos become views whose target is one shared 'a person' embedding, and every "
        "training scene gets a copy with a face pasted in whose target is the clean scene.",
    )
    inv.add_argument(
        "--faces-lfw",
        help="LFW root (labels.csv + <Name>/<Name>_NNNN.jpg): only the fixed training identities "
        "1-300 are used; 301-423 stay unseen for the benchmark",
    )
    inv.add_argument("--face-views", type=int, default=2, help="augmented views per face photo")
    inv.add_argument(
        "--collapse",
        type=float,
        default=defaults.collapse_weight,
        help="weight of the term pulling every face view to one shared code",
    )
    inv.add_argument(
        "--invariance",
        type=float,
        default=defaults.invariance_weight,
        help="weight of the term pulling a scene with a pasted face to the clean scene's code",
    )
    t = TrainConfig()
    p.add_argument("--epochs", type=int, default=t.epochs)
    p.add_argument("--batch-size", type=int, default=t.batch_size)
    p.add_argument("--lr", type=float, default=t.lr)
    p.add_argument("--views", type=int, default=t.views, help="augmented views per frame")
    p.add_argument("--seed", type=int, default=t.seed)
    p.add_argument("--video-fps", type=float, default=2.0, help="sampling rate for training videos")
    p.add_argument(
        "--cache",
        help="file to keep teacher targets in (reused when data and settings match; skips the teacher)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_threads_arg(p)
    p.set_defaults(func=run)


def _model_config(args: argparse.Namespace, teacher_dim: int) -> PrivatizerConfig:
    return PrivatizerConfig(
        teacher=args.teacher,
        teacher_dim=teacher_dim,
        input_size=args.input_size,
        z_dim=args.z_dim,
        utility_loss=args.utility_loss,
        lam=args.lam,
        clip_frames=args.clip_frames,
        deploy_mode="mean" if args.bottleneck == "fsq" else args.deploy_mode,
        student_init=args.student_init,
        frozen_blocks=args.frozen_blocks if args.student_init == "imagenet" else 0,
        bottleneck=args.bottleneck,
        fsq_levels=args.fsq_levels,
        collapse_weight=args.collapse,
        invariance_weight=args.invariance,
    )


def run(args: argparse.Namespace) -> int:
    from lifeveil.privatizer.data import collect_frames
    from lifeveil.privatizer.fit import training_cache
    from lifeveil.privatizer.train import train_privatizer
    from lifeveil.teachers import create_teacher

    apply_threads(args)
    if args.epochs < 1 or args.batch_size < 1 or args.views < 1:
        raise InputError("--epochs, --batch-size and --views must be >= 1")
    teacher = create_teacher(args.teacher)
    cfg = _model_config(args, teacher.embed_dim)
    tcfg = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, views=args.views, seed=args.seed
    )
    t0 = time.perf_counter()
    frames = collect_frames(args.inputs, args.sun8, args.orl, args.video_fps, cfg.clip_frames)
    faces = _training_faces(args, cfg)
    sources = frames.sources + ([faces[1]] if faces else [])
    print(f"training data: {len(frames)} frames from " + "; ".join(sources))
    cache = training_cache(
        cfg,
        tcfg,
        frames,
        faces=faces[0] if faces else None,
        face_views=args.face_views,
        faces_source=str(args.faces_lfw) if faces else None,
        teacher=teacher,
        cache_path=args.cache,
        progress=not args.quiet,
    )
    meta = {"sources": sources, "command": "lifeveil train " + " ".join(_argv_echo(args))}
    outs = _outputs(args)
    for lam, out in outs:
        result = train_privatizer(
            cfg.replace(lam=lam), tcfg, cache, out, meta, args.resume, not args.quiet
        )
        last = result.history[-1]
        what = f"lambda={lam:g}" if cfg.bottleneck == "vib" else cfg.label
        print(
            f"{what}: {out}  {last['kl_bits']:.1f} bits/frame, train cos {1 - last['utility_loss']:.3f}"
        )
    if args.lambdas:
        _write_sweep_index(Path(args.out), outs)
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


def _training_faces(args: argparse.Namespace, cfg: PrivatizerConfig) -> tuple[list, str] | None:
    """LFW training-identity faces and a source line, or None without --faces-lfw."""
    if (cfg.collapse_weight > 0 or cfg.invariance_weight > 0) and not args.faces_lfw:
        raise InputError("--collapse and --invariance need face photos: give --faces-lfw ROOT")
    if not args.faces_lfw:
        return None
    if cfg.clip_frames != 1:
        raise InputError("identity invariance (--faces-lfw) works in per-frame mode only")
    from lifeveil.data import LFW_TRAIN_IDENTITIES, load_lfw

    faces = load_lfw(args.faces_lfw, "train", progress=not args.quiet)
    line = (
        f"lfw:{args.faces_lfw} training identities 1-{LFW_TRAIN_IDENTITIES} "
        f"({len(faces)} images, {args.face_views} views each)"
    )
    return faces.images, line


def _outputs(args: argparse.Namespace) -> list[tuple[float, Path]]:
    if not args.lambdas:
        return [(args.lam, Path(args.out))]
    folder = Path(args.out)
    if folder.suffix == ".safetensors":
        raise InputError(
            "--lambdas writes one checkpoint per value: give --out a folder, not a .safetensors path"
        )
    return [(lam, folder / f"lambda_{lam:g}.safetensors") for lam in args.lambdas]


def _write_sweep_index(folder: Path, outs: list[tuple[float, Path]]) -> None:
    from lifeveil.io import write_json

    write_json(
        folder / "sweep.json", {"checkpoints": [{"lambda": lam, "path": p.name} for lam, p in outs]}
    )


def _argv_echo(args: argparse.Namespace) -> list[str]:
    import sys

    return [a for a in sys.argv[2:]] if len(sys.argv) > 2 else [json.dumps(vars(args), default=str)]
