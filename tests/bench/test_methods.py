"""Benchmark methods and data: registry, pixel ops, detectors, DP calibration, msr, BenchData."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lifeveil.bench.attacks.recon_optim import GENERATOR_BATCH
from lifeveil.bench.data import check_layout, load_bench_data, paste_face
from lifeveil.bench.methods import create_method, list_methods, register_method
from lifeveil.bench.methods.dp import clip_rows, noise_multiplier
from lifeveil.bench.methods.pixel import blur_np, blur_torch, pixelate_np
from lifeveil.bench.presets import PRESETS, Preset, get_preset
from lifeveil.data import lfw_identity_split, load_orl
from lifeveil.errors import DatasetError, InputError, UnknownNameError
from lifeveil.privatizer import PrivatizerConfig
from lifeveil.privatizer.checkpoint import save_checkpoint
from lifeveil.privatizer.model import PrivatizerModel

FAMILIES = [
    "blur",
    "deface",
    "dp-embedding",
    "face-blur",
    "msr",
    "noise",
    "pixelate",
    "raw-teacher",
]


def write_tiny_checkpoint(path: Path) -> Path:
    """An untrained tiny privatizer (random weights): enough to exercise the msr plumbing."""
    torch.manual_seed(0)
    cfg = PrivatizerConfig(
        input_size=64, z_dim=16, decoder_hidden=32, student_init="random", lam=0.01
    )
    return save_checkpoint(path, PrivatizerModel(cfg).state_dict(), cfg, {"note": "test"})


@pytest.fixture(scope="module")
def faces(orl_root) -> list[np.ndarray]:
    return load_orl(orl_root, ["s11"]).images[:3]


@pytest.fixture(scope="module")
def scenes(skimage_images) -> list[np.ndarray]:
    return skimage_images[:3]


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


# ----------------------------------------------------------------------------- registry


def test_registry_lists_every_family_and_refuses_unknown_and_duplicates():
    assert list_methods() == FAMILIES
    with pytest.raises(UnknownNameError, match="available: blur, deface"):
        create_method("gauss-blur", {}, 0)
    with pytest.raises(ValueError, match="already registered"):
        register_method("blur", object)


def test_ids_are_stable_and_msr_id_leaves_out_the_path(tmp_path):
    assert create_method("blur", {"sigma": 4}, 0).id == "blur[sigma=4]"
    assert create_method("raw-teacher", {}, 0).id == "raw-teacher"
    ckpt = write_tiny_checkpoint(tmp_path / "lambda_0.01.safetensors")
    m = create_method("msr", {"ckpt": "lambda_0.01", "mode": "sample", "path": str(ckpt)}, 3)
    assert m.id == "msr[ckpt=lambda_0.01,mode=sample]" and m.seed == 3 and m.family == "msr"


def test_presets_are_known_and_unknown_lists_names():
    assert set(PRESETS) == {"quick", "full"}
    with pytest.raises(UnknownNameError, match="available: full, quick"):
        get_preset("medium")
    quick = get_preset("quick")
    assert Preset.from_dict(quick.to_dict()) == quick
    assert not set(quick.victim_identities) & set(quick.aux_identities)
    full = get_preset("full")
    swept = {"blur", "pixelate", "noise", "dp-embedding"}  # one curve each in the trade-off plot
    for family in swept:
        assert sum(f == family for f, _ in full.methods) == 3, family
    assert {"face-blur", "deface"} <= {f for f, _ in full.methods}


def test_reconstruction_attackers_learn_from_hundreds_to_thousands_of_lfw_faces(lfw_root):
    import csv

    per_person = {}
    with open(lfw_root / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            per_person[row["identity"]] = per_person.get(row["identity"], 0) + 1
    train = lfw_identity_split(lfw_root)["train"]

    def n_faces(preset: Preset) -> int:
        return sum(per_person[name] for name in train[: preset.recon_aux_identities])

    quick, full = get_preset("quick"), get_preset("full")
    assert 100 <= n_faces(quick) <= 200  # small: quick must stay under 4 minutes
    assert n_faces(full) >= 2000  # all 300 training people
    # enough generator steps that G depends on its latent (fewer left it constant, measured)
    for preset in (quick, full):
        faces = n_faces(preset) + 10 * len(preset.aux_identities)
        assert math.ceil(faces / GENERATOR_BATCH) * preset.generator_epochs >= 140, preset.name


def test_presets_load_from_toml(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'base = "quick"\nseeds = [0, 1]\nmethods = [["raw-teacher", {}], ["blur", {sigma = 2.0}]]\n'
    )
    preset = get_preset(str(path))
    assert preset.name == "mine" and preset.seeds == (0, 1)
    assert preset.methods == (("raw-teacher", {}), ("blur", {"sigma": 2.0}))
    assert preset.victim_identities == get_preset("quick").victim_identities
    path.write_text("sigma = 3\n")
    with pytest.raises(InputError, match="unknown preset fields \\['sigma'\\]"):
        get_preset(str(path))


# --------------------------------------------------------------------------- pixel ops


def test_blur_numpy_and_torch_agree(scenes):
    img = scenes[0][:120, :140]
    a = blur_np(img, 3.0).astype(np.float32)
    b = blur_torch(torch.from_numpy(img).permute(2, 0, 1)[None].float(), 3.0)[0].permute(1, 2, 0)
    assert np.abs(a - b.numpy()).max() <= 0.5 + 1e-3
    assert a.std() < img.astype(np.float32).std()


def test_pixelate_makes_constant_blocks():
    img = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    out = pixelate_np(img, 8)
    block = out[8:16, 16:24].reshape(-1, 3)
    assert (block == block[0]).all()
    assert abs(float(block[0, 0]) - img[8:16, 16:24, 0].mean()) <= 0.5


@pytest.mark.parametrize(
    ("family", "params"), [("blur", {"sigma": 4.0}), ("pixelate", {"block": 8})]
)
def test_pixel_features_torch_matches_features_and_has_gradients(family, params, scenes):
    m = create_method(family, params, 0)
    released = m.features(scenes)
    assert released.shape == (3, 1280) and released.dtype == np.float32
    pixels = m.pixels(scenes).requires_grad_(True)
    surrogate = m.features_torch(pixels)
    surrogate.sum().backward()
    cos = torch.nn.functional.cosine_similarity(surrogate.detach(), torch.from_numpy(released))
    assert cos.min() > 0.999
    assert pixels.grad.abs().sum() > 0
    processed = m.process_images(scenes)
    assert processed[0].shape == (224, 224, 3) and processed[0].dtype == np.uint8


def test_noise_is_reproducible_per_seed_and_fresh_per_call(scenes):
    a, b = create_method("noise", {"sigma": 0.1}, 1), create_method("noise", {"sigma": 0.1}, 1)
    first = a.process_images(scenes[:1])[0]
    assert np.array_equal(first, b.process_images(scenes[:1])[0])
    assert not np.array_equal(first, a.process_images(scenes[:1])[0])


def test_raw_teacher_is_the_teacher_and_dp_noise_matches_calibration(scenes):
    raw = create_method("raw-teacher", {}, 0)
    emb = raw.features(scenes)
    assert np.allclose(raw.features_torch(raw.pixels(scenes)).detach().numpy(), emb, atol=1e-4)
    dp = create_method("dp-embedding", {"epsilon": 16.0, "clip": 5.0}, 0)
    noise = dp.features(scenes) - clip_rows(emb, 5.0)
    assert abs(noise.std() / dp.sigma - 1) < 0.05
    assert dp.describe()["sensitivity"] == 10.0 and "replace-one" in dp.describe()["adjacency"]


def test_dp_noise_multiplier_is_the_replace_one_gaussian_calibration():
    import dp_accounting

    for eps in (1.0, 8.0):
        analytic = 2 * dp_accounting.get_sigma_gaussian(eps, 1e-5)  # sensitivity 2 per unit C
        assert noise_multiplier(eps, 1e-5) == pytest.approx(analytic, rel=1e-3)
    assert noise_multiplier(1.0, 1e-5) > noise_multiplier(8.0, 1e-5)
    x = np.array([[3.0, 4.0], [0.3, 0.4]])
    assert np.allclose(np.linalg.norm(clip_rows(x, 1.0), axis=1), [1.0, 0.5])


# ------------------------------------------------------------------------- detectors


def test_face_blur_blurs_the_detected_face_only(faces, scenes):
    m = create_method("face-blur", {"sigma": 6.0}, 0)
    crops = m.process_images(faces)
    from lifeveil.bench.methods.pixel import teacher_crops

    originals = teacher_crops(faces)
    assert m.detection_rate(faces) == 1.0  # ORL close-ups: YuNet finds every face
    assert all(not np.array_equal(c, o) for c, o in zip(crops, originals, strict=True))
    box = m.boxes(originals[0])[0]
    outside = np.ones((224, 224), bool)
    outside[box[1] : box[3], box[0] : box[2]] = False
    assert np.array_equal(crops[0][outside], originals[0][outside])
    pixels = m.pixels(faces[:1]).requires_grad_(True)
    m.features_torch(pixels).sum().backward()  # straight-through gradient exists
    assert pixels.grad.abs().sum() > 0


def test_deface_runs_the_deface_package(faces):
    m = create_method("deface", {"mode": "solid"}, 0)
    out = m.process_images(faces[:1])[0]
    from lifeveil.bench.methods.pixel import teacher_crops

    original = teacher_crops(faces[:1])[0]
    changed = np.any(out != original, axis=2)
    assert changed.mean() > 0.1 and (out[changed] == 0).all()  # solid black box over the face
    with pytest.raises(UnknownNameError, match="blur, solid, mosaic"):
        create_method("deface", {"mode": "emoji"}, 0)


def test_repeated_releases_follow_the_method_contract(scenes):
    raw = create_method("raw-teacher", {}, 0)
    assert raw.stochastic is False and raw.fresh_draws(64) == 1
    drawn = raw.draws(scenes, 5)
    assert drawn.shape == (3, 5, 1280) and np.array_equal(drawn[:, 4], raw.noise_free(scenes))
    assert np.array_equal(raw.noise_free(scenes), raw.features(scenes))
    dp = create_method("dp-embedding", {"epsilon": 16.0, "clip": 5.0}, 0)
    assert dp.stochastic is True and dp.fresh_draws(64) == 64
    clean = dp.noise_free(scenes)
    assert np.allclose(clean, clip_rows(raw.features(scenes), 5.0), atol=1e-5)
    noisy = dp.draws(scenes, 200)
    assert noisy.shape == (3, 200, 1280) and noisy.dtype == np.float32
    assert abs((noisy - clean[:, None]).std() / dp.sigma - 1) < 0.02
    assert np.abs(noisy.mean(axis=1) - clean).mean() < 3 * dp.sigma / np.sqrt(200)


def test_pixel_noise_reuses_a_few_fresh_draws_and_its_clean_frame_is_noise_free(scenes):
    noise = create_method("noise", {"sigma": 0.2}, 0)
    assert noise.stochastic is True and noise.fresh_draws(64) == 4 and noise.fresh_draws(2) == 2
    drawn = noise.draws(scenes[:2], 6)
    assert drawn.shape == (2, 6, 1280)
    assert np.array_equal(drawn[:, 0], drawn[:, 4]) and np.array_equal(drawn[:, 1], drawn[:, 5])
    assert not np.array_equal(drawn[:, 0], drawn[:, 1])
    blur0 = create_method("blur", {"sigma": 1e-3}, 0)  # ~identity op on the same teacher crop
    assert np.allclose(noise.noise_free(scenes[:2]), blur0.features(scenes[:2]), atol=1e-3)
    assert create_method("blur", {"sigma": 4.0}, 0).stochastic is False


def test_msr_releases_z_and_is_differentiable(tmp_path, scenes):
    ckpt = write_tiny_checkpoint(tmp_path / "tiny.safetensors")
    mean = create_method("msr", {"mode": "mean", "path": str(ckpt)}, 0)
    z = mean.features(scenes)
    assert z.shape == (3, 16) and np.array_equal(z, mean.features(scenes))
    sample = create_method("msr", {"mode": "sample", "path": str(ckpt)}, 0)
    assert not np.array_equal(sample.features(scenes), z)
    pixels = mean.pixels(scenes).requires_grad_(True)
    mean.features_torch(pixels).sum().backward()
    assert pixels.grad.abs().sum() > 0
    assert mean.device_cost()["params"] > 0 and mean.uploads_pixels is False
    # repeated releases: mean repeats mu, sample draws fresh posterior noise around it
    assert mean.stochastic is False and sample.stochastic is True
    mu = mean.noise_free(scenes)
    assert np.allclose(mu, z) and np.allclose(sample.noise_free(scenes), mu)
    assert np.allclose(mean.draws(scenes, 4), z[:, None])
    drawn = sample.draws(scenes, 300)
    assert drawn.shape == (3, 300, 16) and not np.allclose(drawn[:, 0], drawn[:, 1])
    spread = drawn.std(axis=1).mean()
    assert np.abs(drawn.mean(axis=1) - mu).max() < 6 * spread / np.sqrt(300)


# ------------------------------------------------------------------------------ data


def test_paste_face_is_deterministic_and_sized(scenes, faces):
    scene = scenes[0]
    a = paste_face(scene, faces[0], np.random.default_rng(0))
    b = paste_face(scene, faces[0], np.random.default_rng(0))
    assert np.array_equal(a, b) and a.shape == scene.shape
    rows = np.flatnonzero(np.any(a != scene, axis=(1, 2)))
    height = (rows.max() - rows.min() + 1) / scene.shape[0]
    assert 0.04 < height <= 0.21


TINY = dataclasses.replace(
    get_preset("quick"),
    name="tiny",
    sun8_train_per_class=2,
    sun8_test_per_class=1,
    victim_identities=("s11", "s12"),
    aux_identities=("s1",),
    clips_max=1,
    clip_max_frames=3,
    lfw_heldout_identities=3,
    lfw_aux_identities=2,
    recon_aux_identities=3,
)


def test_load_bench_data_follows_the_data_use_policy(orl_root, sun8_root, clips_root, lfw_root):
    data = load_bench_data(TINY, orl_root.parent)
    assert len(data.scenes_train) == 16 and len(data.scenes_test) == 8
    assert set(data.faces_victims.labels) == {"s11", "s12"} and set(data.faces_aux.labels) == {"s1"}
    assert len(data.bystanders) == len(data.faces_victims) == len(data.bystander_scenes)
    assert set(data.bystander_scenes) <= set(data.scenes_test.labels)
    assert not {p.name for p in data.scenes_test.paths} & {p.name for p in data.scenes_train.paths}
    assert len(data.clips) == 1 and 1 <= len(data.clips[0][1]) <= 3
    again = load_bench_data(TINY, orl_root.parent)
    assert np.array_equal(again.bystanders.images[3], data.bystanders.images[3])
    # LFW: the first held-out identities are attacked; auxiliary people come from the train split
    split = lfw_identity_split(lfw_root)
    assert list(dict.fromkeys(data.faces_lfw_heldout.labels)) == split["heldout"][:3]
    assert list(dict.fromkeys(data.faces_lfw_aux.labels)) == split["train"][:2]
    assert not set(data.faces_lfw_heldout.labels) & set(split["train"])
    assert all(max(img.shape[:2]) <= 160 for img in data.faces_lfw_heldout.images)
    assert 3 * 5 <= len(data.faces_lfw_heldout) <= 3 * 8
    # the reconstruction attackers' faces: LFW training people only, framed like ORL portraits
    recon = data.faces_recon_aux
    assert list(dict.fromkeys(recon.labels)) == split["train"][:3]
    assert not set(recon.labels) & (set(split["heldout"]) | set(data.faces_victims.labels))
    assert 3 * 5 <= len(recon) <= 3 * 8 and all(
        p.parent.name in split["train"] for p in recon.paths
    )
    for img in recon.images:
        assert img.shape == (112, 92, 3) and img.dtype == np.uint8
        assert np.array_equal(img[..., 0], img[..., 2])  # grey, like the ORL victims


def test_bad_data_root_and_overlapping_identities_are_explained(tmp_path, orl_root):
    (tmp_path / "faces-orl").mkdir()
    with pytest.raises(
        DatasetError, match="lacks scenes-sun8, action-clips, faces-lfw.*Expected scenes-sun8/"
    ):
        check_layout(tmp_path)
    for name in ("scenes-sun8", "action-clips"):
        (tmp_path / name).mkdir()
    with pytest.raises(DatasetError) as missing_lfw:
        check_layout(tmp_path)
    message = str(missing_lfw.value)
    assert "lacks faces-lfw" in message and "faces-lfw/: labels.csv" in message
    assert "\n" not in message
    with pytest.raises(DatasetError, match="not a folder"):
        check_layout(tmp_path / "nope")
    bad = dataclasses.replace(TINY, aux_identities=("s11",))
    with pytest.raises(DatasetError, match="overlap"):
        load_bench_data(bad, orl_root.parent)
