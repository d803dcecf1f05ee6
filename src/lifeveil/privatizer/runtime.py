"""ONNX Runtime as the device runtime of the privatizer.

The checkpoint's per-frame graph (pixels -> mu, logvar; for an fsq code, code and -inf) is
exported once and cached, keyed by a hash of the checkpoint's weights and config: beside the
checkpoint in ``.onnx/`` when that folder is writable, else in ``$LIFEVEIL_CACHE`` (default
``~/.cache/lifeveil``) under ``onnx/``. ONNX Runtime then folds batch-norm into the
convolutions and fuses the graph (``ORT_ENABLE_ALL``). Everything after the encoder (release
mode, noise, KL bits) is shared with the PyTorch :class:`~lifeveil.privatizer.Privatizer`, so
both runtimes release the same z up to float rounding (tested). Clip-mode checkpoints run in
PyTorch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lifeveil.errors import CheckpointError
from lifeveil.io import atomic_path
from lifeveil.privatizer.checkpoint import config_path
from lifeveil.privatizer.model import PrivatizerModel
from lifeveil.privatizer.privatizer import Privatizer, as_frame_batch

log = logging.getLogger(__name__)
RUNTIMES = ("onnx", "torch")
GRAPH_VERSION = 1  # bump when the exported graph changes; old cache files are then rebuilt
OPSET = 17


def checkpoint_hash(path: str | Path) -> str:
    """SHA-256 (hex, first 16) over the checkpoint's weights file and its JSON config."""
    path = Path(path)
    digest = hashlib.sha256(f"lifeveil-onnx-v{GRAPH_VERSION}".encode())
    for part in (path, config_path(path)):
        with open(part, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def onnx_cache_path(checkpoint: str | Path) -> Path:
    """Where the ONNX graph of ``checkpoint`` is (or will be) cached."""
    checkpoint = Path(checkpoint)
    name = f"{checkpoint.stem}-{checkpoint_hash(checkpoint)}.onnx"
    beside = checkpoint.parent / ".onnx"
    if os.access(beside if beside.is_dir() else checkpoint.parent, os.W_OK):
        return beside / name
    root = Path(os.environ.get("LIFEVEIL_CACHE", Path.home() / ".cache" / "lifeveil"))
    return root / "onnx" / name


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
        self._session = _open_session(self.onnx_path, threads)
        _check_graph(self._session, self.input_size, self.z_dim, self.onnx_path)

    @classmethod
    def load(  # type: ignore[override]
        cls, path: str | Path | None = None, seed: int | None = None, threads: int | None = None
    ) -> Privatizer:
        """Load a checkpoint and its cached ONNX graph (built on first use; rebuilt with a
        one-line notice when missing or unreadable). Clip-mode checkpoints stay in PyTorch."""
        from lifeveil.paths import DEFAULT_CHECKPOINT

        checkpoint = Path(path or DEFAULT_CHECKPOINT)
        base = Privatizer.load(checkpoint, seed)
        if base.cfg.clip_frames > 1:
            print(
                "notice: clip-mode privatizer runs in PyTorch (ONNX covers per-frame)",
                file=sys.stderr,
            )
            return base
        if checkpoint.is_dir():
            checkpoint = next(
                p for p in sorted(checkpoint.glob("*.safetensors")) if ".resume." not in p.name
            )
        onnx_path = onnx_cache_path(checkpoint)
        if not onnx_path.is_file():
            export_posterior(base.model, onnx_path)
        try:
            return cls(base.model, onnx_path, seed, threads)
        except _UnreadableGraphError as exc:
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
        frames = as_frame_batch(frames)
        if len(frames) == 0:
            from lifeveil.errors import ShapeError

            raise ShapeError("privatize: got no frames")
        mus, logvars = [], []
        for i in range(0, len(frames), batch_size):
            pixels = self.pixels(frames[i : i + batch_size]).numpy()
            mu, logvar = self._session.run(None, {"pixels": pixels})
            mus.append(mu)
            logvars.append(logvar)
        return np.concatenate(mus).astype(np.float32), np.concatenate(logvars).astype(np.float32)


class _UnreadableGraphError(Exception):
    pass


def _open_session(path: Path, threads: int | None):  # noqa: ANN202  (onnxruntime.InferenceSession)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001  (onnxruntime raises its own exception types)
        raise _UnreadableGraphError(str(exc).splitlines()[0][:160]) from None


def _check_graph(session, size: int, z_dim: int, path: Path) -> None:  # noqa: ANN001
    """Refuse a graph whose input or outputs disagree with the checkpoint config."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    ok = (
        [i.name for i in inputs] == ["pixels"]
        and list(inputs[0].shape[1:]) == [3, size, size]
        and [o.name for o in outputs] == ["mu", "logvar"]
        and all(o.shape[-1] == z_dim for o in outputs)
    )
    if not ok:
        got = f"inputs {[(i.name, i.shape) for i in inputs]}, outputs {[(o.name, o.shape) for o in outputs]}"
        raise CheckpointError(
            f"{path}: ONNX graph does not match the checkpoint (expected pixels (N, 3, {size}, "
            f"{size}) -> mu, logvar (N, {z_dim}); got {got}); delete it to rebuild"
        )


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
