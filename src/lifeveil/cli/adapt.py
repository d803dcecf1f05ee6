"""``lifeveil adapt OLD NEW``: learn a map from an old privatizer's z space to a new one's."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lifeveil.cli.common import add_threads_arg

#: Hidden units of the default adapter (0 would be the plain ridge regression).
HIDDEN_DEFAULT = 256


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``lifeveil adapt``."""
    p = sub.add_parser(
        "adapt",
        help="learn an adapter from an old privatizer's z space to a new one's (model evolution)",
        description=(
            "Encode the same frames with both privatizers (on the device, e.g. frames still in "
            "the vault: nothing raw leaves) and fit a small network (--hidden units; 0: a ridge "
            "regression) from old z to new z. The "
            "server applies the adapter to z it stored under the old version. When the new "
            "version releases an fsq code, the output is snapped onto its code grid (unless "
            "--no-snap). The adapter sees only old z, so a migrated z discloses no more than "
            "the old z did; snapping makes it disclose less. "
            "With --evaluate it is measured on data neither model nor adapter saw: scene "
            "utility on SUN8, identity on ORL s11-s40 by one probe, and identity under the "
            "benchmark's accumulation attacker (k = 1 ... 256) on ORL s11-s40 and LFW held-out "
            "people for the old, migrated and new z (docs/GUARANTEES.md, issue 14)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("old", help="the old checkpoint (NAME.safetensors, or a shipped name)")
    p.add_argument("new", help="the new checkpoint (NAME.safetensors, or a shipped name)")
    p.add_argument(
        "--frames",
        nargs="+",
        required=True,
        metavar="PATH",
        help="images, image folders or videos to fit on (both versions encode them)",
    )
    p.add_argument(
        "--public-faces",
        action="store_true",
        help=(
            "also fit on public photos of people: LFW's training identities 101-300 from the "
            "shared data (faces the benchmark never attacks), standing in for the people a "
            "wearer's own vault holds; with snapping it maps faces to the new code's values"
        ),
    )
    p.add_argument("--fps", type=float, default=2.0, help="video sampling rate")
    p.add_argument(
        "--hidden",
        type=int,
        default=HIDDEN_DEFAULT,
        metavar="H",
        help="hidden ReLU units of the adapter (PyTorch, early-stopped); 0: a ridge regression",
    )
    p.add_argument("--ridge", type=float, default=10.0, help="L2 penalty of the ridge regression")
    p.add_argument(
        "--no-snap",
        action="store_true",
        help=(
            "keep the plain linear map; by default, when the new version releases an fsq code, "
            "migrated z are snapped onto its code grid (much less identity, some utility cost)"
        ),
    )
    p.add_argument("--out", type=Path, required=True, help="adapter file to write (.safetensors)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument(
        "--evaluate", action="store_true", help="measure it on SUN8, ORL and LFW held-out"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_threads_arg(p)
    p.set_defaults(func=run)


def _checkpoint(name: str) -> Path:
    """A checkpoint path, or the shipped checkpoint of that name."""
    from lifeveil.errors import CheckpointError
    from lifeveil.paths import SHIPPED_PRIVATIZERS

    path = Path(name)
    if path.exists():
        return path
    shipped = SHIPPED_PRIVATIZERS / f"{name}.safetensors"
    if shipped.is_file():
        return shipped
    known = ", ".join(sorted(p.stem for p in SHIPPED_PRIVATIZERS.glob("*.safetensors")))
    raise CheckpointError(
        f"{name}: no such checkpoint file and no shipped privatizer of that name ({known})"
    )


def run(args: argparse.Namespace) -> int:
    """Fit, save and (optionally) evaluate the adapter."""
    import numpy as np

    from lifeveil.errors import InputError
    from lifeveil.privatizer.adapt import fit_adapter, fit_mlp_adapter, fit_report, fit_snap
    from lifeveil.privatizer.checkpoint import resolve_checkpoint
    from lifeveil.privatizer.encode import encode_inputs
    from lifeveil.privatizer.loader import open_privatizer

    if args.hidden < 0:
        raise InputError(f"--hidden {args.hidden}: give 0 (a ridge regression) or more units")
    if args.out.exists() and not args.force:
        raise InputError(f"{args.out} already exists - choose another --out, or pass --force")
    ckpts = [resolve_checkpoint(_checkpoint(n)) for n in (args.old, args.new)]
    old, new = (open_privatizer(c, threads=args.threads) for c in ckpts)
    old_z = encode_inputs(old, args.frames, args.fps, "mean", progress=not args.json).matrix()
    new_z = encode_inputs(new, args.frames, args.fps, "mean", progress=not args.json).matrix()
    say = (lambda _line: None) if args.json else (lambda line: print(line, file=sys.stderr))
    if args.public_faces:
        faces = public_faces()
        say(f"encoding {len(faces):,} public face photos with both versions ...")
        old_z = np.vstack([old_z, old.privatize(faces, "mean").z])
        new_z = np.vstack([new_z, new.privatize(faces, "mean").z])
    kind = f"a {args.hidden}-unit network" if args.hidden else "a ridge regression"
    say(f"fitting {kind} on {len(old_z):,} frame pairs ...")
    adapter = (
        fit_mlp_adapter(old_z, new_z, old.version, new.version, hidden=args.hidden)
        if args.hidden
        else fit_adapter(old_z, new_z, old.version, new.version, ridge=args.ridge)
    )
    levels = None if args.no_snap else _code_levels(new, new_z)
    if levels is not None:
        adapter = fit_snap(adapter, old_z, new_z, levels)
    adapter.save(args.out)
    result = {"adapter": str(args.out), "fit": fit_report(adapter, old_z, new_z)}
    if args.evaluate:
        from lifeveil.bench.adapt_eval import evaluate_migration
        from lifeveil.paths import shared_data_root

        result["evaluation"] = evaluate_migration(old, new, adapter, shared_data_root()).to_dict()
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    _print(result, adapter.describe(), args.json)
    return 0


#: LFW training identities (sorted-name order) used by --public-faces: after the first 100,
#: which hold the accumulation attacker's auxiliary people; the held-out 301-423 are never used.
PUBLIC_FACES_FROM = 100


def public_faces() -> list:
    """LFW training-split photos of identities 101-300 (see ``--public-faces``)."""
    from lifeveil.data.datasets import lfw_identity_split, load_lfw
    from lifeveil.paths import shared_data_root

    root = shared_data_root() / "faces-lfw"
    names = set(lfw_identity_split(root)["train"][PUBLIC_FACES_FROM:])
    lfw = load_lfw(root, "train", None, progress=False)
    return [image for image, name in zip(lfw.images, lfw.labels, strict=True) if name in names]


def _code_levels(new, new_z):  # noqa: ANN001, ANN202
    """The new version's code values when it releases an fsq code, else None."""
    from lifeveil.privatizer.adapt import code_levels

    cfg = new.cfg
    return code_levels(new_z, cfg.fsq_levels) if cfg.bottleneck == "fsq" else None


def _print(result: dict, described: str, as_json: bool) -> None:
    """The result as JSON or as a few readable lines."""
    if as_json:
        print(json.dumps(result, indent=2))
        return
    fit = result["fit"]
    print(f"wrote {result['adapter']}: {described}")
    agree = fit.get("code_agreement")
    codes = f", {agree:.1%} of code values as the new version's" if agree is not None else ""
    print(f"fit on its frames: mean cosine {fit['mean_cosine']:.3f}, R^2 {fit['r2']:.3f}{codes}")
    ev = result.get("evaluation")
    if ev:
        print(
            f"SUN8 test, head trained on new z: re-encoded {ev['scene_reencoded']:.3f}, migrated "
            f"{ev['scene_migrated']:.3f} ({ev['scene_migrated_ratio']:.0%} of re-encoded; old "
            f"z with its own head {ev['scene_old']:.3f})"
        )
        print(
            f"ORL s11-s40 identity (chance {ev['identity_chance']:.3f}): old "
            f"{ev['identity_old']:.3f}, migrated {ev['identity_migrated']:.3f}, new "
            f"{ev['identity_new']:.3f}"
        )
    for name, acc in (ev or {}).get("accumulation", {}).items():
        print(*_accumulation_lines(name, acc), sep="\n")


FACE_SETS = {"orl": "ORL s11-s40", "lfw": "LFW held-out"}


def _accumulation_lines(name: str, acc: dict) -> list[str]:
    """One face set's accumulation table: best attacker per k and at inf, per release."""
    ks = [*(f"k={k}" for k in acc["k"]), "inf"]
    lines = [
        f"{FACE_SETS.get(name, name)} identity under accumulation ({acc['n_identities']} people, "
        f"chance {acc['chance']:.3f}; best of linear, MLP, 1-shot re-ID):",
        "  " + " " * 9 + "".join(f"{k:>8}" for k in ks),
    ]
    for release in ("old", "migrated", "new"):
        values = [*acc[release]["identity"], acc[release]["identity_inf"]]
        lines.append(f"  {release:<9}" + "".join(f"{v:8.3f}" for v in values))
    head = ", ".join(f"{r} {acc['headline'][r]:.3f}" for r in ("old", "migrated", "new"))
    lines.append(f"  headline (best attacker at k={acc['k'][-1]}): {head}")
    verdict = "yes" if acc["migrated_le_old"] else "NO"
    lines.append(f"  migrated <= old (within the old z's 95 % interval at every k): {verdict}")
    return lines
