"""The accumulation attack on old, migrated and new z (issue 14), on synthetic releases."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lifeveil.bench.adapt_eval import FixedRelease, migration_accumulation
from lifeveil.bench.presets import get_preset
from lifeveil.data.datasets import LabelledImages

PEOPLE, PER_PERSON, DIM = 6, 6, 8


def _faces(first: int, seed: int) -> LabelledImages:
    """Tiny 'images' whose first pixel names the person (an identity-revealing encoder can read it)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([f"p{first + i}" for i in range(PEOPLE)], PER_PERSON)
    images = []
    for label in labels:
        img = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        img[0, 0, 0] = int(label[1:])
        images.append(img)
    return LabelledImages(images, labels, [None] * len(labels))


def _identity_encoder(strength: float):  # noqa: ANN202
    """z = strength x (a fixed random code of the person) + noise from the other pixels."""
    codes = np.random.default_rng(7).standard_normal((64, DIM))

    def encode(images) -> np.ndarray:  # noqa: ANN001
        person = np.array([img[0, 0, 0] for img in images])
        rest = np.stack([img[1:, :, :].reshape(-1)[:DIM] / 255.0 - 0.5 for img in images])
        return strength * codes[person] + rest

    return encode


def _run(migrated_strength: float) -> dict:
    preset = replace(get_preset("quick"), accumulation_k=(1, 4), accumulation_draws=4)
    methods = {
        "old": FixedRelease("old", _identity_encoder(1.0)),
        "migrated": FixedRelease("migrated", _identity_encoder(migrated_strength)),
        "new": FixedRelease("new", _identity_encoder(0.0)),
    }
    return migration_accumulation(methods, (_faces(0, 1), _faces(20, 2)), preset)


def test_migrated_weaker_than_old_passes_and_new_is_near_chance() -> None:
    out = _run(0.5)
    assert out["k"] == [1, 4] and out["n_identities"] == PEOPLE
    assert out["old"]["headline"] > 0.9  # the old z names the person
    assert out["new"]["headline"] < 0.6  # the new z carries no identity (chance 1/6)
    lo, hi = out["old_interval"][-1]
    assert lo <= out["old"]["identity_inf"] <= hi
    assert out["migrated_le_old"] is True
    assert set(out["headline"]) == {"old", "migrated", "new"}


def test_migrated_more_identifying_than_old_is_flagged() -> None:
    """Swap roles: an 'old' z at chance and a 'migrated' z that names the person must fail."""
    preset = replace(get_preset("quick"), accumulation_k=(1,), accumulation_draws=4)
    methods = {
        "old": FixedRelease("old", _identity_encoder(0.0)),
        "migrated": FixedRelease("migrated", _identity_encoder(1.0)),
        "new": FixedRelease("new", _identity_encoder(0.0)),
    }
    out = migration_accumulation(methods, (_faces(0, 1), _faces(20, 2)), preset)
    assert out["migrated"]["headline"] > out["old_interval"][0][1]
    assert out["migrated_le_old"] is False


def test_the_command_prints_one_row_per_release_and_the_verdict() -> None:
    from lifeveil.cli.adapt import _accumulation_lines

    lines = _accumulation_lines("orl", _run(0.5))
    assert lines[0].startswith("ORL s11-s40 identity under accumulation (6 people")
    assert lines[1].split() == ["k=1", "k=4", "inf"]
    assert [line.split()[0] for line in lines[2:5]] == ["old", "migrated", "new"]
    assert lines[-2].startswith("  headline (best attacker at k=4): old ")
    assert lines[-1].endswith(": yes")
