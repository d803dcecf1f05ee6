"""The device's ONNX runtime without PyTorch: a cached graph, NumPy around it.

Once a checkpoint's ONNX graph is cached (``lifeveil export``, or the first run of
:func:`lifeveil.privatizer.runtime.load_privatizer`, which builds it with PyTorch), encoding
needs only ONNX Runtime, OpenCV and NumPy: :class:`LitePrivatizer` reads the checkpoint's JSON
config, opens the cached graph and does the preprocessing and the release in NumPy. A camera
then starts in well under a second instead of the seconds it takes to import PyTorch.

The release is the same as :class:`lifeveil.privatizer.Privatizer`'s: an fsq code as is, with
its exact bits; a VIB mean or a sample ``mu + exp(logvar / 2) * eps`` with its KL bound. For a
sample the noise comes from NumPy's generator (same distribution, a different stream than
PyTorch's for the same seed).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from lifeveil.errors import CheckpointError, ShapeError
from lifeveil.imaging import resize_center_crop
from lifeveil.privatizer.checkpoint import config_path, resolve_checkpoint
from lifeveil.privatizer.config import PrivatizerConfig
from lifeveil.privatizer.release import ReleaseMode
from lifeveil.privatizer.representation import Representation, as_frame_batch, code_release

GRAPH_VERSION = 1  # bump when the exported graph changes; old cache files are then rebuilt
LN2 = math.log(2.0)


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


def frames_to_pixels(frames: Sequence[np.ndarray] | np.ndarray, size: int) -> np.ndarray:
    """RGB uint8 frames of any sizes -> float32 (N, 3, size, size) in [0, 1], centre-cropped."""
    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        out[i] = resize_center_crop(frame, size)
    return out.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)


def run_posterior(
    session,
    frames: Sequence[np.ndarray] | np.ndarray,
    size: int,
    batch_size: int = 64,  # noqa: ANN001
) -> tuple[np.ndarray, np.ndarray]:
    """(mu, logvar), each (N, z_dim) float32: the cached graph on frames, in batches."""
    frames = as_frame_batch(frames)
    if len(frames) == 0:
        raise ShapeError("privatize: got no frames")
    mus, logvars = [], []
    for i in range(0, len(frames), batch_size):
        mu, logvar = session.run(
            None, {"pixels": frames_to_pixels(frames[i : i + batch_size], size)}
        )
        mus.append(mu)
        logvars.append(logvar)
    return np.concatenate(mus).astype(np.float32), np.concatenate(logvars).astype(np.float32)


class UnreadableGraphError(Exception):
    """The cached ONNX file exists but ONNX Runtime cannot load it (truncated, corrupt)."""


def open_session(path: Path, threads: int | None):  # noqa: ANN201  (onnxruntime.InferenceSession)
    """An optimised CPU session on ``path``; ``threads`` None lets ONNX Runtime choose."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = max(0, int(threads or 0))
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001  (onnxruntime raises its own exception types)
        raise UnreadableGraphError(str(exc).splitlines()[0][:160]) from None


def check_graph(session, size: int, z_dim: int, path: Path) -> None:  # noqa: ANN001
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


class LitePrivatizer:
    """A per-frame privatizer that runs a cached ONNX graph, with no PyTorch in the process.

    Same surface as :class:`lifeveil.privatizer.Privatizer` for what a device does:
    ``privatize``, ``posterior``, ``release``, ``noise_free``, ``cfg``, ``z_dim``, ``input_size``,
    ``stochastic``. Clip-mode checkpoints are not served (they run in PyTorch).
    """

    def __init__(
        self,
        cfg: PrivatizerConfig,
        onnx_path: str | Path,
        checkpoint: Path | None = None,
        seed: int | None = None,
        threads: int | None = None,
    ) -> None:
        if cfg.clip_frames > 1:
            raise CheckpointError("a clip-mode privatizer runs in PyTorch, not the lite runtime")
        self.cfg = cfg
        self.checkpoint = checkpoint
        self.onnx_path = Path(onnx_path)
        self._rng = np.random.default_rng(seed)
        self._session = open_session(self.onnx_path, threads)
        check_graph(self._session, cfg.input_size, cfg.z_dim, self.onnx_path)

    @classmethod
    def from_cache(
        cls, path: str | Path | None = None, seed: int | None = None, threads: int | None = None
    ) -> LitePrivatizer | None:
        """The lite privatizer of a checkpoint whose graph is cached and readable, else None."""
        checkpoint = resolve_checkpoint(path)
        cfg = PrivatizerConfig.load(config_path(checkpoint))
        onnx_path = onnx_cache_path(checkpoint)
        if cfg.clip_frames > 1 or not onnx_path.is_file():
            return None
        try:
            return cls(cfg, onnx_path, checkpoint, seed, threads)
        except UnreadableGraphError:
            return None

    @cached_property
    def version(self) -> str:
        """The version id (:func:`lifeveil.privatizer.version.version_id`), read once from the
        checkpoint's weights: the same id PyTorch gives the same checkpoint."""
        from safetensors.numpy import load_file

        from lifeveil.privatizer.version import version_id

        if self.checkpoint is None:
            raise CheckpointError("this lite privatizer was not opened from a checkpoint file")
        return version_id(self.cfg, load_file(str(self.checkpoint)).items())

    @property
    def z_dim(self) -> int:
        """Dimension of z."""
        return self.cfg.z_dim

    @property
    def input_size(self) -> int:
        """Student input side in pixels."""
        return self.cfg.input_size

    @property
    def stochastic(self) -> bool:
        """True when the default release draws fresh noise per frame (a VIB sample)."""
        return not self.cfg.deterministic

    def pixels(self, frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """RGB uint8 frames -> float32 (N, 3, S, S) in [0, 1], the graph's input."""
        return frames_to_pixels(frames, self.input_size)

    def posterior(
        self, frames: Sequence[np.ndarray] | np.ndarray, batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray]:
        """(mu, logvar), each (N, z_dim) float32, as :meth:`Privatizer.posterior`."""
        return run_posterior(self._session, frames, self.input_size, batch_size)

    def privatize(
        self,
        frames: Sequence[np.ndarray] | np.ndarray,
        mode: str | None = None,
        batch_size: int = 64,
    ) -> Representation:
        """Frames -> z exactly as the device releases it, one row per frame."""
        mu, logvar = self.posterior(frames, batch_size)
        return self.release(mu, logvar, mode)

    def privatize_clips(self, clips: Sequence[Sequence[np.ndarray]], mode: str | None = None):  # noqa: ANN201
        """Not served: clip-mode checkpoints run in PyTorch (never returned by ``from_cache``)."""
        raise CheckpointError("clip mode runs in PyTorch: use --runtime torch")

    def noise_free(self, frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """The noise-free release (mu, or the code itself): (N, z_dim) float32."""
        return self.posterior(frames)[0]

    def release(
        self, mu: np.ndarray, logvar: np.ndarray, mode: str | None = None
    ) -> Representation:
        """What leaves the device for a posterior: the code, the mean or a sample, plus bits."""
        mode_ = ReleaseMode.parse(mode or self.cfg.deploy_mode, "mode")
        if self.cfg.bottleneck == "fsq":
            return code_release(mu, logvar, self.cfg.fsq_levels)
        z = mu
        if mode_ is not ReleaseMode.MEAN:
            z = mu + np.exp(0.5 * logvar) * self._rng.standard_normal(mu.shape, dtype=np.float32)
        kl_nats = 0.5 * (mu**2 + np.exp(logvar) - 1.0 - logvar).sum(axis=-1)
        return Representation(z.astype(np.float32), mu, logvar, (kl_nats / LN2).astype(np.float32))
