"""Reconstruction by optimisation (RR): the paper's Appendix A inversion attack, scaled down.

The attacker owns a generator G trained on its auxiliary faces (LFW training identities framed
like the ORL portraits, plus ORL s1-s10; the decoder half of a small convolutional autoencoder,
standing in for the paper's StyleGAN3). For each victim it only
has the released vector e_gt; it searches a latent w so that the method's encoder, applied to
G(w), reproduces e_gt:

    w* = argmin_w  L_E(E(G(w)), e_gt),   L_E = mean squared error,

by Adam from several random starts, keeping the (restart, step) with the lowest L_E, wherever
it occurs along the path. The encoder E is the method's differentiable surrogate
(:meth:`Method.features_torch`), which the attacker can build because it knows the method.
Reported next to L_E: L_I = ||G(w) - I_gt||_2 (never used by the attacker), PSNR/SSIM, the
SFace identity match, and L_E of the true image through the same pipeline (the floor a
perfect generator would reach).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from lifeveil.bench.attacks.face_match import (
    FaceRecogniser,
    judge_reconstructions,
    optional_recogniser,
)
from lifeveil.bench.attacks.recon_decoder import one_per_identity
from lifeveil.bench.attacks.reconstruction import (
    ConvDecoder,
    ConvEncoder,
    TrainSchedule,
    augment_crops,
    batches,
    face_crops,
    one_torch_thread,
    quality,
    save_recon_grid,
)
from lifeveil.bench.contracts import EvalInputs, Result, Stopwatch
from lifeveil.bench.schema import RECON_GENERATOR, RECON_OPTIM, Axis

if TYPE_CHECKING:
    from lifeveil.bench.methods.base import Method

LATENT_DIM = 32
LATENT_NOISE = 0.05  # latent jitter while training G: smooths the generator for optimisation
LR_START, LR_END = 0.1, 0.01  # Adam step on the standardised latent, decayed linearly
GENERATOR_BATCH = 16  # small batches: more steps per epoch for a few hundred faces
CURVES_SHOWN = 4  # targets drawn in optim_curves.png
SURROGATE_SIZE = 224  # pixels fed to Method.features_torch: the teacher crop, (N, 3, 224, 224)
Encoder = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class FaceGenerator:
    """G: standardised latent u (N, latent_dim) -> grey face (N, 1, 64, 64).

    w = mean + std * u, where mean/std are those of the auxiliary faces' codes, so u ~ N(0, I)
    draws plausible faces.
    """

    net: ConvDecoder
    mean: torch.Tensor
    std: torch.Tensor

    @property
    def latent_dim(self) -> int:
        return int(self.mean.numel())

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        return self.net(self.mean + self.std * u)


def train_generator(
    crops: np.ndarray, schedule: TrainSchedule, seed: int = 0, latent_dim: int = LATENT_DIM
) -> FaceGenerator:
    """Train a conv autoencoder on auxiliary crops (N, 64, 64) and keep its decoder as G.

    Pixel-space augmentation (mirror, shifts, brightness) costs the attacker no queries.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.asarray(crops, np.float32))[:, None]
    encoder = ConvEncoder(latent_dim)
    decoder = ConvDecoder(latent_dim, crops.mean(axis=0))
    params = [*encoder.parameters(), *decoder.parameters()]
    opt = torch.optim.Adam(params, lr=schedule.lr, weight_decay=schedule.weight_decay)
    with one_torch_thread():
        for _ in range(schedule.epochs):
            for idx in batches(len(x), GENERATOR_BATCH, gen):
                batch = augment_crops(x[idx], gen)
                code = encoder(batch)
                jitter = LATENT_NOISE * code.detach().std() * torch.randn(code.shape, generator=gen)
                loss = F.mse_loss(decoder(code + jitter), batch) + 1e-4 * code.pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            codes = encoder(x)
    decoder.eval().requires_grad_(False)
    return FaceGenerator(decoder, codes.mean(0), codes.std(0) + 1e-6)


_GENERATORS: dict[str, FaceGenerator] = {}


def cached_generator(crops: np.ndarray, schedule: TrainSchedule, seed: int = 0) -> FaceGenerator:
    """:func:`train_generator`, memoised per process: G depends on auxiliary data only."""
    h = hashlib.blake2b(np.ascontiguousarray(crops, np.float32).tobytes(), digest_size=16)
    key = f"{h.hexdigest()}|{schedule}|{seed}"
    if key not in _GENERATORS:
        _GENERATORS[key] = train_generator(crops, schedule, seed)
    return _GENERATORS[key]


def to_encoder_pixels(grey: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 1, s, s) grey in [0, 1] -> (N, 3, size, size) RGB, bilinear, as the encoder expects."""
    rgb = grey.expand(-1, 3, -1, -1)
    if rgb.shape[-1] != size:
        rgb = F.interpolate(rgb, size=(size, size), mode="bilinear", align_corners=False)
    return rgb


@dataclass
class Inversion:
    """Result of :func:`invert`: T targets, R restarts, S steps.

    images: (T, 64, 64) best reconstruction per target; le, li: (T,) their L_E and L_I;
    le_curves, li_curves: (T, S) per step, of the restart that won; lr: (S,) step sizes;
    best_restart: (T,) index of the winning restart.
    """

    images: np.ndarray
    le: np.ndarray
    li: np.ndarray
    le_curves: np.ndarray
    li_curves: np.ndarray
    lr: np.ndarray
    best_restart: np.ndarray


def invert(
    encoder: Encoder,
    generator: FaceGenerator,
    targets: np.ndarray,
    originals: np.ndarray,
    *,
    restarts: int,
    steps: int,
    seed: int = 0,
    encoder_size: int = 224,
) -> Inversion:
    """Optimise G's latent for every (target, restart) pair in one batch.

    ``targets`` (T, D) are released vectors; ``originals`` (T, 64, 64) are used only to log L_I.
    """
    T, R = len(targets), max(1, restarts)
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(T * R, generator.latent_dim, generator=gen).requires_grad_(True)
    e_gt = torch.from_numpy(np.asarray(targets, np.float32)).repeat_interleave(R, dim=0)
    i_gt = torch.from_numpy(np.asarray(originals, np.float32))[:, None].repeat_interleave(R, 0)
    opt = torch.optim.Adam([u], lr=LR_START)
    lrs = np.linspace(LR_START, LR_END, steps) if steps > 1 else np.array([LR_START])
    le_log = np.zeros((T * R, steps))
    li_log = np.zeros((T * R, steps))
    best_le = np.full(T * R, np.inf)
    best_img = np.zeros((T * R, *originals.shape[1:]), np.float32)
    for step, lr in enumerate(lrs):
        for group in opt.param_groups:
            group["lr"] = float(lr)
        img = generator(u)
        le = torch.mean((encoder(to_encoder_pixels(img, encoder_size)) - e_gt) ** 2, dim=1)
        with torch.no_grad():
            li = torch.linalg.vector_norm((img - i_gt).flatten(1), dim=1)
            le_np = le.detach().double().numpy()
            improved = le_np < best_le
            best_le[improved] = le_np[improved]
            best_img[improved] = img[improved, 0].numpy()
        le_log[:, step], li_log[:, step] = le_np, li.numpy()
        opt.zero_grad()
        le.sum().backward()
        opt.step()
    winner = best_le.reshape(T, R).argmin(axis=1)
    rows = np.arange(T) * R + winner
    li_best = np.linalg.norm((best_img[rows] - originals).reshape(T, -1), axis=1)
    return Inversion(
        best_img[rows], best_le[rows], li_best, le_log[rows], li_log[rows], lrs, winner
    )


def true_image_le(
    encoder: Encoder, originals: np.ndarray, targets: np.ndarray, encoder_size: int = 224
) -> np.ndarray:
    """L_E of the original crops through the same pipeline: what a perfect G could reach."""
    with torch.no_grad():
        x = to_encoder_pixels(
            torch.from_numpy(np.asarray(originals, np.float32))[:, None], encoder_size
        )
        e = encoder(x).double().numpy()
    return np.mean((e - np.asarray(targets, np.float64)) ** 2, axis=1)


def save_optim_curves(path: Path, inv: Inversion, labels: list[str], title: str) -> Path:
    """Learning rate, L_E and L_I per step for the winning restart of each target (Figs. 6-7)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    steps = np.arange(len(inv.lr))
    axes[0].plot(steps, inv.lr, color="k")
    axes[0].set_title("learning rate", fontsize=9)
    for t, name in enumerate(labels):
        axes[1].plot(steps, inv.le_curves[t], label=name, lw=1)
        axes[2].plot(steps, inv.li_curves[t], label=name, lw=1)
    axes[1].set_title(r"embedding discrepancy $\mathcal{L}_E$", fontsize=9)
    axes[1].set_yscale("log")
    axes[2].set_title(r"pixel difference $\mathcal{L}_I$", fontsize=9)
    for ax in axes:
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[2].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_optim_grid(path: Path, originals: np.ndarray, inv: Inversion, title: str) -> Path:
    """Originals (top row) against the selected reconstructions (bottom row)."""
    return save_recon_grid(path, [originals, inv.images], ["original", "optimised"], title)


def optimisation_attack(
    encoder: Encoder,
    generator: FaceGenerator,
    target_features: np.ndarray,
    target_crops: np.ndarray,
    target_labels: np.ndarray,
    *,
    restarts: int,
    steps: int,
    seed: int = 0,
    recogniser: FaceRecogniser | None = None,
    gallery: tuple[np.ndarray, np.ndarray] | None = None,
    gallery_index: np.ndarray | None = None,
    out_dir: Path | None = None,
    title: str = "",
    encoder_size: int = 224,
) -> dict[str, float]:
    """Invert each released vector with G and score the result.

    ``gallery`` = (real crops, labels) of all victims and ``gallery_index`` the row of each
    target in it, for the SFace identity match (see :func:`judge_reconstructions`).
    Returns ``le`` (mean best L_E), ``le_start`` (mean L_E at step 0 of the winning restarts),
    ``le_true`` (mean L_E of the real images), ``le_rel`` (``le`` / mean squared target entry),
    ``li``, ``psnr``, ``ssim``, the ``id_*`` keys with a recogniser, and the budget used.
    With ``out_dir``, writes ``recon_optim.png`` and ``optim_curves.png`` there.
    """
    inv = invert(
        encoder,
        generator,
        target_features,
        target_crops,
        restarts=restarts,
        steps=steps,
        seed=seed,
        encoder_size=encoder_size,
    )
    scale = float(np.mean(np.asarray(target_features, np.float64) ** 2)) + 1e-12
    out: dict[str, float] = {
        "le": float(inv.le.mean()),
        "le_start": float(inv.le_curves[:, 0].mean()),
        "le_true": float(
            true_image_le(encoder, target_crops, target_features, encoder_size).mean()
        ),
        "le_rel": float(inv.le.mean() / scale),
        "li": float(inv.li.mean()),
        **quality(target_crops, inv.images),
        "n_targets": len(target_crops),
        "restarts": int(restarts),
        "steps": int(steps),
    }
    if recogniser is not None:
        out |= judge_reconstructions(
            recogniser, inv.images, target_crops, target_labels, gallery_index, gallery
        )
    if out_dir is not None:
        save_optim_grid(out_dir / "recon_optim.png", target_crops, inv, title or "optimisation")
        n = min(CURVES_SHOWN, len(target_crops))
        names = [str(x) for x in np.asarray(target_labels)[:n]]
        save_optim_curves(out_dir / "optim_curves.png", _first(inv, n), names, title)
    return out


def _first(inv: Inversion, n: int) -> Inversion:
    """The first ``n`` targets of an inversion (for plotting)."""
    return Inversion(
        inv.images[:n],
        inv.le[:n],
        inv.li[:n],
        inv.le_curves[:n],
        inv.li_curves[:n],
        inv.lr,
        inv.best_restart[:n],
    )


def differentiable_form(method: Method) -> Encoder | str:
    """``method.features_torch``, or why it cannot be used (the attack is then skipped)."""
    try:
        with torch.no_grad():
            method.features_torch(torch.full((1, 3, SURROGATE_SIZE, SURROGATE_SIZE), 0.5))
    except TypeError as exc:  # the Method contract: no differentiable form -> TypeError
        return f"no differentiable form: {exc}"
    return method.features_torch


def measure_recon_optim(inputs: EvalInputs) -> Result:
    """The registered ``recon_optim`` attack: ``recon_victims`` ORL victims (one image each)
    inverted through G, trained on the attacker's faces only (LFW portraits, ORL auxiliary).

    Times ``recon_generator`` and ``recon_optim``; a method without a differentiable form gets
    ``{"available": False, "reason": ...}`` and no timing.
    """
    encoder = differentiable_form(inputs.method)
    if isinstance(encoder, str):
        return Result(Axis.RR, {RECON_OPTIM: {"available": False, "reason": encoder}}, {})
    data, preset, seed = inputs.data, inputs.preset, inputs.seed
    labels = data.faces_victims.labels
    victim_crops = face_crops(data.faces_victims.images)
    recogniser, no_judge = optional_recogniser(inputs.face_judge)
    clock = Stopwatch()
    with clock(RECON_GENERATOR):
        generator = cached_generator(
            face_crops([*data.faces_recon_aux.images, *data.faces_aux.images]),
            TrainSchedule(epochs=preset.generator_epochs),
            seed,
        )
    with clock(RECON_OPTIM):
        targets = one_per_identity(labels, preset.recon_victims)
        result = optimisation_attack(
            encoder,
            generator,
            inputs.released.victims[targets],
            victim_crops[targets],
            labels[targets],
            restarts=preset.opt_restarts,
            steps=preset.opt_steps,
            seed=seed,
            recogniser=recogniser,
            gallery=(victim_crops, labels),
            gallery_index=targets,
            out_dir=inputs.out_dir,
            title=f"{inputs.method.id}: reconstruction by optimisation",
            encoder_size=SURROGATE_SIZE,
        )
    metrics: dict[str, object] = {"available": True, **result}
    if recogniser is None:
        metrics["id_judge_missing"] = no_judge
    return Result(Axis.RR, {RECON_OPTIM: metrics}, clock.seconds)
