"""Where LifeVeil finds shipped assets and the shared research data."""

from __future__ import annotations

import os
from pathlib import Path

from lifeveil.errors import DatasetError

ASSETS = Path(__file__).parent / "assets"
# One `lifeveil train --lambdas ...` run made every shipped checkpoint (see README).
SHIPPED_PRIVATIZERS = ASSETS / "privatizers"
DEFAULT_LAMBDA = "0.01"
DEFAULT_CHECKPOINT = SHIPPED_PRIVATIZERS / f"lambda_{DEFAULT_LAMBDA}.safetensors"


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
