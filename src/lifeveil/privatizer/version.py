"""One version id per privatizer: what the ledger, the adapter and (later) the wire name it by.

The id hashes what determines the function frames -> z: the config (minus ``student_init``,
which only says how training started) and every weight, in name order. It is the same for a
checkpoint loaded in PyTorch or run by the lite ONNX runtime, and for a model still in memory
after training and the file it was saved to. Nothing here imports PyTorch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

import numpy as np

from lifeveil.privatizer.config import PrivatizerConfig

#: Config fields that do not change the function frames -> z.
NOT_IN_VERSION = ("student_init",)


def version_id(cfg: PrivatizerConfig, weights: Iterable[tuple[str, np.ndarray]]) -> str:
    """SHA-256 (hex, first 16) of the config and the ``(name, array)`` weights, sorted by name."""
    doc = {k: v for k, v in cfg.to_dict().items() if k not in NOT_IN_VERSION}
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode())
    for name, array in sorted(weights, key=lambda item: item[0]):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]
