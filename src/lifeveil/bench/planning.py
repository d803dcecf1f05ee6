"""Planning a sweep: which method settings and seeds become jobs.

msr settings are expanded per privatizer checkpoint (the shipped default plus an optional
folder, e.g. a lambda sweep); ids are computed without building the methods.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lifeveil.bench.jobs import JobSpec
from lifeveil.bench.presets import Preset
from lifeveil.errors import CheckpointError, UnknownNameError


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
