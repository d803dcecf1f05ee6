"""Heads, timelines and k-NN: pure functions with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from lifeveil.errors import InputError, ShapeError
from lifeveil.server.heads import LinearHead, segment_timeline, train_linear_head
from lifeveil.server.search import cosine_knn


def _clusters(n_per: int, centres: list[np.ndarray], noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = np.vstack([c + rng.normal(0, noise, (n_per, len(c))) for c in centres]).astype(np.float32)
    labels = [name for name in "abcdefg"[: len(centres)] for _ in range(n_per)]
    return z, labels


def test_multiclass_head_learns_separable_clusters():
    centres = [np.eye(8)[i] * 4 for i in range(3)]
    z, labels = _clusters(30, centres, 0.5)
    head = train_linear_head("h", z, labels)
    assert head.classes == ("a", "b", "c") and head.coef.shape == (3, 8)
    assert head.metrics["train_accuracy"] == 1.0 and head.n_train == 90
    test, test_labels = _clusters(10, centres, 0.5, seed=1)
    predicted, confidence = head.predict(test)
    assert predicted == test_labels and confidence.min() > 0.5
    p = head.predict_proba(test)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)


def test_binary_head_matches_sklearn_probabilities():
    from sklearn.linear_model import LogisticRegression

    z, labels = _clusters(40, [np.full(4, 1.0), np.full(4, -1.0)], 1.5)
    head = train_linear_head("bin", z, labels)
    assert head.coef.shape == (2, 4)
    mean = z.mean(axis=0)
    scale = float((z - mean).std())
    reference = LogisticRegression(max_iter=2000).fit((z - mean) / scale, labels)
    expected = reference.predict_proba((z - mean) / scale)
    np.testing.assert_allclose(head.predict_proba(z), expected, atol=1e-4)


def test_head_refuses_bad_training_data():
    z = np.zeros((4, 3), np.float32)
    with pytest.raises(InputError, match="at least 2 distinct labels"):
        train_linear_head("h", z, ["x"] * 4)
    with pytest.raises(InputError, match="n labels"):
        train_linear_head("h", z, ["x", "y"])
    with pytest.raises(InputError, match="NaN"):
        train_linear_head("h", np.full((2, 3), np.nan), ["x", "y"])


def test_head_checks_input_shape():
    head = LinearHead("h", ("a", "b"), np.zeros((2, 3), np.float32), np.zeros(2, np.float32))
    with pytest.raises(ShapeError, match=r"\(n, 3\)"):
        head.predict_proba(np.zeros((1, 4)))


def test_segment_timeline_known_answer():
    ts = np.array([0, 10, 20, 30, 100, 110, 120])
    labels = ["sit", "sit", "walk", "walk", "walk", "sit", "sit"]
    conf = np.array([0.9, 0.7, 0.8, 0.8, 0.6, 1.0, 0.5])
    segs = segment_timeline(ts, labels, conf, max_gap_us=50)
    assert [(s.label, s.start_us, s.end_us, s.n) for s in segs] == [
        ("sit", 0, 10, 2),
        ("walk", 20, 30, 2),
        ("walk", 100, 100, 1),  # a 70 us gap splits the walk
        ("sit", 110, 120, 2),
    ]
    assert segs[0].mean_confidence == pytest.approx(0.8)
    assert segment_timeline(np.array([]), [], np.array([]), 10) == []


def test_cosine_knn_known_answer():
    z = np.array([[1, 0], [0, 1], [-1, 0], [0, 0], [2, 0.1]], dtype=np.float32)
    idx, scores = cosine_knn(z, np.array([1.0, 0.0]), k=3)
    assert idx.tolist() == [0, 4, 1]  # ties (rows 1 and 3 score 0) keep row order
    assert scores[0] == pytest.approx(1.0)
    idx, _ = cosine_knn(z, np.array([1.0, 0.0]), k=10)
    assert len(idx) == 5 and idx[-1] == 2  # the opposite vector is last
    assert cosine_knn(z[:0], np.array([1.0, 0.0]), 3)[0].size == 0
