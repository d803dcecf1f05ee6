"""One benchmark job: a method setting and a seed, run anywhere (this process, a worker, Ray).

:class:`JobSpec` is plain data that pickles; :func:`run_job` builds the method, runs
``evaluate_method`` (every registered task and attack), measures system efficiency and
returns a JSON-ready record. :func:`run_job_safely` turns a crash into a failure record so a
sweep goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifeveil.bench.presets import Preset
from lifeveil.bench.schema import DETECTOR, Axis, to_jsonable

EvaluateFn = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class JobSpec:
    """One job: a method setting and a seed, plus what a worker needs to run it anywhere."""

    family: str
    params: dict[str, Any]
    seed: int
    method_id: str
    preset: dict[str, Any]  # Preset.to_dict(): plain data, so it pickles and travels to Ray
    out_dir: str
    data_root: str | None = None
    threads: int = 1
    return_artifacts: bool = False  # Ray: ship the job's files back to the driver
    measure_se: bool = True  # SE is a property of the setting: measured for its first seed only

    @property
    def config_hash(self) -> str:
        """Hash of everything that decides this job's result (resume refuses stale results).

        The preset's job selection (methods, seeds, name) is left out: it picks jobs, it does
        not change what one job computes.
        """
        preset = {k: v for k, v in self.preset.items() if k not in ("methods", "seeds", "name")}
        blob = json.dumps(
            [self.family, self.params, self.seed, preset, self.data_root],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    @property
    def job_id(self) -> str:
        """File-system safe id, unique per (method setting, seed)."""
        return slugify(f"{self.method_id}__seed{self.seed}")


def slugify(text: str) -> str:
    """Keep letters, digits and ``.=-_``; everything else becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", text).strip("_")


def default_evaluate() -> EvaluateFn:
    """The attacks engineer's ``evaluate_method`` (imported lazily: it pulls in every attack)."""
    from lifeveil.bench.evaluate import evaluate_method

    return evaluate_method


def run_job(spec: JobSpec, evaluate: EvaluateFn | None = None) -> dict[str, Any]:
    """Run one job: build the method, evaluate every task and attack, measure SE.

    Returns a JSON-ready dict with the method description, metrics, SE numbers and timings.
    Artifacts (PNG grids, curves) are written by ``evaluate`` into ``OUT/jobs/<job>/``.
    """
    import torch

    from lifeveil.bench.data import cached_bench_data
    from lifeveil.bench.methods import create_method
    from lifeveil.bench.se import se_metrics, sequence_frames

    torch.set_num_threads(max(1, spec.threads))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    preset = Preset.from_dict(spec.preset)
    data = cached_bench_data(preset, Path(spec.data_root) if spec.data_root else None)
    timings["data_s"] = time.perf_counter() - t0
    t = time.perf_counter()
    method = create_method(spec.family, spec.params, spec.seed)
    timings["method_s"] = time.perf_counter() - t
    job_dir = Path(spec.out_dir) / "jobs" / spec.job_id
    job_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # keep the progress bar readable; counted below
        metrics = (evaluate or default_evaluate())(method, data, preset, spec.seed, job_dir)
    timings["evaluate_s"] = time.perf_counter() - t
    if hasattr(method, "detection_rate"):  # face-region baselines: how many faces they even see
        t = time.perf_counter()
        metrics.setdefault(Axis.PL.value, {})[DETECTOR] = detector_coverage(method, data)
        timings["detector_s"] = time.perf_counter() - t
    se: dict[str, Any] = {}
    if spec.measure_se:
        t = time.perf_counter()
        frames = sequence_frames(data.clips, preset.se_frames)
        se = se_metrics(method, frames, preset.clip_fps, preset.se_repeats)
        se["threads"] = torch.get_num_threads()
        timings["se_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    result = {
        "job": spec.job_id,
        "config_hash": spec.config_hash,
        "method": method.describe(),
        "method_id": method.id,
        "family": method.family,
        "seed": spec.seed,
        "metrics": to_jsonable(metrics),
        "se": to_jsonable(se),
        "timings": timings,
        "host": platform.node(),
        "pid": os.getpid(),
        "threads": torch.get_num_threads(),
        "warnings": _warning_counts(caught),
    }
    if spec.return_artifacts:
        result["_artifacts"] = {
            str(p.relative_to(job_dir)): p.read_bytes() for p in job_dir.rglob("*") if p.is_file()
        }
    return result


def detector_coverage(method: Any, data: Any) -> dict[str, float]:
    """Fraction of victim portraits and of bystander frames in which the method found a face.

    A face the detector misses is uploaded untouched, so this bounds what face-region
    anonymisation can protect.
    """
    return {
        "found_victims": method.detection_rate(data.faces_victims.images),
        "found_bystanders": method.detection_rate(data.bystanders.images),
    }


def _warning_counts(caught: list[warnings.WarningMessage]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for w in caught:
        counts[w.category.__name__] = counts.get(w.category.__name__, 0) + 1
    return counts


def run_job_safely(spec: JobSpec, evaluate: EvaluateFn | None = None) -> dict[str, Any]:
    """:func:`run_job` that turns an exception into a failure record (the sweep goes on)."""
    try:
        return run_job(spec, evaluate)
    except Exception as exc:  # noqa: BLE001 - one broken job must not sink the sweep
        return {
            "job": spec.job_id,
            "method_id": spec.method_id,
            "family": spec.family,
            "seed": spec.seed,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
