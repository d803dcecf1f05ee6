"""Utility tasks: scene probes, retrieval mAP, clip agreement, and the probe machinery."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from lifeveil.bench.data import load_clips, load_sun8_subset
from lifeveil.bench.tasks import (
    clip_agreement,
    get_task,
    list_tasks,
    register_task,
    scene_probe,
    scene_retrieval,
)
from lifeveil.bench.tasks.clips import split_halves
from lifeveil.bench.tasks.probes import SpanProjection, fit_linear_probe
from lifeveil.bench.tasks.scene import measure_scene_probe
from lifeveil.errors import UnknownNameError


def clusters(
    n_classes: int, per_class: int, dim: int, spread: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around random class centres, labels 'c0'..."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 3
    x = np.concatenate([c + spread * rng.normal(size=(per_class, dim)) for c in centres])
    y = np.repeat([f"c{i}" for i in range(n_classes)], per_class)
    return x.astype(np.float32), y


def tiny_pixels(images: list[np.ndarray], side: int = 8) -> np.ndarray:
    """Images -> flattened side x side colour thumbnails in [0, 1]."""
    thumbs = [cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA) for img in images]
    return np.stack(thumbs).reshape(len(images), -1).astype(np.float32) / 255.0


def test_scene_probe_separable_and_random() -> None:
    x, y = clusters(4, 30, 40, 0.5, seed=0)
    train = np.arange(len(y)) % 3 != 0
    got = scene_probe(x[train], y[train], x[~train], y[~train])
    assert got["linear_acc"] == 1.0 and got["knn_acc"] == 1.0
    assert got["chance"] == 0.25
    rng = np.random.default_rng(1)
    noise = rng.normal(size=x.shape).astype(np.float32)
    random = scene_probe(noise[train], y[train], noise[~train], y[~train])
    assert random["linear_acc"] < 0.5 and random["knn_acc"] < 0.5


def test_scene_probe_on_real_sun8_thumbnails(sun8_root: Path) -> None:
    train = load_sun8_subset(sun8_root, "train", 15, seed=0)
    test = load_sun8_subset(sun8_root, "test", 8, seed=0)
    got = scene_probe(
        tiny_pixels(train.images), train.labels, tiny_pixels(test.images), test.labels
    )
    # colour layout alone separates some SUN8 categories (sky, water, indoor light)
    assert got["linear_acc"] > got["chance"] + 0.1
    assert got["linear_C"] > 0 and got["knn_k"] >= 1


def test_scene_retrieval_map() -> None:
    x, y = clusters(3, 10, 16, 0.1, seed=2)
    got = scene_retrieval(x[::2], y[::2], x[1::2], y[1::2])
    assert got["map"] == pytest.approx(1.0)
    assert got["chance_map"] == pytest.approx(1 / 3, abs=0.02)


def test_span_projection_keeps_linear_probe_predictions() -> None:
    # more dimensions than samples: the projected probe must predict like the plain one
    x, y = clusters(5, 8, 300, 3.0, seed=3)
    xt, yt = clusters(5, 8, 300, 3.0, seed=3)
    xt = xt + np.random.default_rng(4).normal(size=xt.shape).astype(np.float32)
    fast = fit_linear_probe(x, y, c_grid=[0.1])
    assert "span" in fast.named_steps
    scaler = StandardScaler().fit(x)
    plain = LogisticRegression(C=0.1, max_iter=2000, tol=1e-6).fit(scaler.transform(x), y)
    agree = np.mean(fast.predict(xt) == plain.predict(scaler.transform(xt)))
    assert agree >= 0.95
    proj = SpanProjection().fit(scaler.transform(x))
    assert proj.basis_.T @ proj.basis_ == pytest.approx(np.eye(proj.basis_.shape[1]), abs=1e-6)


def test_clip_agreement_on_real_clips(clips_root: Path) -> None:
    clips = load_clips(clips_root, clips_max=4, fps=2.0, max_frames=6)
    feats = [tiny_pixels(frames) for _, frames in clips]
    got = clip_agreement(feats)
    assert got["n_clips"] == len(clips) and got["chance"] == pytest.approx(1 / len(clips))
    assert got["top1"] >= 0.75  # halves of one real clip look alike
    constant = clip_agreement([np.ones((len(f), 5)) for f in feats])
    assert constant["top1"] <= got["chance"] + 1e-9  # no information: always picks clip 0


def test_split_halves_and_errors() -> None:
    first, second = split_halves(np.arange(8, dtype=float).reshape(4, 2))
    assert first == pytest.approx([1.0, 2.0]) and second == pytest.approx([5.0, 6.0])
    one = split_halves(np.array([[1.0, 2.0]]))
    assert one[0] == pytest.approx(one[1])
    with pytest.raises(ValueError, match="at least two clips"):
        clip_agreement([np.ones((3, 2))])


def test_task_registry() -> None:
    assert list_tasks() == ["clip_agreement", "scene_probe", "scene_retrieval"]
    assert get_task("scene_probe") is measure_scene_probe
    with pytest.raises(ValueError, match="already registered"):
        register_task("scene_probe", measure_scene_probe)
    with pytest.raises(UnknownNameError, match="available"):
        get_task("nope")
