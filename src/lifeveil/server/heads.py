"""Downstream heads on z: linear classifiers trained from labelled z, and timelines from them.

A head is plain data (class names, a weight matrix and a bias), stored in the database per
tenant and evaluated with numpy; nothing is pickled. Training uses scikit-learn's logistic
regression on centred, rescaled z; that affine map is folded into the weights afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lifeveil.errors import InputError, ShapeError

MAX_CLASSES = 1000


@dataclass(frozen=True, eq=False)
class LinearHead:
    """Softmax classifier ``p = softmax(z @ coef.T + intercept)``.

    Attributes:
        name: head name, unique per tenant.
        classes: label names, one per row of ``coef``.
        coef: float32 array of shape ``(C, d)``.
        intercept: float32 array of shape ``(C,)``.
        n_train: number of labelled z it was trained on.
        metrics: e.g. ``{"train_accuracy": 0.97, "n_per_class": {...}}``.
        space: wire tag of the representation space it was trained in (0: undeclared); it
            applies only to z of that space.
    """

    name: str
    classes: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray
    n_train: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    space: int = 0

    @property
    def z_dim(self) -> int:
        """Input dimension d."""
        return int(self.coef.shape[1])

    def predict_proba(self, z: np.ndarray) -> np.ndarray:
        """Class probabilities, shape ``(n, C)``, for float z of shape ``(n, d)``."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ShapeError(
                f"head {self.name!r} takes z of shape (n, {self.z_dim}), got {z.shape}"
            )
        logits = z.astype(np.float64) @ self.coef.T.astype(np.float64) + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, z: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Most probable label and its probability for each row of z (shape ``(n, d)``)."""
        p = self.predict_proba(z)
        best = p.argmax(axis=1)
        return [self.classes[i] for i in best], p[np.arange(len(best)), best]


def train_linear_head(
    name: str, z: np.ndarray, labels: list[str], *, c: float = 1.0, max_iter: int = 2000
) -> LinearHead:
    """Fit a multinomial logistic-regression head.

    Args:
        name: head name.
        z: float array of shape ``(n, d)``, finite.
        labels: n label strings, at least two distinct values.
        c: inverse L2 regularisation strength.

    Raises:
        InputError: fewer than two classes, or too many, or labels not matching z.
    """
    from sklearn.linear_model import LogisticRegression  # heavy; only training needs it

    z = np.asarray(z, dtype=np.float64)
    _check_training_data(z, labels)
    classes = sorted(set(labels))
    y = np.array([classes.index(label) for label in labels])
    # Centre per feature but scale by one global factor: this keeps the geometry of z (noise
    # dimensions are not blown up to unit variance) while making C independent of z's units.
    mean = z.mean(axis=0)
    std = float((z - mean).std()) or 1.0
    model = LogisticRegression(C=c, max_iter=max_iter).fit((z - mean) / std, y)
    w, b = model.coef_, model.intercept_
    if len(classes) == 2:  # sklearn's binary form is one logit; softmax([-a/2, a/2]) = sigmoid(a)
        w, b = np.vstack([-w / 2, w / 2]), np.array([-b[0] / 2, b[0] / 2])
    coef = w / std  # fold standardisation into the weights
    intercept = b - coef @ mean
    head = LinearHead(name, tuple(classes), coef.astype(np.float32), intercept.astype(np.float32))
    predicted, _ = head.predict(z)
    accuracy = float(np.mean([p == t for p, t in zip(predicted, labels, strict=True)]))
    counts = {c_: labels.count(c_) for c_ in classes}
    metrics = {"train_accuracy": round(accuracy, 4), "n_per_class": counts}
    return LinearHead(head.name, head.classes, head.coef, head.intercept, len(labels), metrics)


def _check_training_data(z: np.ndarray, labels: list[str]) -> None:
    if z.ndim != 2 or len(z) != len(labels):
        raise InputError(
            f"need z of shape (n, d) and n labels; got z {z.shape} and {len(labels)} labels"
        )
    if not np.all(np.isfinite(z)):
        raise InputError("training z contains NaN or inf")
    n_classes = len(set(labels))
    if n_classes < 2:
        raise InputError(f"need at least 2 distinct labels to train a head, got {n_classes}")
    if n_classes > MAX_CLASSES:
        raise InputError(f"{n_classes} distinct labels; a head supports at most {MAX_CLASSES}")


@dataclass(frozen=True)
class TimelineSegment:
    """Consecutive records with the same label; times are capture times in microseconds."""

    label: str
    start_us: int
    end_us: int
    n: int
    mean_confidence: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "label": self.label,
            "start_us": self.start_us,
            "end_us": self.end_us,
            "n": self.n,
            "mean_confidence": round(self.mean_confidence, 4),
        }


def segment_timeline(
    timestamps_us: np.ndarray, labels: list[str], confidences: np.ndarray, max_gap_us: int
) -> list[TimelineSegment]:
    """Merge time-sorted predictions into segments of the same label.

    A new segment starts when the label changes or when two consecutive records are more
    than ``max_gap_us`` apart (nothing was recorded in between, so nothing is claimed).

    >>> segs = segment_timeline(np.array([0, 1, 2, 10]), ["a", "a", "b", "b"],
    ...                         np.array([1.0, 0.5, 1.0, 1.0]), max_gap_us=5)
    >>> [(s.label, s.start_us, s.end_us, s.n, s.mean_confidence) for s in segs]
    [('a', 0, 1, 2, 0.75), ('b', 2, 2, 1, 1.0), ('b', 10, 10, 1, 1.0)]
    """
    segments: list[TimelineSegment] = []
    start = 0
    for i in range(1, len(labels) + 1):
        boundary = (
            i == len(labels)
            or labels[i] != labels[start]
            or int(timestamps_us[i]) - int(timestamps_us[i - 1]) > max_gap_us
        )
        if boundary:
            segments.append(
                TimelineSegment(
                    label=labels[start],
                    start_us=int(timestamps_us[start]),
                    end_us=int(timestamps_us[i - 1]),
                    n=i - start,
                    mean_confidence=float(np.mean(confidences[start:i])),
                )
            )
            start = i
    return segments
