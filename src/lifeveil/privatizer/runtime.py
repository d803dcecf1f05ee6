"""ONNX Runtime as the device runtime of the privatizer.

The checkpoint's per-frame graph (pixels -> mu, logvar; for an fsq code, code and -inf) is
exported once and cached, keyed by a hash of the checkpoint's weights and config: beside the
checkpoint in ``.onnx/`` when that folder is writable, else in ``$LIFEVEIL_CACHE`` (default
``~/.cache/lifeveil``) under ``onnx/``. ONNX Runtime then folds batch-norm into the
convolutions and fuses the graph (``ORT_ENABLE_ALL``). Everything after the encoder (release
mode, noise, KL bits) is shared with the PyTorch :class:`~lifeveil.privatizer.Privatizer`, so
both runtimes release the same z up to float rounding (tested). Clip-mode checkpoints run in
PyTorch. Once the graph is cached, :mod:`lifeveil.privatizer.lite` runs it without importing
PyTorch at all (``lifeveil encode`` does).
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lifeveil.errors import CheckpointError
from lifeveil.io import atomic_path
from lifeveil.privatizer.checkpoint import resolve_checkpoint
from lifeveil.privatizer.lite import (
    GRAPH_VERSION,
    UnreadableGraphError,
    check_graph,
    checkpoint_hash,
    onnx_cache_path,
    open_session,
    run_posterior,
)
from lifeveil.privatizer.model import PrivatizerModel
from lifeveil.privatizer.privatizer import Privatizer

__all__ = [
    "GRAPH_VERSION",
    "RUNTIMES",
    "OnnxPrivatizer",
    "checkpoint_hash",
    "export_posterior",
    "load_privatizer",
    "onnx_cache_path",
]
log = logging.getLogger(__name__)
RUNTIMES = ("onnx", "torch")
OPSET = 17


class _PosteriorGraph(torch.nn.Module):
    """pixels (N, 3, S, S) in [0, 1] -> (mu, logvar) (N, d): what gets exported."""

    def __init__(self, model: PrivatizerModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(pixels)


def export_posterior(model: PrivatizerModel, out: Path) -> Path:
    """Export the per-frame posterior graph of ``model`` to ``out`` (atomically)."""
    s = model.cfg.input_size
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _PosteriorGraph(model.eval()),
            (torch.rand(1, 3, s, s),),
            str(tmp),
            input_names=["pixels"],
            output_names=["mu", "logvar"],
            dynamic_axes={"pixels": {0: "batch"}, "mu": {0: "batch"}, "logvar": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return out


class OnnxPrivatizer(Privatizer):
    """A :class:`Privatizer` whose encoder runs in ONNX Runtime (the device default)."""

    def __init__(
        self,
        model: PrivatizerModel,
        onnx_path: str | Path,
        seed: int | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__(model, seed)
        self.onnx_path = Path(onnx_path)
        self._session = open_session(self.onnx_path, threads or torch.get_num_threads())
        check_graph(self._session, self.input_size, self.z_dim, self.onnx_path)

    @classmethod
    def load(  # type: ignore[override]
        cls, path: str | Path | None = None, seed: int | None = None, threads: int | None = None
    ) -> Privatizer:
        """Load a checkpoint and its cached ONNX graph (built on first use; rebuilt with a
        one-line notice when missing or unreadable). Clip-mode checkpoints stay in PyTorch."""
        checkpoint = resolve_checkpoint(path)
        base = Privatizer.load(checkpoint, seed)
        if base.cfg.clip_frames > 1:
            print(
                "notice: clip-mode privatizer runs in PyTorch (ONNX covers per-frame)",
                file=sys.stderr,
            )
            return base
        onnx_path = onnx_cache_path(checkpoint)
        if not onnx_path.is_file():
            export_posterior(base.model, onnx_path)
        try:
            return cls(base.model, onnx_path, seed, threads)
        except UnreadableGraphError as exc:
            print(
                f"notice: cached ONNX graph {onnx_path} unreadable ({exc}); rebuilding",
                file=sys.stderr,
            )
            export_posterior(base.model, onnx_path)
            return cls(base.model, onnx_path, seed, threads)

    def posterior(
        self, frames: Sequence[np.ndarray] | np.ndarray, batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`Privatizer.posterior`, computed by ONNX Runtime."""
        return run_posterior(self._session, frames, self.input_size, batch_size)


def load_privatizer(
    path: str | Path | None = None,
    runtime: str = "onnx",
    seed: int | None = None,
    threads: int | None = None,
) -> Privatizer:
    """The privatizer in the chosen runtime: ``onnx`` (device default) or ``torch``."""
    if runtime not in RUNTIMES:
        raise CheckpointError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return Privatizer.load(path, seed)
    return OnnxPrivatizer.load(path, seed, threads)
