"""Scene utility (DTP) on SUN8: linear and k-NN probes, and retrieval mAP.

The server's view: it trains a scene classifier on the released features of the fixed SUN8
train split and is scored on the test split.
"""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import StandardScaler

from lifeveil.bench.contracts import EvalInputs, Result
from lifeveil.bench.metrics import chance_level, cosine_similarity, retrieval_map
from lifeveil.bench.schema import SCENE_PROBE, SCENE_RETRIEVAL, Axis
from lifeveil.bench.tasks.probes import fit_knn_probe, fit_linear_probe, probe_accuracy


def scene_probe(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    seed: int = 0,
) -> dict[str, float]:
    """Linear and k-NN scene classification accuracy on the test features.

    Returns ``linear_acc``, ``knn_acc`` (top-1 in [0, 1]), ``chance`` (majority class of the
    test labels) and the tuned ``linear_C`` and ``knn_k``.
    """
    linear = fit_linear_probe(train_features, train_labels, seed)
    knn = fit_knn_probe(train_features, train_labels, seed)
    return {
        "linear_acc": probe_accuracy(linear, test_features, test_labels),
        "knn_acc": probe_accuracy(knn, test_features, test_labels),
        "chance": chance_level(test_labels),
        "linear_C": float(linear.named_steps["clf"].C),
        "knn_k": int(knn.named_steps["clf"].n_neighbors),
    }


def scene_retrieval(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
) -> dict[str, float]:
    """Retrieval mAP: each test image ranks the train images by cosine similarity.

    Features are standardised with train statistics; relevant = same scene category.
    ``chance_map`` is the mAP of a random ranking (about the fraction of relevant items).
    """
    scaler = StandardScaler().fit(train_features)
    sim = cosine_similarity(scaler.transform(test_features), scaler.transform(train_features))
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    relevant_fraction = np.mean(test_labels[:, None] == train_labels[None, :])
    return {
        "map": retrieval_map(sim, test_labels, train_labels),
        "chance_map": float(relevant_fraction),
    }


def measure_scene_probe(inputs: EvalInputs) -> Result:
    """The registered ``scene_probe`` task: :func:`scene_probe` on the SUN8 split."""
    r, data = inputs.released, inputs.data
    metrics = scene_probe(
        r.scenes_train,
        data.scenes_train.labels,
        r.scenes_test,
        data.scenes_test.labels,
        inputs.seed,
    )
    return Result.single(Axis.DTP, SCENE_PROBE, metrics)


def measure_scene_retrieval(inputs: EvalInputs) -> Result:
    """The registered ``scene_retrieval`` task: :func:`scene_retrieval` on the SUN8 split."""
    r, data = inputs.released, inputs.data
    metrics = scene_retrieval(
        r.scenes_train, data.scenes_train.labels, r.scenes_test, data.scenes_test.labels
    )
    return Result.single(Axis.DTP, SCENE_RETRIEVAL, metrics)
