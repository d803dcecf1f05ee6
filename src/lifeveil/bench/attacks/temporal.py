"""Temporal accumulation (PL): averaging k frames of the same person before identity inference.

An always-on camera sees a person in many consecutive frames. If a method's protection is
per-frame noise, averaging k released vectors cancels it; this attack measures how identity
accuracy grows with k (the paper's open question in Sec. V.D).

Frames of a person are the person's held-out images plus slightly jittered copies of them (a
few pixels of shift and a brightness change, as between consecutive video frames), each
passed through the method separately, so a noisy method draws fresh noise for every frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from lifeveil.bench.metrics import uniform_chance
from lifeveil.bench.tasks.probes import fit_linear_probe

MAX_SHIFT_PX = 3
BRIGHTNESS_RANGE = (0.9, 1.1)


def jitter_frames(images: Sequence[np.ndarray], copies: int, seed: int = 0) -> list[np.ndarray]:
    """``copies`` jittered versions of each image (image-major order): shift and brightness."""
    rng = np.random.default_rng([seed, 21])
    out: list[np.ndarray] = []
    for img in images:
        h, w = img.shape[:2]
        for _ in range(copies):
            dx, dy = rng.integers(-MAX_SHIFT_PX, MAX_SHIFT_PX + 1, size=2)
            shift = np.float32([[1, 0, dx], [0, 1, dy]])
            moved = cv2.warpAffine(img, shift, (w, h), borderMode=cv2.BORDER_REFLECT_101)
            gain = rng.uniform(*BRIGHTNESS_RANGE)
            out.append(np.clip(moved.astype(np.float32) * gain, 0, 255).astype(np.uint8))
    return out


def average_k(
    pool_features: np.ndarray,
    pool_labels: np.ndarray,
    k: int,
    repeats: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``repeats`` means of k random frames per identity -> (features (I*repeats, D), labels).

    Frames are drawn without replacement when the pool allows, else with replacement.
    """
    feats, labels = [], []
    for ident in sorted(set(pool_labels.tolist())):
        pool = pool_features[pool_labels == ident]
        for _ in range(repeats):
            pick = rng.choice(len(pool), size=k, replace=k > len(pool))
            feats.append(pool[pick].mean(axis=0))
            labels.append(ident)
    return np.stack(feats), np.array(labels)


def temporal_accumulation(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    pool_features: np.ndarray,
    pool_labels: np.ndarray,
    ks: Sequence[int] = (1, 2, 4, 8),
    seed: int = 0,
    repeats: int = 10,
) -> dict[str, object]:
    """Identity accuracy of a single-frame linear probe on k-frame averages, for each k.

    The probe is trained on single-frame features (``train_*``); test vectors average k frames
    of one person from ``pool_*`` (disjoint images). Returns ``k`` (list), ``linear_acc`` (list,
    same order), ``chance``, ``pool_min`` (smallest pool: k above it re-uses frames) and
    ``gain`` (accuracy at the largest k minus at k=1, or the smallest k).
    """
    pool_labels = np.asarray(pool_labels)
    probe = fit_linear_probe(train_features, np.asarray(train_labels), seed)
    rng = np.random.default_rng([seed, 22])
    accs = []
    for k in ks:
        x, y = average_k(np.asarray(pool_features), pool_labels, int(k), repeats, rng)
        accs.append(float(np.mean(probe.predict(x.astype(np.float32)) == y)))
    n_ids = len(set(pool_labels.tolist()))
    pool_min = min(int(np.sum(pool_labels == i)) for i in set(pool_labels.tolist()))
    return {
        "k": [int(k) for k in ks],
        "linear_acc": accs,
        "chance": uniform_chance(n_ids),
        "pool_min": pool_min,
        "gain": accs[-1] - accs[0],
    }
