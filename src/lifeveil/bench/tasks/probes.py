"""Probes: the classifiers a server (utility) or an attacker (privacy) fits on released features.

All probes standardise features (statistics of their own training set) and tune their one
hyper-parameter by a small stratified cross-validation, so that a weak result means the
information is not there rather than that the probe was badly set.

L2-regularised models keep their input weights in the span of the training points, so when the
feature dimension exceeds the number of training samples the features are first projected on
that span (:class:`SpanProjection`): the same classifier, fitted much faster.

These problems are small: BLAS threads only contend with each other (and with other jobs), so
every fit runs single-threaded (:func:`single_threaded`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

# Grids are ordered from the strongest regularisation; CV ties go to the first value.
C_GRID: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)  # inverse L2 strength, standardised features
K_GRID: tuple[int, ...] = (20, 10, 5, 1)
MLP_HIDDEN = 256
MLP_ALPHA_GRID: tuple[float, ...] = (0.1, 0.01)
MAX_FOLDS = 3


@contextmanager
def single_threaded() -> Iterator[None]:
    """Limit BLAS / OpenMP to one thread inside the block.

    Also silences convergence warnings: iteration caps are deliberate (CV fits many models).
    """
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


class SpanProjection(TransformerMixin, BaseEstimator):
    """Project onto the span of the training rows (exact for L2-regularised linear maps).

    Fitted through the (n x n) Gram matrix, so it costs O(n^2 d) instead of a full SVD.
    Rows are expected centred (e.g. after StandardScaler).
    """

    def __init__(self, rel_tol: float = 1e-8) -> None:
        self.rel_tol = rel_tol

    def fit(self, x: np.ndarray, y: object = None) -> SpanProjection:
        x = np.asarray(x, np.float64)
        evals, evecs = np.linalg.eigh(x @ x.T)
        keep = evals > self.rel_tol * max(float(evals.max()), 1e-30)
        if not keep.any():  # every row identical (e.g. one shared code): one constant feature
            self.basis_ = np.zeros((x.shape[1], 1))
            return self
        # columns of x.T @ U / sqrt(lambda) are an orthonormal basis of the row span
        self.basis_ = (x.T @ evecs[:, keep]) / np.sqrt(evals[keep])
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) @ self.basis_).astype(np.float32)


def _preprocess(n_samples: int, dim: int) -> list[tuple[str, object]]:
    """Standardise, then project on the training span if there are fewer samples than dims."""
    steps: list[tuple[str, object]] = [("scale", StandardScaler())]
    if dim > n_samples:
        steps.append(("span", SpanProjection()))
    return steps


def _folds(labels: np.ndarray, max_folds: int, seed: int) -> StratifiedKFold | None:
    """Stratified folds (as many as the rarest class allows, at most ``max_folds``), or None."""
    _, counts = np.unique(labels, return_counts=True)
    n = int(min(max_folds, counts.min()))
    return StratifiedKFold(n_splits=n, shuffle=True, random_state=seed) if n >= 2 else None


def _select(
    build: Callable[[object], ClassifierMixin],
    values: Sequence[object],
    features: np.ndarray,
    labels: np.ndarray,
    seed: int,
    max_folds: int = MAX_FOLDS,
) -> object:
    """The grid value with the best mean CV accuracy (first on ties); preprocessing per fold."""
    folds = _folds(labels, max_folds, seed)
    if folds is None or len(values) == 1:
        return values[0]
    scores = np.zeros(len(values))
    for tr, va in folds.split(features, labels):
        pre = Pipeline(_preprocess(len(tr), features.shape[1])).fit(features[tr])
        a, b = pre.transform(features[tr]), pre.transform(features[va])
        for i, v in enumerate(values):
            scores[i] += build(v).fit(a, labels[tr]).score(b, labels[va])
    return values[int(np.argmax(scores))]


def _fit_tuned(
    build: Callable[[object], ClassifierMixin],
    values: Sequence[object],
    features: np.ndarray,
    labels: np.ndarray,
    seed: int,
    max_folds: int = MAX_FOLDS,
) -> Pipeline:
    x, y = np.asarray(features, np.float32), np.asarray(labels)
    with single_threaded():
        best = _select(build, values, x, y, seed, max_folds)
        pipe = Pipeline([*_preprocess(*x.shape), ("clf", build(best))])
        return pipe.fit(x, y)


def fit_linear_probe(
    features: np.ndarray, labels: np.ndarray, seed: int = 0, c_grid: Sequence[float] = C_GRID
) -> Pipeline:
    """Standardise -> multinomial logistic regression, C chosen by stratified CV."""

    def build(c: object) -> LogisticRegression:
        return LogisticRegression(C=float(c), max_iter=300, tol=1e-3)

    return _fit_tuned(build, list(c_grid), features, labels, seed)


def fit_knn_probe(
    features: np.ndarray, labels: np.ndarray, seed: int = 0, k_grid: Sequence[int] = K_GRID
) -> Pipeline:
    """Standardise -> k-NN with cosine distance, k chosen by stratified CV."""
    y = np.asarray(labels)
    smallest_fit = len(y) - (len(y) + 1) // 2  # training size of a 2-fold CV split
    ks = [k for k in k_grid if k <= smallest_fit] or [1]

    def build(k: object) -> KNeighborsClassifier:
        return KNeighborsClassifier(n_neighbors=int(k), metric="cosine", algorithm="brute")

    return _fit_tuned(build, ks, features, y, seed)


def fit_mlp_probe(
    features: np.ndarray,
    labels: np.ndarray,
    seed: int = 0,
    alpha_grid: Sequence[float] = MLP_ALPHA_GRID,
) -> Pipeline:
    """Standardise -> one-hidden-layer MLP (L-BFGS), weight decay ``alpha`` chosen by CV."""

    def build(alpha: object) -> MLPClassifier:
        return MLPClassifier(
            hidden_layer_sizes=(MLP_HIDDEN,),
            alpha=float(alpha),
            solver="lbfgs",
            max_iter=200,
            random_state=seed,
        )

    return _fit_tuned(build, list(alpha_grid), features, labels, seed, max_folds=2)


def probe_accuracy(model: Pipeline, features: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of a fitted probe on held-out ``features``."""
    with single_threaded():
        pred = model.predict(np.asarray(features, np.float32))
    return float(np.mean(pred == np.asarray(labels)))
