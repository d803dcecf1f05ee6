"""Training the privatizer: minimise utility_loss(decoder(z), teacher(x)) + lambda * KL.

Reproducibility: all randomness of epoch ``e`` comes from generators seeded with
``(seed, e)``, so a run resumed after epoch ``e`` ends with the same weights as an
uninterrupted run (same machine, same thread count).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from lifeveil import __version__
from lifeveil.errors import CheckpointError
from lifeveil.io import atomic_path, make_public
from lifeveil.privatizer.checkpoint import load_checkpoint, resume_path, save_checkpoint
from lifeveil.privatizer.config import PrivatizerConfig, TrainConfig
from lifeveil.privatizer.data import ViewCache
from lifeveil.privatizer.model import PrivatizerModel
from lifeveil.privatizer.vib import (
    cosine_utility_loss,
    kl_to_standard_normal,
    mse_utility_loss,
    nats_to_bits,
)


@dataclass
class TrainResult:
    """Where the checkpoint went and what training measured per epoch."""

    checkpoint: Path
    history: list[dict[str, float]] = field(default_factory=list)


def utility_loss(cfg: PrivatizerConfig, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-row utility loss chosen by the config."""
    return (
        cosine_utility_loss(pred, target)
        if cfg.utility_loss == "cosine"
        else mse_utility_loss(pred, target)
    )


def build_model(cfg: PrivatizerConfig, seed: int) -> PrivatizerModel:
    """A fresh model with deterministic initialisation."""
    torch.manual_seed(seed)
    model = PrivatizerModel(cfg)
    for p in model.student.frozen_parameters():
        p.requires_grad_(False)
    return model


def _epoch_lambda(cfg: PrivatizerConfig, tcfg: TrainConfig, epoch: int) -> float:
    if tcfg.kl_warmup_epochs <= 0:
        return cfg.lam
    return cfg.lam * min(1.0, (epoch + 1) / tcfg.kl_warmup_epochs)


def _batches(
    cache: ViewCache, cfg: PrivatizerConfig, tcfg: TrainConfig, gen: torch.Generator
) -> list[torch.Tensor]:
    """Index batches for one epoch: views (frame mode) or (B, T) view indices (clip mode)."""
    if cfg.clip_frames == 1:
        return list(torch.randperm(len(cache), generator=gen).split(tcfg.batch_size))
    order = torch.argsort(cache.groups, stable=True)
    _, counts = torch.unique_consecutive(cache.groups[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    group_perm = torch.randperm(len(counts), generator=gen)
    picks = torch.randint(0, 1 << 30, (len(counts), cfg.clip_frames), generator=gen)
    clips = order[starts[:, None] + picks % counts[:, None]]  # (G, T) views of the same group
    return [clips[idx] for idx in group_perm.split(tcfg.batch_size)]


def _step(
    model: PrivatizerModel, cache: ViewCache, idx: torch.Tensor, lam: float, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    feats = cache.features[idx]
    if idx.dim() == 2:  # clip mode: pool student features over the T frames
        h = (
            model.student.from_frozen(feats.flatten(0, 1))
            .view(idx.shape[0], idx.shape[1], -1)
            .mean(1)
        )
        target = cache.targets[idx].mean(1)
    else:
        h = model.student.from_frozen(feats)
        target = cache.targets[idx]
    pre, z, kl = _bottleneck(model, h, gen)
    util = utility_loss(model.cfg, model.decoder(z), model.decoder.standardise(target)).mean()
    parts = {"utility": util, "kl_nats": kl}
    parts.update(_invariance_terms(model, cache, idx, pre))
    parts["loss"] = (
        util
        + lam * kl
        + model.cfg.collapse_weight * parts["collapse"]
        + model.cfg.invariance_weight * parts["invariance"]
    )
    return parts


def _bottleneck(
    model: PrivatizerModel, h: torch.Tensor, gen: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pre-code, z, KL in nats per frame): the continuous code before rounding or noise (fsq
    bounded / vib mu), the code the decoder sees (rounded / sampled with ``gen``; mu without it)
    and the rate term (zero for fsq, whose bits are fixed)."""
    if model.cfg.bottleneck == "fsq":
        pre = model.fsq.bounded(h)
        return pre, model.fsq.quantise(pre), torch.zeros(())
    mu, logvar = model.vib(h)
    z = mu if gen is None else model.sample(mu, logvar, gen)
    return mu, z, kl_to_standard_normal(mu, logvar).mean()


def _pre_code(model: PrivatizerModel, h: torch.Tensor) -> torch.Tensor:
    """The continuous code before the bottleneck's rounding or noise (fsq bounded / vib mu)."""
    return _bottleneck(model, h)[0]


def _invariance_terms(
    model: PrivatizerModel, cache: ViewCache, idx: torch.Tensor, pre: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Collapse (face views to one shared point) and invariance (composites to their clean
    scene's code). Zero when the cache has no such views or the batch holds none."""
    zero = torch.zeros(())
    if cache.kinds is None or idx.dim() != 1:
        return {"collapse": zero, "invariance": zero}
    from lifeveil.privatizer.invariance import COMPOSITE, FACE

    kinds = cache.kinds[idx]
    collapse = invariance = zero
    faces = pre[kinds == FACE]
    if len(faces) > 1:
        centre = faces.mean(0).detach()
        if model.cfg.bottleneck == "fsq":
            centre = torch.round(centre)  # a grid point: every face rounds to the same code
        collapse = (faces - centre).pow(2).mean()  # per coordinate, in level units
    comp = kinds == COMPOSITE
    if comp.any() and model.cfg.invariance_weight > 0:
        partner = cache.partners[idx[comp]]
        with torch.no_grad():
            clean = _pre_code(model, model.student.from_frozen(cache.features[partner]))
        invariance = (pre[comp] - clean).pow(2).mean()
    return {"collapse": collapse, "invariance": invariance}


def _frozen_eval(model: PrivatizerModel) -> None:
    model.train()
    for block in model.student.trunk[: model.cfg.frozen_blocks]:
        block.eval()


def _save_resume(path: Path, opt: torch.optim.Optimizer, epoch: int) -> None:
    tensors: dict[str, torch.Tensor] = {"epoch": torch.tensor(epoch)}
    for i, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            tensors[f"{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    with atomic_path(resume_path(path)) as tmp:
        save_file(tensors, str(tmp))
        make_public(tmp)  # safetensors writes the file 0600


def _load_resume(path: Path, opt: torch.optim.Optimizer) -> int:
    rp = resume_path(path)
    if not rp.is_file():
        raise CheckpointError(f"{rp}: no optimizer state to resume from (train without --resume)")
    tensors = load_file(str(rp))
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        if key == "epoch":
            continue
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = v
    sd["state"] = state
    opt.load_state_dict(sd)
    return int(tensors["epoch"])


def train_privatizer(
    cfg: PrivatizerConfig,
    tcfg: TrainConfig,
    cache: ViewCache,
    out: str | Path,
    meta: dict[str, Any] | None = None,
    resume: bool = False,
    progress: bool = True,
    until_epoch: int | None = None,
) -> TrainResult:
    """Train on cached views and write ``out`` (+ JSON, + resume state) after every epoch.

    ``resume`` continues from the epoch stored beside ``out``; ``until_epoch`` stops early
    (the run can be resumed later and ends exactly as an uninterrupted one).
    """
    out = Path(out)
    model = build_model(cfg, tcfg.seed)
    model.decoder.set_target_stats(cache.targets)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    start_epoch, history = 0, []
    if resume:
        state, saved_cfg = load_checkpoint(out)
        if saved_cfg.replace(student_init=cfg.student_init) != cfg:
            raise CheckpointError(
                f"{out}: existing checkpoint has a different config; cannot resume"
            )
        model.load_state_dict(state)
        start_epoch = _load_resume(out, opt)
        history = list((meta or {}).get("history", [])) or _previous_history(out)
    steps_per_epoch = len(_batches(cache, cfg, tcfg, torch.Generator().manual_seed(0)))
    last = tcfg.epochs if until_epoch is None else min(tcfg.epochs, until_epoch)
    for epoch in range(start_epoch, last):
        gen = torch.Generator().manual_seed(tcfg.seed * 100_003 + epoch)
        sched = _Schedule(tcfg, epoch * steps_per_epoch, tcfg.epochs * steps_per_epoch)
        history.append(_run_epoch(model, cache, tcfg, epoch, opt, sched, gen, progress))
        _save(out, model, cfg, tcfg, cache, history, meta)
        _save_resume(out, opt, epoch + 1)
    if start_epoch >= tcfg.epochs:
        _save(out, model, cfg, tcfg, cache, history, meta)
    return TrainResult(out, history)


def _previous_history(out: Path) -> list[dict[str, float]]:
    from lifeveil.privatizer.checkpoint import read_meta

    return list(read_meta(out).get("history", []))


def cosine_lr_factor(step: int, total: int, floor: float = 0.05) -> float:
    """Learning-rate multiplier: cosine decay from 1 to ``floor`` over ``total`` steps.

    >>> cosine_lr_factor(0, 10), round(cosine_lr_factor(10, 10), 2)
    (1.0, 0.05)
    """
    progress = min(1.0, step / max(1, total))
    return floor + (1 - floor) * 0.5 * (1 + float(np.cos(np.pi * progress)))


class _Schedule:
    """Sets the optimizer's learning rate from the global step (so resuming needs no state)."""

    def __init__(self, tcfg: TrainConfig, step: int, total: int) -> None:
        self.tcfg, self.step_count, self.total = tcfg, step, total

    def apply(self, opt: torch.optim.Optimizer) -> None:
        for group in opt.param_groups:
            group["lr"] = self.tcfg.lr * cosine_lr_factor(self.step_count, self.total)
        self.step_count += 1


def _run_epoch(
    model: PrivatizerModel,
    cache: ViewCache,
    tcfg: TrainConfig,
    epoch: int,
    opt: torch.optim.Optimizer,
    sched: _Schedule,
    gen: torch.Generator,
    progress: bool,
) -> dict[str, float]:
    _frozen_eval(model)
    lam = _epoch_lambda(model.cfg, tcfg, epoch)
    sums = {"loss": 0.0, "utility": 0.0, "kl_nats": 0.0, "collapse": 0.0, "invariance": 0.0}
    batches = _batches(cache, model.cfg, tcfg, gen)
    t0 = time.perf_counter()
    bar = tqdm(
        batches,
        desc=f"epoch {epoch + 1}/{tcfg.epochs} (lambda={lam:.2g})",
        leave=False,
        disable=not progress,
    )
    for idx in bar:
        parts = _step(model, cache, idx, lam, gen)
        opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        sched.apply(opt)
        opt.step()
        for k in sums:
            sums[k] += float(parts[k].detach()) / len(batches)
        bar.set_postfix(
            cos=f"{1 - float(parts['utility'].detach()):.3f}",
            bits=f"{_bits(model, float(parts['kl_nats'].detach())):.0f}",
        )
    return {
        "epoch": epoch + 1,
        "lambda": lam,
        "loss": sums["loss"],
        "utility_loss": sums["utility"],
        "kl_bits": _bits(model, sums["kl_nats"]),
        "collapse": sums["collapse"],
        "invariance": sums["invariance"],
        "seconds": time.perf_counter() - t0,
    }


def _bits(model: PrivatizerModel, kl_nats: float) -> float:
    """Bits per frame: the KL bound of a vib, the exact code size of an fsq code."""
    if model.cfg.bottleneck == "fsq":
        from lifeveil.privatizer.fsq import code_bits

        return code_bits(model.cfg.z_dim, model.cfg.fsq_levels)
    return float(nats_to_bits(kl_nats))


def _save(
    out: Path,
    model: PrivatizerModel,
    cfg: PrivatizerConfig,
    tcfg: TrainConfig,
    cache: ViewCache,
    history: list[dict[str, float]],
    meta: dict[str, Any] | None,
) -> None:
    info = dict(meta or {})
    info.update(
        {
            "train_config": asdict(tcfg),
            "views": len(cache),
            "history": history,
            "lifeveil": __version__,
        }
    )
    save_checkpoint(out, model.state_dict(), cfg, info)
