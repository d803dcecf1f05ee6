"""Checkpoint files: ``NAME.safetensors`` (weights) + ``NAME.json`` (config and provenance).

The JSON fully describes the model (a :class:`PrivatizerConfig`) plus how it was trained. The
optional ``NAME.resume.safetensors`` holds optimizer state so training can resume.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from lifeveil.errors import CheckpointError
from lifeveil.io import atomic_path, make_public, write_json
from lifeveil.privatizer.config import PrivatizerConfig

if TYPE_CHECKING:
    import torch

FORMAT = "lifeveil-privatizer"


def config_path(weights: str | Path) -> Path:
    """The JSON file that sits beside a ``.safetensors`` checkpoint."""
    return Path(weights).with_suffix(".json")


def resume_path(weights: str | Path) -> Path:
    """The optimizer-state file that sits beside a checkpoint."""
    return Path(weights).with_suffix(".resume.safetensors")


def save_checkpoint(
    path: str | Path, state: dict[str, torch.Tensor], cfg: PrivatizerConfig, meta: dict[str, Any]
) -> Path:
    """Write weights and config atomically; returns the weights path."""
    from safetensors.torch import save_file  # PyTorch only where weights are written

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: checkpoint path must end in .safetensors")
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "version": str(cfg.version)})
        make_public(tmp)  # safetensors writes the file 0600
    write_json(config_path(path), {"format": FORMAT, "privatizer": cfg.to_dict(), "training": meta})
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The ``training`` provenance block of a checkpoint's JSON (may be empty)."""
    try:
        return json.loads(config_path(path).read_text()).get("training", {})
    except (OSError, json.JSONDecodeError):
        return {}


def resolve_checkpoint(path: str | Path | None) -> Path:
    """The ``.safetensors`` file a path names: itself, the only one in a folder, a shipped
    privatizer's name (``fsq_plain``, ``lambda_0.1``, ...), or the default."""
    from lifeveil.paths import DEFAULT_CHECKPOINT, SHIPPED_PRIVATIZERS

    checkpoint = Path(path or DEFAULT_CHECKPOINT)
    shipped = SHIPPED_PRIVATIZERS / f"{checkpoint.name}.safetensors"
    if not checkpoint.exists() and checkpoint.name == str(path) and shipped.is_file():
        checkpoint = shipped
    if checkpoint.is_dir():
        found = [p for p in sorted(checkpoint.glob("*.safetensors")) if ".resume." not in p.name]
        if len(found) != 1:
            raise CheckpointError(
                f"{checkpoint}: expected exactly one .safetensors checkpoint in the folder"
            )
        checkpoint = found[0]
    if not checkpoint.is_file():
        raise CheckpointError(
            f"{checkpoint}: checkpoint not found (expected NAME.safetensors with NAME.json "
            "beside it, or a shipped name: "
            f"{', '.join(sorted(p.stem for p in SHIPPED_PRIVATIZERS.glob('*.safetensors')))})"
        )
    return checkpoint


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], PrivatizerConfig]:
    """Read weights and config, with a clear error for every way a checkpoint can be wrong."""
    from safetensors.torch import load_file  # PyTorch only where weights are read

    path = resolve_checkpoint(path)
    cfg = PrivatizerConfig.load(config_path(path))
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({exc})") from None
    return state, cfg
