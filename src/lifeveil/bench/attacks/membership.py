"""Membership inference (PL) against a downstream head trained on a method's features.

The server trains a scene classifier on released features of some frames (the members). The
attacker sees the head's output on a frame and its true label and decides whether the frame
was in the training set, by thresholding the loss (members tend to have lower loss). The AUC
over all thresholds is reported: 0.5 = no leakage, 1.0 = members are fully exposed.

Two heads: ``linear`` (logistic regression with cross-validated C, what a careful server
trains) and ``mlp`` (a weakly regularised MLP that memorises, the worst case).
"""

from __future__ import annotations

import numpy as np
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from lifeveil.bench.contracts import EvalInputs, Result
from lifeveil.bench.metrics import roc_auc
from lifeveil.bench.schema import MEMBERSHIP, Axis
from lifeveil.bench.tasks.probes import fit_linear_probe, single_threaded


def member_split(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified half/half split into (members, non-members) indices, sorted."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, 31])
    members: list[int] = []
    for cls in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == cls)
        members += idx[rng.permutation(len(idx))[: len(idx) // 2]].tolist()
    members_arr = np.sort(np.array(members, dtype=int))
    return members_arr, np.setdiff1d(np.arange(len(labels)), members_arr)


def per_sample_loss(model: Pipeline, features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy of each sample's true label under ``model`` (nats)."""
    proba = model.predict_proba(np.asarray(features, np.float32))
    col = {c: i for i, c in enumerate(model.classes_)}
    idx = np.array([col.get(y, -1) for y in np.asarray(labels)])
    p = np.where(idx >= 0, proba[np.arange(len(idx)), np.maximum(idx, 0)], 0.0)
    return -np.log(np.clip(p, 1e-12, 1.0))


def loss_threshold_auc(
    model: Pipeline, features: np.ndarray, labels: np.ndarray, members: np.ndarray
) -> dict[str, float]:
    """AUC of "lower loss = member", train and held-out accuracy of ``model``."""
    is_member = np.zeros(len(labels), dtype=bool)
    is_member[members] = True
    with single_threaded():
        loss = per_sample_loss(model, features, labels)
        pred = model.predict(np.asarray(features, np.float32))
    correct = pred == np.asarray(labels)
    return {
        "auc": roc_auc(-loss, is_member),
        "train_acc": float(correct[is_member].mean()),
        "heldout_acc": float(correct[~is_member].mean()),
    }


def _memorising_mlp(seed: int) -> Pipeline:
    clf = MLPClassifier(
        hidden_layer_sizes=(256,), alpha=1e-4, solver="lbfgs", max_iter=300, random_state=seed
    )
    return Pipeline([("scale", StandardScaler()), ("clf", clf)])


def membership_inference(
    features: np.ndarray, labels: np.ndarray, seed: int = 0
) -> dict[str, float]:
    """Loss-threshold membership inference against a linear and an MLP head.

    Half of the labelled frames (stratified) train each head; the other half are non-members.
    Returns ``linear_auc``, ``mlp_auc`` and each head's ``*_train_acc`` / ``*_heldout_acc``.
    """
    labels = np.asarray(labels)
    members, _ = member_split(labels, seed)
    out: dict[str, float] = {}
    linear = fit_linear_probe(features[members], labels[members], seed)
    with single_threaded():
        mlp = _memorising_mlp(seed).fit(np.asarray(features[members], np.float32), labels[members])
    heads = {"linear": linear, "mlp": mlp}
    for name, head in heads.items():
        for key, value in loss_threshold_auc(head, features, labels, members).items():
            out[f"{name}_{key}"] = value
    return out


def measure_membership(inputs: EvalInputs) -> Result:
    """The registered ``membership`` attack: :func:`membership_inference` on SUN8 train scenes."""
    labels = inputs.data.scenes_train.labels
    metrics = membership_inference(inputs.released.scenes_train, labels, inputs.seed)
    return Result.single(Axis.PL, MEMBERSHIP, metrics)
