"""A method that releases one shared code for every face must score chance, not crash."""

from __future__ import annotations

import numpy as np

from lifeveil.bench.attacks.identity import identity_probes, reidentification
from lifeveil.bench.tasks.probes import fit_linear_probe, fit_mlp_probe


def test_probes_and_reid_on_identical_codes_score_chance():
    x = np.ones((40, 16), np.float32)  # 10 people x 4 images, all one code
    y = np.repeat(np.arange(10), 4)
    assert (fit_linear_probe(x, y).predict(x) == y).mean() == 0.1
    assert (fit_mlp_probe(x, y).predict(x) == y).mean() == 0.1
    probes = identity_probes(x, y, seed=0, n_train=2)
    assert probes["linear_acc"] == probes["mlp_acc"] == 0.1
    assert reidentification(x, y)["top1"] == 0.1


def test_probes_still_separate_distinct_codes():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 4)
    x = (np.eye(10)[y] * 3 + 0.1 * rng.standard_normal((40, 10))).astype(np.float32)
    assert (fit_linear_probe(x, y).predict(x) == y).mean() == 1.0
