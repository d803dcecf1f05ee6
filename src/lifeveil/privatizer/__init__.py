"""The on-device privatizer M and its training (the Minimal Sufficient Representation z).

>>> from lifeveil.privatizer import Privatizer
>>> p = Privatizer.load()            # the shipped default           # doctest: +SKIP
>>> rep = p.privatize(frames)        # frames: RGB uint8 (H, W, 3)    # doctest: +SKIP
>>> rep.z.shape, rep.kl_bits.mean()  # (N, 64), bits per frame        # doctest: +SKIP

The names below are imported on first use, so that light submodules (``release``,
``config``) can be imported without loading PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DeployedPrivatizer": "lifeveil.privatizer.model",
    "Privatizer": "lifeveil.privatizer.privatizer",
    "PrivatizerConfig": "lifeveil.privatizer.config",
    "PrivatizerModel": "lifeveil.privatizer.model",
    "Representation": "lifeveil.privatizer.privatizer",
    "load_checkpoint": "lifeveil.privatizer.checkpoint",
    "save_checkpoint": "lifeveil.privatizer.checkpoint",
}
__all__ = [
    "DeployedPrivatizer",
    "Privatizer",
    "PrivatizerConfig",
    "PrivatizerModel",
    "Representation",
    "load_checkpoint",
    "save_checkpoint",
]

if TYPE_CHECKING:
    from lifeveil.privatizer.checkpoint import load_checkpoint, save_checkpoint
    from lifeveil.privatizer.config import PrivatizerConfig
    from lifeveil.privatizer.model import DeployedPrivatizer, PrivatizerModel
    from lifeveil.privatizer.privatizer import Privatizer, Representation


def __getattr__(name: str) -> Any:  # noqa: ANN401  (whatever the submodule exports)
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lifeveil.privatizer' has no attribute {name!r}")
