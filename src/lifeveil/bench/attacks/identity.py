"""Identity inference (PL): who is this face, from the released features alone.

Threat model: the attacker holds a few labelled photos of each person (the probe training
split, or a single enrolment photo for re-identification), queries nothing but the released
features, and is scored on the person's other images.
"""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import StandardScaler

from lifeveil.bench.contracts import EvalInputs, Result
from lifeveil.bench.metrics import (
    cosine_similarity,
    reid_one_shot,
    retrieval_map,
    uniform_chance,
)
from lifeveil.bench.schema import IDENTITY_PROBE, REID, Axis
from lifeveil.bench.tasks.probes import fit_linear_probe, fit_mlp_probe, probe_accuracy

TRAIN_PER_IDENTITY = 5


def split_per_identity(
    labels: np.ndarray,
    n_train: int = TRAIN_PER_IDENTITY,
    seed: int = 0,
    fraction: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): ``n_train`` random images of each identity train, the rest test.

    With ``fraction``, each identity trains on that fraction of its images instead (rounded
    down, at least one). Each identity keeps at least one test image. Deterministic given
    ``seed``; indices sorted.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, 11])
    train: list[int] = []
    test: list[int] = []
    for ident in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == ident)
        idx = idx[rng.permutation(len(idx))]
        wanted = n_train if fraction is None else max(1, int(len(idx) * fraction))
        k = min(wanted, len(idx) - 1)
        train += idx[:k].tolist()
        test += idx[k:].tolist()
    return np.sort(np.array(train, dtype=int)), np.sort(np.array(test, dtype=int))


def identity_probes(
    features: np.ndarray, labels: np.ndarray, seed: int = 0, n_train: int = TRAIN_PER_IDENTITY
) -> dict[str, float]:
    """Linear and MLP identity probes: trained on ``n_train`` images per person, tested on the rest.

    Returns ``linear_acc``, ``mlp_acc`` (top-1), ``chance`` (1 / identities), ``n_identities``.
    """
    labels = np.asarray(labels)
    train, test = split_per_identity(labels, n_train, seed)
    linear = fit_linear_probe(features[train], labels[train], seed)
    mlp = fit_mlp_probe(features[train], labels[train], seed)
    n_ids = len(set(labels.tolist()))
    return {
        "linear_acc": probe_accuracy(linear, features[test], labels[test]),
        "mlp_acc": probe_accuracy(mlp, features[test], labels[test]),
        "chance": uniform_chance(n_ids),
        "n_identities": n_ids,
        "n_train_per_identity": int(min(n_train, len(train) // max(n_ids, 1))),
    }


def reidentification(
    features: np.ndarray, labels: np.ndarray, aux_features: np.ndarray | None = None
) -> dict[str, float]:
    """1-shot re-identification and leave-one-out retrieval, by cosine similarity.

    Features are standardised with the attacker's auxiliary statistics (``aux_features``,
    other people; the victims' own when None). 1-shot: every round takes the r-th image of each
    person as the gallery and all other images as probes; results average over rounds.
    Returns ``top1``, ``map_1shot`` (= mean reciprocal rank), ``map`` (each image retrieves the
    person's other images among all) and ``chance`` (1 / identities).
    """
    labels = np.asarray(labels)
    scaler = StandardScaler().fit(aux_features if aux_features is not None else features)
    z = scaler.transform(features)
    sim = cosine_similarity(z, z)
    ids = sorted(set(labels.tolist()))
    per_id = [np.flatnonzero(labels == i) for i in ids]
    rounds = min(len(p) for p in per_id)
    top1s, maps = [], []
    for r in range(rounds):
        gallery = np.array([p[r] for p in per_id])
        probes = np.setdiff1d(np.arange(len(labels)), gallery)
        if probes.size == 0:
            continue
        t, m = reid_one_shot(sim[np.ix_(probes, gallery)], labels[probes], labels[gallery])
        top1s.append(t)
        maps.append(m)
    return {
        "top1": float(np.mean(top1s)) if top1s else float("nan"),
        "map_1shot": float(np.mean(maps)) if maps else float("nan"),
        "map": retrieval_map(sim, labels, labels, exclude_self=True),
        "chance": uniform_chance(len(ids)),
    }


def measure_identity_probe(inputs: EvalInputs) -> Result:
    """The registered ``identity_probe`` attack: :func:`identity_probes` on the ORL victims."""
    labels = inputs.data.faces_victims.labels
    metrics = identity_probes(inputs.released.victims, labels, inputs.seed)
    return Result.single(Axis.PL, IDENTITY_PROBE, metrics)


def measure_reid(inputs: EvalInputs) -> Result:
    """The registered ``reid`` attack: :func:`reidentification` against the auxiliary faces."""
    r = inputs.released
    metrics = reidentification(r.victims, inputs.data.faces_victims.labels, r.aux)
    return Result.single(Axis.PL, REID, metrics)
