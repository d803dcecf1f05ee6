"""Benchmark metrics: known values for accuracy, retrieval, AUC and image quality."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lifeveil.bench import metrics as m


def test_top1_and_chance_levels() -> None:
    assert m.top1_accuracy(np.array(["a", "b", "c"]), np.array(["a", "b", "d"])) == pytest.approx(
        2 / 3
    )
    assert m.chance_level(np.array(["a", "b", "c", "d"])) == 0.25
    assert m.chance_level(np.array(["a", "a", "a", "b"])) == 0.75
    assert m.uniform_chance(30) == pytest.approx(1 / 30)
    with pytest.raises(ValueError, match="one shape"):
        m.top1_accuracy(np.array([1, 2]), np.array([1]))


def test_cosine_similarity_known_values() -> None:
    a = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    sim = m.cosine_similarity(a, np.array([[3.0, 0.0], [1.0, 1.0]]))
    assert sim == pytest.approx(np.array([[1, 1 / math.sqrt(2)], [0, 1 / math.sqrt(2)], [0, 0]]))


def test_average_precision_by_hand() -> None:
    ranked = np.array([[True, False, True], [False, True, False], [False, False, False]])
    aps = m.average_precisions(ranked)
    assert aps[0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert aps[1] == pytest.approx(1 / 2)
    assert math.isnan(aps[2])


def test_retrieval_map_query_vs_gallery() -> None:
    sim = np.array([[0.9, 0.5, 0.7], [0.1, 0.8, 0.2]])
    # query 0 (label x) ranks gallery [0 (x), 2 (y), 1 (x)] -> AP (1 + 2/3) / 2
    # query 1 (label y) ranks gallery [1 (x), 2 (y), 0 (x)] -> AP 1/2
    got = m.retrieval_map(sim, np.array(["x", "y"]), np.array(["x", "x", "y"]))
    assert got == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2) / 2)


def test_retrieval_map_leave_one_out() -> None:
    feats = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = np.array(["a", "a", "b", "b"])
    sim = m.cosine_similarity(feats, feats)
    assert m.retrieval_map(sim, labels, labels, exclude_self=True) == pytest.approx(1.0)
    swapped = np.array(["a", "b", "a", "b"])
    assert m.retrieval_map(sim, swapped, swapped, exclude_self=True) < 0.6


def test_reid_one_shot_map_is_mean_reciprocal_rank() -> None:
    sim = np.array([[0.2, 0.9, 0.1], [0.1, 0.2, 0.3]])
    top1, mAP = m.reid_one_shot(sim, np.array(["a", "c"]), np.array(["a", "b", "c"]))
    assert top1 == 0.5  # query 0 picks b (wrong), query 1 picks c (right)
    assert mAP == pytest.approx((1 / 2 + 1) / 2)


def test_roc_auc_known_values_and_sklearn_agreement() -> None:
    assert m.roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert m.roc_auc(np.array([3.0, 2.0, 1.0]), np.array([1, 1, 0])) == 1.0
    assert m.roc_auc(np.array([1.0, 2.0, 3.0]), np.array([1, 1, 0])) == 0.0
    assert m.roc_auc(np.zeros(6), np.array([1, 0, 1, 0, 1, 0])) == 0.5
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=200), 1)  # rounding creates ties
    labels = rng.integers(0, 2, size=200)
    assert m.roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    with pytest.raises(ValueError, match="positive and one negative"):
        m.roc_auc(np.ones(3), np.ones(3))


def test_psnr_and_ssim() -> None:
    zeros = np.zeros((16, 16))
    assert m.psnr(zeros, np.full((16, 16), 0.1)) == pytest.approx(20.0)
    assert m.psnr(zeros, zeros) == float("inf")
    img = np.random.default_rng(1).random((32, 32))
    assert m.ssim(img, img) == pytest.approx(1.0)
    assert m.ssim(img, 1 - img) < 0
    assert m.ssim(np.stack([img] * 3, axis=2), np.stack([img] * 3, axis=2)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shapes differ"):
        m.ssim(np.zeros((8, 8)), np.zeros((8, 9)))


def test_binomial_interval_is_wilsons() -> None:
    from lifeveil.bench.metrics import binomial_interval

    lo, hi = binomial_interval(0.5, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.4038, 0.5962)  # Wilson, z = 1.96
    assert binomial_interval(0.0, 240)[0] == 0.0 and 0.0 < binomial_interval(0.0, 240)[1] < 0.02
    assert binomial_interval(1.0, 10)[1] == 1.0
    with pytest.raises(ValueError):
        binomial_interval(0.5, 0)
