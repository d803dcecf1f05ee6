"""``Privatizer``: the on-device API. Load a checkpoint, turn frames or clips into z.

``Representation`` and ``as_frame_batch`` are re-exported from
:mod:`lifeveil.privatizer.representation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lifeveil.errors import CheckpointError, ShapeError
from lifeveil.privatizer.checkpoint import load_checkpoint
from lifeveil.privatizer.config import PrivatizerConfig
from lifeveil.privatizer.model import PrivatizerModel
from lifeveil.privatizer.release import ReleaseMode
from lifeveil.privatizer.representation import Representation, as_frame_batch, code_release
from lifeveil.privatizer.vib import kl_to_standard_normal, nats_to_bits
from lifeveil.teachers.base import to_float_batch

__all__ = ["Privatizer", "Representation", "as_frame_batch"]


class Privatizer:
    """The privatizer M, ready to run on frames. Build with :meth:`load` or from a model."""

    def __init__(self, model: PrivatizerModel, seed: int | None = None) -> None:
        self.model = model.eval().requires_grad_(False)
        self.cfg: PrivatizerConfig = model.cfg
        self._generator = torch.Generator().manual_seed(seed) if seed is not None else None

    @classmethod
    def load(cls, path: str | Path | None = None, seed: int | None = None) -> Privatizer:
        """Load ``NAME.safetensors`` + ``NAME.json``; the shipped default when path is None."""
        from lifeveil.paths import DEFAULT_CHECKPOINT

        state, cfg = load_checkpoint(path or DEFAULT_CHECKPOINT)
        cfg = cfg.replace(student_init="random")  # weights come from the checkpoint
        model = PrivatizerModel(cfg)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            detail = first[1].strip() if len(first) > 1 else first[0]
            raise CheckpointError(f"{path}: weights do not match its config ({detail})") from None
        return cls(model, seed)

    @property
    def version(self) -> str:
        """The version id of this privatizer (:func:`lifeveil.privatizer.version.version_id`)."""
        from lifeveil.privatizer.version import version_id

        weights = self.model.state_dict().items()
        return version_id(self.cfg, ((k, v.detach().cpu().numpy()) for k, v in weights))

    @property
    def z_dim(self) -> int:
        """Dimension of z."""
        return self.cfg.z_dim

    @property
    def input_size(self) -> int:
        """Student input side in pixels."""
        return self.cfg.input_size

    def pixels(self, frames: Sequence[np.ndarray] | np.ndarray) -> torch.Tensor:
        """RGB uint8 frames (any sizes) -> (N, 3, S, S) in [0, 1], centre-cropped to the student size."""
        return to_float_batch(frames, self.input_size)

    @torch.inference_mode()
    def posterior(
        self, frames: Sequence[np.ndarray] | np.ndarray, batch_size: int = 64
    ) -> tuple[np.ndarray, np.ndarray]:
        """The parameters of the release distribution: (mu, logvar), each (N, z_dim) float32.

        ``frames``: one RGB uint8 frame (H, W, 3) -- then N = 1 -- or a batch: a list of frames
        of any sizes or an array (N, H, W, 3). For a VIB privatizer z ~ N(mu, exp(logvar)); for
        a deterministic fsq code mu is the code and logvar is -inf.
        """
        frames = as_frame_batch(frames)
        if len(frames) == 0:
            raise ShapeError("privatize: got no frames")
        mus, logvars = [], []
        for i in range(0, len(frames), batch_size):
            mu, logvar = self.model(self.pixels(frames[i : i + batch_size]))
            mus.append(mu)
            logvars.append(logvar)
        return torch.cat(mus).numpy(), torch.cat(logvars).numpy()

    def privatize(
        self,
        frames: Sequence[np.ndarray] | np.ndarray,
        mode: str | None = None,
        batch_size: int = 64,
    ) -> Representation:
        """Frames -> z exactly as the device releases it, one row per frame: ``.z`` is (N, z_dim).

        ``frames``: one RGB uint8 frame (H, W, 3) -- then N = 1 -- or a batch (a list of frames
        of any sizes, or an array (N, H, W, 3)). ``mode`` is "mean" or "sample" (default: the
        config's; an fsq privatizer always releases its deterministic code).
        """
        mu, logvar = self.posterior(frames, batch_size)
        return self.release(mu, logvar, mode)

    @torch.inference_mode()
    def privatize_clips(
        self, clips: Sequence[Sequence[np.ndarray]], mode: str | None = None
    ) -> Representation:
        """Clips (each a list of frames) -> one z per clip: student features pooled over time."""
        if not clips or any(len(c) == 0 for c in clips):
            raise ShapeError("privatize_clips: every clip needs at least one frame")
        mus, logvars = [], []
        for clip in clips:
            mu, logvar = self.model(self.pixels(clip).unsqueeze(0))
            mus.append(mu)
            logvars.append(logvar)
        return self.release(torch.cat(mus).numpy(), torch.cat(logvars).numpy(), mode)

    @property
    def stochastic(self) -> bool:
        """True when the default release draws fresh noise per frame (a VIB sample)."""
        return not self.cfg.deterministic

    def noise_free(self, frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """The noise-free release an attacker who owns the public model computes: (N, z_dim).

        For a stochastic release this is the posterior mean mu (what averaging many released z
        of the same frame converges to); for a deterministic release it is z itself.
        """
        return self.posterior(frames)[0].astype(np.float32)

    def draws(
        self, frames: Sequence[np.ndarray] | np.ndarray, n: int, mode: str | None = None
    ) -> np.ndarray:
        """``n`` independent releases of each frame, (N, n, z_dim) float32.

        The encoder runs once; a stochastic release draws ``n`` fresh noise samples from the
        posterior, a deterministic one repeats its z.
        """
        mu, logvar = self.posterior(frames)
        mode = ReleaseMode.parse(mode or self.cfg.deploy_mode, "mode")
        if mode is ReleaseMode.MEAN or self.cfg.bottleneck == "fsq":
            return np.repeat(mu[:, None, :], n, axis=1).astype(np.float32)
        mu_t = torch.from_numpy(mu)[:, None, :].expand(-1, n, -1)
        lv_t = torch.from_numpy(logvar)[:, None, :].expand(-1, n, -1)
        return self.model.sample(mu_t, lv_t, self._generator).numpy().astype(np.float32)

    def release(
        self, mu: np.ndarray, logvar: np.ndarray, mode: str | None = None
    ) -> Representation:
        """What leaves the device for a posterior (mu, logvar): its mean or a sample, plus KL bits.

        An fsq privatizer always releases its code (``mode`` is ignored) and reports its exact
        bits per frame in ``kl_bits``.
        """
        mode = ReleaseMode.parse(mode or self.cfg.deploy_mode, "mode")
        if self.cfg.bottleneck == "fsq":
            return code_release(mu, logvar, self.cfg.fsq_levels)
        if mode is ReleaseMode.MEAN:
            z = mu
        else:
            z = self.model.sample(
                torch.from_numpy(mu), torch.from_numpy(logvar), self._generator
            ).numpy()
        kl = nats_to_bits(
            kl_to_standard_normal(torch.from_numpy(mu), torch.from_numpy(logvar))
        ).numpy()
        return Representation(z.astype(np.float32), mu, logvar, kl.astype(np.float32))

    @torch.inference_mode()
    def decode(self, z: np.ndarray) -> np.ndarray:
        """z (N, z_dim) -> predicted teacher embedding (N, teacher_dim), in teacher units."""
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ShapeError(f"decode: expected z of shape (N, {self.z_dim}), got {z.shape}")
        return self.model.decoder.to_teacher_space(torch.from_numpy(z)).numpy()
