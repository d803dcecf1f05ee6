"""Pure similarity search over z."""

from __future__ import annotations

import numpy as np


def cosine_knn(z: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the ``k`` rows of ``z`` closest to ``query``.

    Args:
        z: float array of shape ``(n, d)``.
        query: float array of shape ``(d,)``.
        k: number of neighbours wanted; fewer are returned when ``n < k``.

    Returns:
        ``(indices, scores)``, each of shape ``(min(k, n),)``, best first; ties keep row order.
        Zero vectors have similarity 0 to everything.

    >>> z = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> idx, s = cosine_knn(z, np.array([1.0, 0.1]), k=2)
    >>> idx.tolist(), np.round(s, 3).tolist()
    ([0, 2], [0.995, 0.774])
    """
    if len(z) == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    scores = cosine_scores(z, query)
    order = np.argsort(-scores, kind="stable")[:k]
    return order, scores[order]


def cosine_scores(z: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine similarity (float64) of each row of ``z`` to ``query``; 0 for zero vectors.

    A row's score depends on that row alone, so scores of a subset equal the full scan's.
    """
    z = z.astype(np.float64)
    norms = np.linalg.norm(z, axis=1) * np.linalg.norm(query)
    dots = z @ query.astype(np.float64)
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
