"""Reconstruction by decoder (RR): learn features -> face on auxiliary faces, apply to victims.

Threat model: the attacker knows the method and can query it as a black box, so it encodes its
own auxiliary faces (LFW training identities framed like the ORL portraits, plus ORL s1-s10;
never a victim) and fits a decoder from the released features back to the face crop. It then
decodes the victims' released features. We report pixel quality (PSNR, SSIM) and, what matters
for privacy, whether a real face recogniser (SFace) picks the right person among all victims
from the reconstruction.

The decoder is kernel ridge regression onto the crop's pixels (Gaussian kernel on standardised
features, bandwidth from the median pairwise distance): closed form, seconds on a CPU for two
thousand faces. It was the strongest of the decoders tried on the same data (2,056 LFW faces in
an earlier framing, raw-teacher features of the 150 held-out ORL victim images): SFace identity
match 0.15 against 0.11 for linear ridge and 0.05 for the conv decoder it replaced, which also
took about a minute of training per job (chance 0.033).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lifeveil.bench.attacks.face_match import (
    FaceRecogniser,
    judge_reconstructions,
    optional_recogniser,
)
from lifeveil.bench.attacks.identity import split_per_identity
from lifeveil.bench.attacks.reconstruction import (
    attacker_portraits,
    face_crops,
    quality,
    save_recon_grid,
)
from lifeveil.bench.contracts import EvalInputs, Result
from lifeveil.bench.metrics import ssim
from lifeveil.bench.schema import RECON_DECODER, Axis

RIDGE = 1.0  # kernel ridge penalty (the kernel's diagonal is 1)
BANDWIDTH = 1.0  # Gaussian kernel width as a multiple of the median squared distance
GRID_EACH = 3  # the grid shows the 3 best and the 3 worst reconstructions (by SSIM)


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances (N, M) between rows of ``a`` (N, D) and ``b`` (M, D).

    >>> squared_distances(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[25.,  0.]])
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def gaussian_kernel(a: np.ndarray, b: np.ndarray, gamma: float) -> np.ndarray:
    """exp(-gamma * ||a_i - b_j||^2), shape (N, M)."""
    return np.exp(-gamma * squared_distances(a, b))


@dataclass
class FeatureDecoder:
    """A fitted features -> face decoder (kernel ridge regression in dual form).

    A victim's standardised features z give the crop ``mean_face + k(z, train_z) @ weights``,
    clipped to [0, 1]; ``train_z`` (N, D) are the standardised auxiliary features.
    """

    train_z: np.ndarray
    weights: np.ndarray  # (N, S*S) dual coefficients
    mean: np.ndarray  # (D,) feature standardisation
    std: np.ndarray
    gamma: float
    mean_face: np.ndarray  # (S, S) mean auxiliary crop

    def reconstruct(self, features: np.ndarray) -> np.ndarray:
        """Released features (N, D) -> reconstructed crops (N, S, S) in [0, 1]."""
        z = (np.asarray(features, np.float64) - self.mean) / self.std
        flat = gaussian_kernel(z, self.train_z, self.gamma) @ self.weights
        recon = flat.reshape(len(z), *self.mean_face.shape) + self.mean_face
        return np.clip(recon, 0.0, 1.0).astype(np.float32)


def fit_feature_decoder(
    features: np.ndarray, crops: np.ndarray, ridge: float = RIDGE, bandwidth: float = BANDWIDTH
) -> FeatureDecoder:
    """Fit kernel ridge regression from ``features`` (N, D) to ``crops`` (N, S, S) by pixel MSE."""
    features = np.asarray(features, np.float64)
    crops = np.asarray(crops, np.float64)
    mean, std = features.mean(axis=0), features.std(axis=0)
    # a dimension constant on the auxiliary faces teaches nothing: ignore it (z = 0 there), or
    # a victim off that constant would look infinitely far from every auxiliary face
    std = np.where(std > 1e-8, std, np.inf)
    z = (features - mean) / std
    d = squared_distances(z, z)
    gamma = 1.0 / (bandwidth * max(float(np.median(d[np.triu_indices(len(z), 1)])), 1e-12))
    mean_face = crops.mean(axis=0)
    targets = (crops - mean_face).reshape(len(crops), -1)
    weights = np.linalg.solve(np.exp(-gamma * d) + ridge * np.eye(len(z)), targets)
    return FeatureDecoder(z, weights, mean, std, gamma, mean_face)


def decoder_attack(
    aux_features: np.ndarray,
    aux_crops: np.ndarray,
    victim_features: np.ndarray,
    victim_crops: np.ndarray,
    victim_labels: np.ndarray,
    *,
    recogniser: FaceRecogniser | None = None,
    gallery: tuple[np.ndarray, np.ndarray] | None = None,
    gallery_index: np.ndarray | None = None,
    grid_path: Path | None = None,
    title: str = "",
) -> dict[str, float]:
    """Fit on auxiliary (features, crops), reconstruct every victim, score the reconstructions.

    Identity match: SFace embeds each reconstruction and every real victim crop (``gallery``,
    default the victims passed, with ``gallery_index`` their rows in it); a match is when the
    best-scoring identity (leaving out the very image reconstructed) is the victim.
    Returns ``psnr``, ``ssim`` (dB / [-1, 1], vs the original crops), ``psnr_mean_face`` and
    ``ssim_mean_face`` (the auxiliary mean face as a no-information reconstruction),
    ``n_aux`` (auxiliary faces the decoder was fitted on),
    ``id_match``, ``id_match_chance``, ``id_match_real`` (the same protocol on the real crops:
    the recogniser's ceiling), ``face_found`` (fraction of reconstructions YuNet detects) and
    ``n_images``. Without a recogniser the ``id_*`` keys are omitted.
    """
    decoder = fit_feature_decoder(aux_features, aux_crops)
    recon = decoder.reconstruct(victim_features)
    mean_face = np.broadcast_to(aux_crops.mean(axis=0), victim_crops.shape)
    out: dict[str, float] = dict(quality(victim_crops, recon))
    baseline = quality(victim_crops, mean_face)
    out |= {"psnr_mean_face": baseline["psnr"], "ssim_mean_face": baseline["ssim"]}
    out["n_images"] = len(recon)
    out["n_aux"] = len(aux_crops)
    if recogniser is not None:
        out |= judge_reconstructions(
            recogniser, recon, victim_crops, victim_labels, gallery_index, gallery
        )
    if grid_path is not None:
        pick = best_and_worst(victim_crops, recon, GRID_EACH)
        save_recon_grid(
            grid_path,
            [victim_crops[pick], recon[pick]],
            ["original", "decoder"],
            f"{title or 'reconstruction by decoder'}: "
            + (
                f"the {GRID_EACH} best, then the {GRID_EACH} worst by SSIM"
                if len(pick) == 2 * GRID_EACH
                else "best first by SSIM"
            ),
        )
    return out


def best_and_worst(originals: np.ndarray, reconstructions: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` best then the ``n`` worst reconstructions by SSIM (all when fewer
    than ``2 n``), so a grid shows the attack's range instead of near-identical faces."""
    scores = np.array([ssim(o, r) for o, r in zip(originals, reconstructions, strict=True)])
    order = np.argsort(-scores, kind="stable")
    if len(order) <= 2 * n:
        return order
    return np.concatenate([order[:n], order[-n:]])


def one_per_identity(labels: np.ndarray, n: int) -> np.ndarray:
    """Up to ``n`` indices, the first image of each identity in order, then any others."""
    labels = np.asarray(labels)
    firsts = [int(np.flatnonzero(labels == i)[0]) for i in dict.fromkeys(labels.tolist())]
    rest = [i for i in range(len(labels)) if i not in set(firsts)]
    return np.array((firsts + rest)[:n], dtype=int)


def measure_recon_decoder(inputs: EvalInputs) -> Result:
    """The registered ``recon_decoder`` attack: every held-out ORL victim face decoded.

    The decoder learns from the attacker's faces only: the LFW training portraits (and their
    augmented copies) plus the ORL auxiliary people; the grid goes to ``recon_decoder.png``.
    """
    data, r, seed = inputs.data, inputs.released, inputs.seed
    labels = data.faces_victims.labels
    victim_crops = face_crops(data.faces_victims.images)
    recogniser, no_judge = optional_recogniser(inputs.face_judge)
    _, held_out = split_per_identity(labels, seed=seed)
    portraits = attacker_portraits(data, inputs.preset.recon_aux_copies, seed)
    metrics: dict[str, object] = dict(
        decoder_attack(
            np.concatenate([r.recon_aux, r.aux]),
            face_crops([*portraits, *data.faces_aux.images]),
            r.victims[held_out],
            victim_crops[held_out],
            labels[held_out],
            recogniser=recogniser,
            gallery=(victim_crops, labels),
            gallery_index=held_out,
            grid_path=inputs.out_dir / "recon_decoder.png",
            title=f"{inputs.method.id}: reconstruction by decoder",
        )
    )
    if recogniser is None:
        metrics["id_judge_missing"] = no_judge
    return Result.single(Axis.RR, RECON_DECODER, metrics)
