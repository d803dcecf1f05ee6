"""Training views for identity invariance, with no identity labels.

Two label-free signals teach the student that *who* is in a frame is not part of the scene:

* **face views** (kind 1): crops of face photos (tight and loose, colour and grey, mirrored),
  whose utility target is one shared "a person" embedding (the teacher's mean over face
  views), and whose codes a collapse term pulls to a single point;
* **composite views** (kind 2): a scene with a face pasted in at 10-45 % of the frame height,
  whose target is the teacher's embedding of the *clean* scene and whose code an invariance
  term pulls to the clean scene's code (``partner`` = that scene view's index).

Scene views (kind 0) are plain teacher distillation, as in :mod:`lifeveil.privatizer.data`.
Because nothing here uses who the people are, the terms apply to people never seen in
training; the benchmark measures whether they do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from lifeveil.imaging import paste_face
from lifeveil.privatizer.data import FrameSet, ViewCache, build_view_cache, student_pixels
from lifeveil.privatizer.model import StudentEncoder
from lifeveil.teachers.base import Teacher, resize_center_crop, to_float_batch

SCENE, FACE, COMPOSITE = 0, 1, 2
FACE_HEIGHT_RANGE = (0.10, 0.45)  # pasted face height as a fraction of the frame height
GREY_PROBABILITY = 0.35  # face views turned grey (cameras in low light, grey datasets)


def face_view(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop of a face photo: 35-100 % of the shorter side around the centre, maybe
    mirrored, maybe grey, with a brightness/contrast change."""
    h, w = img.shape[:2]
    side = int(min(h, w) * rng.uniform(0.35, 1.0))
    cy = h / 2 + rng.uniform(-0.08, 0.08) * h
    cx = w / 2 + rng.uniform(-0.08, 0.08) * w
    top = int(np.clip(cy - side / 2, 0, h - side))
    left = int(np.clip(cx - side / 2, 0, w - side))
    crop = img[top : top + side, left : left + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    out = crop.astype(np.float32)
    if rng.random() < GREY_PROBABILITY:
        out = np.repeat(out.mean(axis=2, keepdims=True), 3, axis=2)
    out = (out - 128.0) * rng.uniform(0.8, 1.2) + 128.0 + rng.uniform(-20, 20)
    return np.clip(out, 0, 255).astype(np.uint8)


def paste(scene: np.ndarray, face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``face`` blended into a copy of ``scene`` at a random place, 10-45 % of its height."""
    return paste_face(scene, face, rng, FACE_HEIGHT_RANGE, feather=0.2)


def _student_features(
    student: StudentEncoder,
    images: Sequence[np.ndarray],
    input_size: int,
    batch_size: int,
    bar: tqdm,
) -> torch.Tensor:
    feats = []
    for i in range(0, len(images), batch_size):
        crops = [
            resize_center_crop(np.ascontiguousarray(x), 224) for x in images[i : i + batch_size]
        ]
        feats.append(student.frozen_features(student_pixels(crops, input_size)))
        bar.update(len(crops))
    return torch.cat(feats)


@torch.inference_mode()
def build_invariance_cache(
    scenes: FrameSet,
    faces: Sequence[np.ndarray],
    teacher: Teacher,
    student: StudentEncoder,
    input_size: int,
    views: int,
    face_views: int,
    seed: int,
    batch_size: int = 32,
    progress: bool = True,
) -> ViewCache:
    """Scene views (teacher targets), face views (one shared target) and composites.

    The shared "a person" target is the teacher's mean embedding over (up to 256) face views.
    One composite is made per scene image (its centre view, partner index recorded).
    """
    base = build_view_cache(scenes, teacher, student, input_size, views, seed, batch_size, progress)
    n_scene = len(base)
    rng = np.random.default_rng([seed, 77])
    fviews = [face_view(faces[i], rng) for i in range(len(faces)) for _ in range(face_views)]
    bar = tqdm(
        total=len(fviews) + len(scenes.frames),
        desc="invariance views",
        unit="view",
        disable=not progress,
    )
    face_feats = _student_features(student, fviews, input_size, batch_size, bar)
    probe = [fviews[i] for i in rng.permutation(len(fviews))[:256]]
    anchor = teacher(
        to_float_batch(
            [resize_center_crop(np.ascontiguousarray(x), teacher.input_size) for x in probe],
            teacher.input_size,
        )
    ).mean(0)
    # Scene view 0 of every image is at index image * views (build_view_cache is image-major).
    partners = torch.arange(len(scenes.frames)) * views
    comps = [
        paste(scenes.frames[i], face_view(faces[int(rng.integers(len(faces)))], rng), rng)
        for i in range(len(scenes.frames))
    ]
    comp_feats = _student_features(student, comps, input_size, batch_size, bar)
    bar.close()
    return ViewCache(
        features=torch.cat([base.features, face_feats, comp_feats]),
        targets=torch.cat(
            [
                base.targets,
                anchor.expand(len(fviews), -1),
                base.targets[partners],
            ]
        ),
        groups=torch.arange(n_scene + len(fviews) + len(comps)),
        kinds=torch.cat(
            [
                torch.full((n_scene,), SCENE),
                torch.full((len(fviews),), FACE),
                torch.full((len(comps),), COMPOSITE),
            ]
        ),
        partners=torch.cat(
            [
                torch.full((n_scene + len(fviews),), -1),
                partners,
            ]
        ),
    )
