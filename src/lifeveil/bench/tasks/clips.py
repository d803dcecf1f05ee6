"""Per-clip activity agreement on the action clips (DTP on video).

With one clip per activity there is nothing to train on, so utility is measured as
self-consistency: the mean feature of the first half of a clip's frames should retrieve the
same clip's second half among all clips (and vice versa). Features that keep what happens in a
clip pass; features that collapse every frame to the same vector fail.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lifeveil.bench.contracts import EvalInputs, Result
from lifeveil.bench.metrics import cosine_similarity, uniform_chance
from lifeveil.bench.schema import CLIP_AGREEMENT, Axis


def split_halves(frames_features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean feature of the first and of the second half of one clip's frames (T, D).

    A one-frame clip uses that frame for both halves.
    """
    f = np.asarray(frames_features, dtype=np.float64)
    if f.ndim != 2 or len(f) == 0:
        raise ValueError(f"split_halves: expected (T, D) features with T >= 1, got {f.shape}")
    mid = max(1, len(f) // 2)
    second = f[mid:] if len(f) > 1 else f
    return f[:mid].mean(axis=0), second.mean(axis=0)


def clip_agreement(clips_features: Sequence[np.ndarray]) -> dict[str, float]:
    """Top-1 agreement of clip halves, both directions averaged, with its chance level.

    ``clips_features``: one (T_i, D) array per clip. Features are centred on the mean over all
    frames before cosine similarity (a shared offset would otherwise dominate).
    """
    if len(clips_features) < 2:
        raise ValueError("clip_agreement: need at least two clips")
    centre = np.concatenate([np.asarray(c, np.float64) for c in clips_features]).mean(axis=0)
    halves = [split_halves(np.asarray(c, np.float64) - centre) for c in clips_features]
    first = np.stack([h[0] for h in halves])
    second = np.stack([h[1] for h in halves])
    sim = cosine_similarity(first, second)
    truth = np.arange(len(halves))
    forward = np.mean(np.argmax(sim, axis=1) == truth)
    backward = np.mean(np.argmax(sim, axis=0) == truth)
    return {
        "top1": float((forward + backward) / 2),
        "chance": uniform_chance(len(halves)),
        "n_clips": len(halves),
    }


def measure_clip_agreement(inputs: EvalInputs) -> Result:
    """The registered ``clip_agreement`` task; nothing is filed with fewer than two clips."""
    clips = inputs.released.clips
    if len(clips) < 2:
        return Result(Axis.DTP, {}, {})
    return Result.single(Axis.DTP, CLIP_AGREEMENT, clip_agreement(clips))
