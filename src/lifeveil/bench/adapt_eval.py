"""Is a migrated z as useful as a re-encoded one, and no more identifying than the old one?

Issue 14's measurement of :mod:`lifeveil.privatizer.adapt`, on data neither privatizer nor the
adapter was fitted on: scene utility on SUN8 (a logistic-regression head trained on the *new*
version's z of SUN8 train, applied to SUN8 test as re-encoded by the new version and as migrated
from the old one) and identity on ORL s11-s40 (a logistic-regression probe, 5 photos per person
to train and 5 to test, chance 1/30) on the old, migrated and new z. Releases are noise-free
(the code, or a VIB's mean): the accumulation attacker's limit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lifeveil.data import load_sun8
from lifeveil.data.datasets import load_orl
from lifeveil.privatizer.adapt import Adapter

ORL_HELD_OUT = tuple(f"s{i}" for i in range(11, 41))
ORL_TRAIN_PER_PERSON = 5


@dataclass(frozen=True)
class MigrationResult:
    """Scene accuracies on SUN8 test and identity accuracies on ORL s11-s40 (see module doc)."""

    scene_reencoded: float  # new head on z re-encoded by the new version
    scene_migrated: float  # the same new head on migrated old z
    scene_migrated_ratio: float  # scene_migrated / scene_reencoded (target >= 0.95)
    scene_old: float  # a head trained and tested on old z, for reference
    identity_old: float
    identity_migrated: float
    identity_new: float
    identity_chance: float

    def to_dict(self) -> dict[str, float]:
        """Plain dict for JSON."""
        return asdict(self)


def _probe(train_z: np.ndarray, train_y: np.ndarray, test_z: np.ndarray, test_y: np.ndarray):  # noqa: ANN202
    """Fit a standardised logistic regression; returns (accuracy on test, the model)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(train_z, train_y)
    return float(model.score(test_z, test_y)), model


def _identity(z: np.ndarray, people: np.ndarray) -> float:
    """ORL identity probe: the first photos of each person train, the rest test."""
    train = np.zeros(len(people), dtype=bool)
    for person in np.unique(people):
        train[np.flatnonzero(people == person)[:ORL_TRAIN_PER_PERSON]] = True
    return _probe(z[train], people[train], z[~train], people[~train])[0]


def evaluate_migration(old, new, adapter: Adapter, data_root: Path) -> MigrationResult:  # noqa: ANN001
    """Measure ``adapter`` between privatizers ``old`` and ``new`` (anything with privatize)."""
    train = load_sun8(data_root / "scenes-sun8", "train")
    test = load_sun8(data_root / "scenes-sun8", "test")
    orl = load_orl(data_root / "faces-orl", ORL_HELD_OUT)

    def release(p, images: list[np.ndarray]) -> np.ndarray:  # noqa: ANN001
        return p.privatize(images, "mean").z

    new_train, new_test = release(new, train.images), release(new, test.images)
    old_train, old_test = release(old, train.images), release(old, test.images)
    reencoded, head = _probe(new_train, np.asarray(train.labels), new_test, np.asarray(test.labels))
    migrated = float(head.score(adapter.apply(old_test), np.asarray(test.labels)))
    scene_old = _probe(old_train, np.asarray(train.labels), old_test, np.asarray(test.labels))[0]
    people = np.asarray(orl.labels)
    old_orl = release(old, orl.images)
    return MigrationResult(
        scene_reencoded=reencoded,
        scene_migrated=migrated,
        scene_migrated_ratio=migrated / reencoded if reencoded else float("nan"),
        scene_old=scene_old,
        identity_old=_identity(old_orl, people),
        identity_migrated=_identity(adapter.apply(old_orl), people),
        identity_new=_identity(release(new, orl.images), people),
        identity_chance=1.0 / len(np.unique(people)),
    )
