"""Where LifeVeil finds shipped assets and the shared research data."""

from __future__ import annotations

import os
from pathlib import Path

from lifeveil.errors import DatasetError

ASSETS = Path(__file__).parent / "assets"
# Shipped checkpoints (see README and MODEL_CARD.md there): the default is a deterministic fsq
# code trained for identity invariance; fsq_plain is the same without the invariance terms, and
# lambda_* are the earlier VIB sweep, kept for comparison in the benchmark.
SHIPPED_PRIVATIZERS = ASSETS / "privatizers"
DEFAULT_CHECKPOINT = SHIPPED_PRIVATIZERS / "fsq_invariant.safetensors"


def shared_data_root() -> Path:
    """The shared research data folder: ``$LIFEVEIL_DATA`` or ``../shared/data`` upward of cwd."""
    env = os.environ.get("LIFEVEIL_DATA")
    if env:
        return Path(env)
    here = Path.cwd().resolve()
    for base in (here, *here.parents):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "data"


def dataset_path(name: str) -> Path:
    """Path of one shared dataset (``faces-orl``, ``scenes-sun8``, ``action-clips``)."""
    path = shared_data_root() / name
    if not path.is_dir():
        raise DatasetError(
            f"{path}: dataset {name!r} not found; set LIFEVEIL_DATA to the folder that holds "
            "faces-orl/, scenes-sun8/ and action-clips/"
        )
    return path
