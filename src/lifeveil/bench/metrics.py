"""Pure metric functions of the benchmark: accuracy, retrieval, AUC and image quality.

Everything here is a function of arrays only (no models, no I/O), so each has known-value
tests. Similarities are "higher is closer"; images are float arrays in [0, 1].

>>> round(psnr(np.zeros((4, 4)), np.full((4, 4), 0.1)), 6)
20.0
>>> roc_auc(np.array([0.9, 0.8, 0.1]), np.array([1, 1, 0]))
1.0
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def top1_accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of ``predicted`` labels equal to ``truth`` (both shape (N,))."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    if predicted.shape != truth.shape or predicted.size == 0:
        raise ValueError(
            f"top1_accuracy: need two non-empty label arrays of one shape, "
            f"got {predicted.shape} and {truth.shape}"
        )
    return float(np.mean(predicted == truth))


def chance_level(labels: np.ndarray) -> float:
    """Top-1 accuracy of always guessing the most frequent label (= 1/C when balanced)."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return float(counts.max() / counts.sum())


def uniform_chance(n_classes: int) -> float:
    """Top-1 accuracy of a uniform random guess among ``n_classes``."""
    return 1.0 / max(int(n_classes), 1)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, D) x (M, D) -> (N, M) cosine similarities; zero vectors get similarity 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return an @ bn.T


def average_precisions(relevant_ranked: np.ndarray) -> np.ndarray:
    """Per-query AP from a boolean (Q, G) matrix of relevance in ranked order.

    AP = mean over relevant positions of precision@position; queries without any relevant
    item get NaN (callers drop them).
    """
    rel = np.asarray(relevant_ranked, dtype=bool)
    hits = np.cumsum(rel, axis=1)
    ranks = np.arange(1, rel.shape[1] + 1)[None, :]
    n_rel = rel.sum(axis=1)
    sum_prec = np.where(rel, hits / ranks, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_rel > 0, sum_prec / n_rel, np.nan)


def retrieval_map(
    similarity: np.ndarray,
    query_labels: np.ndarray,
    gallery_labels: np.ndarray,
    exclude_self: bool = False,
) -> float:
    """Mean average precision of ranking a gallery by ``similarity`` (Q, G), relevance = same label.

    ``exclude_self``: the query set *is* the gallery (Q == G); each query's own entry is removed
    (leave-one-out retrieval). Queries with no relevant gallery item are ignored.
    """
    sim = np.array(similarity, dtype=np.float64)
    q, g = np.asarray(query_labels), np.asarray(gallery_labels)
    if sim.shape != (q.size, g.size):
        raise ValueError(
            f"retrieval_map: similarity {sim.shape} vs {q.size} queries, {g.size} gallery"
        )
    relevant = q[:, None] == g[None, :]
    if exclude_self:
        if q.size != g.size:
            raise ValueError("retrieval_map: exclude_self needs the query set to be the gallery")
        np.fill_diagonal(sim, -np.inf)
        np.fill_diagonal(relevant, False)
    # stable sort on -sim: ties keep gallery order, which makes results deterministic
    order = np.argsort(-sim, axis=1, kind="stable")
    ranked = np.take_along_axis(relevant, order, axis=1)
    if exclude_self:
        ranked = ranked[:, :-1]  # the query itself sorts last (similarity -inf)
    aps = average_precisions(ranked)
    return float(np.nanmean(aps)) if np.any(~np.isnan(aps)) else float("nan")


def nearest_label(similarity: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    """Label of the most similar gallery item for each query row of ``similarity`` (Q, G)."""
    return np.asarray(gallery_labels)[np.argmax(similarity, axis=1)]


def reid_one_shot(
    similarity: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray
) -> tuple[float, float]:
    """1-shot re-identification: (top-1, mAP) with one gallery image per identity.

    With a single relevant gallery item, AP equals 1 / rank, so mAP is the mean reciprocal rank.
    """
    top1 = top1_accuracy(nearest_label(similarity, gallery_labels), np.asarray(query_labels))
    return top1, retrieval_map(similarity, query_labels, gallery_labels)


def roc_auc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` (higher = more positive); ties count one half.

    Equals P(score of a random positive > score of a random negative) (Mann-Whitney U).
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positives).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_auc: need at least one positive and one negative")
    ranks = _average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(x.size, dtype=np.float64)
    i = 0
    while i < x.size:
        j = i
        while j + 1 < x.size and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error of two equally shaped arrays."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"mse: shapes differ: {a.shape} vs {b.shape}")
    return float(np.mean((a - b) ** 2))


def psnr(reference: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of ``test`` against ``reference`` (inf if identical)."""
    err = mse(reference, test)
    return float("inf") if err == 0 else float(10 * np.log10(data_range**2 / err))


def ssim(reference: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float:
    """Structural similarity (scikit-image's, uniform 7x7 window) of two images.

    Images are (H, W) grey or (H, W, C) colour, float in [0, ``data_range``].
    """
    ref = np.asarray(reference, dtype=np.float64)
    tst = np.asarray(test, dtype=np.float64)
    if ref.shape != tst.shape:
        raise ValueError(f"ssim: shapes differ: {ref.shape} vs {tst.shape}")
    channel_axis = 2 if ref.ndim == 3 else None
    return float(structural_similarity(ref, tst, data_range=data_range, channel_axis=channel_axis))


def binomial_interval(accuracy: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of an accuracy measured on ``n`` trials (default 95 %).

    >>> tuple(round(v, 4) for v in binomial_interval(0.5, 100))
    (0.4038, 0.5962)
    """
    if n < 1 or not 0.0 <= accuracy <= 1.0:
        raise ValueError(
            f"binomial_interval: need n >= 1 and accuracy in [0, 1], got {n}, {accuracy}"
        )
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))
