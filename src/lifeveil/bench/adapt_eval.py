"""Is a migrated z as useful as a re-encoded one, and no more identifying than the old one?

Issue 14's measurement of :mod:`lifeveil.privatizer.adapt`, on data neither privatizer nor the
adapter was fitted on:

* scene utility on SUN8: a logistic-regression head trained on the *new* version's z of SUN8
  train, applied to SUN8 test as re-encoded by the new version and as migrated from the old one;
* identity by a single probe on ORL s11-s40 (a logistic regression, 5 photos per person to train
  and 5 to test, chance 1/30) on the old, migrated and new z;
* identity under the benchmark's accumulation attacker
  (:func:`lifeveil.bench.attacks.accumulation.accumulation_attack`, with the ``full`` preset's
  budget: k = 1 ... 256, linear and MLP probes on k-averaged z and 1-shot re-ID) on ORL s11-s40
  and on LFW's held-out people (identities 301-423, never used to train a shipped privatizer),
  for the old, migrated and new z. ``migrated_le_old`` says whether the migrated z's best
  attacker stays within the 95 % Wilson interval of the old z's at every k and at k = inf.

Releases are noise-free (the code, or a VIB's mean): the accumulation attacker's limit, and
what a server holding migrated z has (the adapter is applied to stored z).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lifeveil.bench.attacks.accumulation import accumulation_attack
from lifeveil.bench.methods.base import Method
from lifeveil.bench.metrics import binomial_interval
from lifeveil.bench.presets import Preset, get_preset
from lifeveil.bench.schema import to_jsonable
from lifeveil.data import load_sun8
from lifeveil.data.datasets import LabelledImages, load_lfw, load_orl
from lifeveil.privatizer.adapt import Adapter

ORL_HELD_OUT = tuple(f"s{i}" for i in range(11, 41))
ORL_TRAIN_PER_PERSON = 5
RELEASES = ("old", "migrated", "new")
FaceSet = tuple[LabelledImages, LabelledImages]  # (victims, the attacker's auxiliary faces)


@dataclass(frozen=True)
class MigrationResult:
    """Scene accuracies on SUN8 test, identity on ORL s11-s40 and (optionally) identity under
    the accumulation attacker per face set (see the module doc)."""

    scene_reencoded: float  # new head on z re-encoded by the new version
    scene_migrated: float  # the same new head on migrated old z
    scene_migrated_ratio: float  # scene_migrated / scene_reencoded (target >= 0.95)
    scene_old: float  # a head trained and tested on old z, for reference
    identity_old: float
    identity_migrated: float
    identity_new: float
    identity_chance: float
    # face set ("orl", "lfw") -> migration_accumulation(...) for it; empty when not measured
    accumulation: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (NumPy values as Python numbers)."""
        return to_jsonable(asdict(self))


class FixedRelease(Method):
    """A deterministic release ``images -> z`` the attacker can compute (it owns the model).

    Wraps the old model, the old model followed by the adapter, or the new model, so that the
    benchmark's attacks see them as any other deterministic method.
    """

    family = "release"

    def __init__(self, name: str, encode: Callable[[Sequence[np.ndarray]], np.ndarray]) -> None:
        super().__init__({"z": name})
        self._encode = encode

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) float32 z, one per image."""
        return np.asarray(self._encode(images), np.float32)


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


def release_methods(old, new, adapter: Adapter) -> dict[str, FixedRelease]:  # noqa: ANN001
    """The three noise-free releases compared: old z, old z migrated by ``adapter``, new z."""

    def encoder(p) -> Callable[[Sequence[np.ndarray]], np.ndarray]:  # noqa: ANN001
        return lambda images: p.privatize(list(images), "mean").z

    return {
        "old": FixedRelease("old", encoder(old)),
        "migrated": FixedRelease("migrated", lambda images: adapter.apply(encoder(old)(images))),
        "new": FixedRelease("new", encoder(new)),
    }


def held_out_faces(data_root: Path, preset: Preset) -> dict[str, FaceSet]:
    """The benchmark's attacked face sets with ``preset``'s identities: ORL victims with the
    ORL auxiliary people, LFW held-out people with a few LFW training people as auxiliaries."""
    from lifeveil.bench.data import LFW_MAX_SIDE

    lfw = data_root / "faces-lfw"
    return {
        "orl": (
            load_orl(data_root / "faces-orl", preset.victim_identities),
            load_orl(data_root / "faces-orl", preset.aux_identities),
        ),
        "lfw": (
            load_lfw(lfw, "heldout", preset.lfw_heldout_identities, LFW_MAX_SIDE, progress=False),
            load_lfw(lfw, "train", preset.lfw_aux_identities, LFW_MAX_SIDE, progress=False),
        ),
    }


def migration_accumulation(
    methods: dict[str, Method], faces: FaceSet, preset: Preset, seed: int = 0
) -> dict[str, Any]:
    """The accumulation attack on each release in ``methods`` (deterministic), one face set.

    Returns ``k``, per release the attack's JSON dict (``identity`` per k, ``identity_inf``,
    ``headline``, per-attacker lists, ...), ``headline`` (release -> best attacker at the
    largest k), ``old_interval`` (95 % Wilson interval of the old release's best attacker per k,
    then at inf, over its queries), ``migrated_le_old`` (the migrated release's best attacker is
    at most the upper end of that interval at every k and at inf), ``chance`` and
    ``n_identities``.
    """
    victims, aux = faces
    ks = tuple(int(k) for k in preset.accumulation_k)
    attacks = {}
    for name, method in methods.items():
        known = (method.noise_free(victims.images), method.noise_free(aux.images))
        attacks[name] = accumulation_attack(
            method,
            victims.images,
            np.asarray(victims.labels),
            aux.images,
            ks=ks,
            seed=seed,
            n_draws=preset.accumulation_draws,
            averages=preset.accumulation_averages,
            known=known,
        )
    old = attacks["old"]
    queries = old["averages_per_identity"] * old["n_identities"]
    curve = [*old["identity"], old["identity_inf"]]
    trials = [queries] * len(old["identity"]) + [old["images_test"]]
    intervals = [binomial_interval(a, n) for a, n in zip(curve, trials, strict=True)]
    migrated = [*attacks["migrated"]["identity"], attacks["migrated"]["identity_inf"]]
    return {
        "k": list(ks),
        **attacks,
        "headline": {name: a["headline"] for name, a in attacks.items()},
        "old_interval": [list(i) for i in intervals],
        "migrated_le_old": all(m <= hi for m, (_, hi) in zip(migrated, intervals, strict=True)),
        "chance": old["chance"],
        "n_identities": old["n_identities"],
    }


def evaluate_migration(
    old,  # noqa: ANN001
    new,  # noqa: ANN001
    adapter: Adapter,
    data_root: Path,
    *,
    accumulation: bool = True,
    preset: Preset | None = None,
) -> MigrationResult:
    """Measure ``adapter`` between privatizers ``old`` and ``new`` (anything with privatize).

    ``accumulation`` adds the accumulation attack on the held-out face sets with ``preset``'s
    identities and budget (default: the ``full`` preset's); returns a :class:`MigrationResult`.
    """
    train = load_sun8(data_root / "scenes-sun8", "train")
    test = load_sun8(data_root / "scenes-sun8", "test")
    orl = load_orl(data_root / "faces-orl", ORL_HELD_OUT)
    methods = release_methods(old, new, adapter)
    new_train, new_test = (
        methods["new"].features(train.images),
        methods["new"].features(test.images),
    )
    old_train, old_test = (
        methods["old"].features(train.images),
        methods["old"].features(test.images),
    )
    reencoded, head = _probe(new_train, np.asarray(train.labels), new_test, np.asarray(test.labels))
    migrated = float(head.score(adapter.apply(old_test), np.asarray(test.labels)))
    scene_old = _probe(old_train, np.asarray(train.labels), old_test, np.asarray(test.labels))[0]
    people = np.asarray(orl.labels)
    old_orl = methods["old"].features(orl.images)
    accumulated = {}
    if accumulation:
        preset = preset or get_preset("full")
        faces = held_out_faces(data_root, preset)
        accumulated = {
            name: migration_accumulation(methods, pair, preset, seed=preset.seeds[0])
            for name, pair in faces.items()
        }
    return MigrationResult(
        scene_reencoded=reencoded,
        scene_migrated=migrated,
        scene_migrated_ratio=migrated / reencoded if reencoded else float("nan"),
        scene_old=scene_old,
        identity_old=_identity(old_orl, people),
        identity_migrated=_identity(adapter.apply(old_orl), people),
        identity_new=_identity(methods["new"].features(orl.images), people),
        identity_chance=1.0 / len(np.unique(people)),
        accumulation=accumulated,
    )
