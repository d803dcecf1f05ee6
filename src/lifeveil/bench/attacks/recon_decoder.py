"""Reconstruction by decoder (RR): learn features -> image on auxiliary faces, apply to victims.

Threat model: the attacker knows the method and can query it as a black box, so it encodes its
own auxiliary faces (ORL s1-s10, and their mirror images) and trains a conv decoder from the
released features back to the face. It then decodes the victims' released features. We report
pixel quality (PSNR, SSIM) and, what matters for privacy, whether a real face recogniser
(SFace) picks the right person among all victims from the reconstruction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lifeveil.bench.attacks.face_match import FaceRecogniser, judge_reconstructions
from lifeveil.bench.attacks.reconstruction import (
    ConvDecoder,
    TrainSchedule,
    batches,
    one_torch_thread,
    quality,
    save_recon_grid,
)

INPUT_NOISE = 0.1  # std of Gaussian noise on standardised features during training (regulariser)
DROPOUT = 0.2
GRID_COLUMNS = 8


@dataclass
class FeatureDecoder:
    """A trained features -> face decoder and the feature standardisation it expects."""

    net: ConvDecoder
    mean: np.ndarray
    std: np.ndarray

    @torch.no_grad()
    def reconstruct(self, features: np.ndarray) -> np.ndarray:
        """Released features (N, D) -> reconstructed crops (N, 64, 64) in [0, 1]."""
        self.net.eval()
        z = torch.from_numpy(((np.asarray(features) - self.mean) / self.std).astype(np.float32))
        return self.net(z)[:, 0].numpy()


def train_feature_decoder(
    features: np.ndarray, crops: np.ndarray, schedule: TrainSchedule, seed: int = 0
) -> FeatureDecoder:
    """Fit a :class:`ConvDecoder` from ``features`` (N, D) to ``crops`` (N, 64, 64) by pixel MSE."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    mean = features.mean(axis=0)
    std = features.std(axis=0) + 1e-6
    x = torch.from_numpy(((features - mean) / std).astype(np.float32))
    y = torch.from_numpy(np.asarray(crops, np.float32))[:, None]
    net = ConvDecoder(x.shape[1], crops.mean(axis=0), dropout=DROPOUT)
    opt = torch.optim.Adam(net.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay)
    net.train()
    with one_torch_thread():
        for _ in range(schedule.epochs):
            for idx in batches(len(x), schedule.batch_size, gen):
                noisy = x[idx] + INPUT_NOISE * torch.randn(x[idx].shape, generator=gen)
                loss = torch.mean((net(noisy) - y[idx]) ** 2)
                opt.zero_grad()
                loss.backward()
                opt.step()
    return FeatureDecoder(net.eval(), mean, std)


def decoder_attack(
    aux_features: np.ndarray,
    aux_crops: np.ndarray,
    victim_features: np.ndarray,
    victim_crops: np.ndarray,
    victim_labels: np.ndarray,
    *,
    schedule: TrainSchedule,
    seed: int = 0,
    recogniser: FaceRecogniser | None = None,
    gallery: tuple[np.ndarray, np.ndarray] | None = None,
    gallery_index: np.ndarray | None = None,
    grid_path: Path | None = None,
    title: str = "",
) -> dict[str, float]:
    """Train on auxiliary (features, crops), reconstruct every victim, score the reconstructions.

    Identity match: SFace embeds each reconstruction and every real victim crop (``gallery``,
    default the victims passed, with ``gallery_index`` their rows in it); a match is when the
    best-scoring identity (leaving out the very image reconstructed) is the victim.
    Returns ``psnr``, ``ssim`` (dB / [-1, 1], vs the original crops), ``psnr_mean_face`` and
    ``ssim_mean_face`` (the auxiliary mean face as a no-information reconstruction),
    ``id_match``, ``id_match_chance``, ``id_match_real`` (the same protocol on the real crops:
    the recogniser's ceiling), ``face_found`` (fraction of reconstructions YuNet detects) and
    ``n_images``. Without a recogniser the ``id_*`` keys are omitted.
    """
    decoder = train_feature_decoder(aux_features, aux_crops, schedule, seed)
    recon = decoder.reconstruct(victim_features)
    mean_face = np.broadcast_to(aux_crops.mean(axis=0), victim_crops.shape)
    out: dict[str, float] = dict(quality(victim_crops, recon))
    baseline = quality(victim_crops, mean_face)
    out |= {"psnr_mean_face": baseline["psnr"], "ssim_mean_face": baseline["ssim"]}
    out["n_images"] = len(recon)
    if recogniser is not None:
        out |= judge_reconstructions(
            recogniser, recon, victim_crops, victim_labels, gallery_index, gallery
        )
    if grid_path is not None:
        n = min(GRID_COLUMNS, len(recon))
        pick = one_per_identity(victim_labels, n)
        save_recon_grid(
            grid_path,
            [victim_crops[pick], recon[pick]],
            ["original", "decoder"],
            title or "reconstruction by decoder",
        )
    return out


def one_per_identity(labels: np.ndarray, n: int) -> np.ndarray:
    """Up to ``n`` indices, the first image of each identity in order, then any others."""
    labels = np.asarray(labels)
    firsts = [int(np.flatnonzero(labels == i)[0]) for i in dict.fromkeys(labels.tolist())]
    rest = [i for i in range(len(labels)) if i not in set(firsts)]
    return np.array((firsts + rest)[:n], dtype=int)
