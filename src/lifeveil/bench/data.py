"""The benchmark's data: scenes, victim and auxiliary faces, bystander frames, action clips.

Data-use policy (see :mod:`lifeveil.data.datasets`): scene utility is measured on the fixed
SUN8 *test* split; attacks target ORL s11-s40 (never seen by the default privatizer); the
attacker's auxiliary faces are ORL s1-s10, disjoint from the victims. Bystander frames paste
victim faces into SUN8 test scenes, so they reuse no training image either. The accumulation
attack also targets LFW's held-out identities (301-423 in sorted-name order, never used to
train a privatizer); its auxiliary statistics come from a few LFW training identities. The
reconstruction attacks' decoder and generator learn from LFW training identities (1-300) framed
like the ORL portraits (:func:`lfw_portraits`), so no victim and no held-out person is among them.

Everything here is deterministic given the preset's data ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lifeveil import imaging
from lifeveil.bench.presets import Preset
from lifeveil.data.datasets import (
    LabelledImages,
    load_action_clips,
    load_lfw,
    load_orl,
    sun8_split,
)
from lifeveil.errors import DatasetError
from lifeveil.ingest.images import load_image
from lifeveil.ingest.video import iter_video_frames
from lifeveil.paths import shared_data_root

# Sub-folders of a data root and what each must hold.
EXPECTED_LAYOUT = {
    "scenes-sun8": "labels.csv (path,category) and <class>/sun_*.jpg",
    "faces-orl": "sX/Y.pgm identity folders (s1 ... s40)",
    "action-clips": "labels.csv (file,label,fps,frames_decoded) and the video files",
    "faces-lfw": "labels.csv (path,identity) and <Name>/<Name>_NNNN.jpg",
}
SCENE_MAX_SIDE = 256  # teachers crop 224 px; smaller keeps memory low
LFW_MAX_SIDE = 160  # LFW photos are 250 px; the faces fill the middle
CLIP_MAX_SIDE = 320
# ORL-like framing of an LFW photo, as fractions of its width and height: (left, top, width,
# height) of a 92:112 box chosen so that, in the 64-px crops, YuNet's eye landmarks sit where
# they sit on ORL portraits (eye midpoint at 50 % / 46 % of width / height, eyes 39 % of the
# width apart; measured on 60 LFW training people: 50 %, 46 %, 39 %).
LFW_PORTRAIT_BOX = (0.274, 0.185, 0.468, 0.570)
ORL_SIZE = (92, 112)  # width, height of an ORL portrait
FACE_HEIGHT_RANGE = (0.08, 0.20)  # pasted face height as a fraction of the frame height


@dataclass
class BenchData:
    """All images and frames of one benchmark run."""

    scenes_train: (
        LabelledImages  # SUN8 fixed train split (subsampled per preset), labels = category
    )
    scenes_test: LabelledImages  # SUN8 fixed test split (subsampled per preset)
    faces_victims: LabelledImages  # ORL identities attacked, labels = identity
    faces_aux: LabelledImages  # attacker's auxiliary faces, ORL s1-s10 (disjoint from victims)
    bystanders: LabelledImages  # victim faces pasted into SUN8 test scenes; labels = identity
    bystander_scenes: np.ndarray  # scene category of each bystander frame (same order)
    clips: list[tuple[str, list[np.ndarray]]]  # (clip label, frames sampled at preset fps)
    faces_lfw_heldout: LabelledImages  # LFW held-out identities (301-...), labels = identity
    faces_lfw_aux: LabelledImages  # a few LFW training identities: attacker statistics only
    # LFW training identities as grey ORL-like portraits (lfw_portraits): what the attacker's
    # reconstruction decoder and generator learn from; labels = identity
    faces_recon_aux: LabelledImages


def check_layout(root: Path) -> None:
    """Raise DatasetError unless ``root`` holds the expected dataset folders."""
    missing = [name for name in EXPECTED_LAYOUT if not (root / name).is_dir()]
    if not root.is_dir() or missing:
        expected = "; ".join(f"{name}/: {what}" for name, what in EXPECTED_LAYOUT.items())
        what = "is not a folder" if not root.is_dir() else f"lacks {', '.join(missing)}"
        raise DatasetError(f"{root}: benchmark data root {what}. Expected {expected}")


def _shrink(img: np.ndarray, max_side: int) -> np.ndarray:
    if max(img.shape[:2]) <= max_side:
        return img
    s = max_side / max(img.shape[:2])
    size = (round(img.shape[1] * s), round(img.shape[0] * s))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def _take_per_class(
    rel_paths: list[str], per_class: int | None, rng: np.random.Generator
) -> list[str]:
    if per_class is None:
        return rel_paths
    by_class: dict[str, list[str]] = {}
    for rel in rel_paths:
        by_class.setdefault(rel.split("/")[0], []).append(rel)
    chosen: list[str] = []
    for cls in sorted(by_class):
        items = by_class[cls]
        idx = np.sort(rng.permutation(len(items))[: min(per_class, len(items))])
        chosen += [items[i] for i in idx]
    return chosen


def load_sun8_subset(root: Path, split: str, per_class: int | None, seed: int) -> LabelledImages:
    """``per_class`` SUN8 images per category from the fixed ``split`` (train or test)."""
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    rels = _take_per_class(sun8_split(root)[split], per_class, rng)
    paths = [root / rel for rel in rels]
    images = [_shrink(load_image(p), SCENE_MAX_SIDE) for p in paths]
    labels = np.array([rel.split("/")[0] for rel in rels])
    return LabelledImages(images, labels, paths)


def paste_face(scene: np.ndarray, face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blend ``face`` into a copy of ``scene`` at a random place and a realistic size.

    The face is scaled so its height is 8-20 % of the scene height, blended with a soft
    elliptical alpha mask, and placed uniformly at random inside the frame.
    """
    return imaging.paste_face(scene, face, rng, FACE_HEIGHT_RANGE, feather=0.15)


def make_bystanders(
    faces: LabelledImages, scenes: LabelledImages, seed: int
) -> tuple[LabelledImages, np.ndarray]:
    """One frame per face: the face pasted into a scene drawn at random. Returns frames and scene labels."""
    rng = np.random.default_rng([seed, 2])
    scene_idx = rng.integers(0, len(scenes), size=len(faces))
    frames = [
        paste_face(scenes.images[s], f, rng) for f, s in zip(faces.images, scene_idx, strict=True)
    ]
    return LabelledImages(frames, faces.labels.copy(), list(faces.paths)), scenes.labels[scene_idx]


def lfw_portraits(faces: LabelledImages) -> LabelledImages:
    """LFW photos framed, sized and coloured like ORL portraits: grey 92x112 (as RGB uint8).

    The attacker shapes its auxiliary faces like the victims it will reconstruct: the same
    framing (:data:`LFW_PORTRAIT_BOX`), size and grey levels, so every method sees them as it
    sees an ORL victim (a blur sigma or a pixel block means the same on both).
    """
    left, top, width, height = LFW_PORTRAIT_BOX
    out = []
    for img in faces.images:
        h, w = img.shape[:2]
        y0, x0 = round(top * h), round(left * w)
        box = img[y0 : y0 + round(height * h), x0 : x0 + round(width * w)]
        small = cv2.resize(box, ORL_SIZE, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        out.append(np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2)))
    return LabelledImages(out, faces.labels.copy(), list(faces.paths))


def load_clips(
    root: Path, clips_max: int | None, fps: float, max_frames: int
) -> list[tuple[str, list[np.ndarray]]]:
    """The first ``clips_max`` action clips (labels.csv order), frames sampled at ``fps``."""
    infos = load_action_clips(root)[:clips_max]
    return [
        (
            info.label,
            [
                _shrink(f.image, CLIP_MAX_SIDE)
                for f in iter_video_frames(info.path, fps, max_frames)
            ],
        )
        for info in infos
    ]


def load_bench_data(preset: Preset, root: Path | None = None) -> BenchData:
    """Load and build every dataset of ``preset`` from ``root`` (default: the shared data folder)."""
    root = Path(root) if root is not None else shared_data_root()
    check_layout(root)
    _check_identities(preset)
    scenes_test = load_sun8_subset(
        root / "scenes-sun8", "test", preset.sun8_test_per_class, preset.seed
    )
    victims = load_orl(root / "faces-orl", preset.victim_identities)
    bystanders, bystander_scenes = make_bystanders(victims, scenes_test, preset.seed)
    return BenchData(
        scenes_train=load_sun8_subset(
            root / "scenes-sun8", "train", preset.sun8_train_per_class, preset.seed
        ),
        scenes_test=scenes_test,
        faces_victims=victims,
        faces_aux=load_orl(root / "faces-orl", preset.aux_identities),
        bystanders=bystanders,
        bystander_scenes=bystander_scenes,
        clips=load_clips(
            root / "action-clips", preset.clips_max, preset.clip_fps, preset.clip_max_frames
        ),
        faces_lfw_heldout=load_lfw(
            root / "faces-lfw", "heldout", preset.lfw_heldout_identities, LFW_MAX_SIDE
        ),
        faces_lfw_aux=load_lfw(
            root / "faces-lfw", "train", preset.lfw_aux_identities, LFW_MAX_SIDE
        ),
        # full resolution before framing: the 92x112 portrait is cut from the 250-px photo
        faces_recon_aux=lfw_portraits(
            load_lfw(root / "faces-lfw", "train", preset.recon_aux_identities, max_side=None)
        ),
    )


def _check_identities(preset: Preset) -> None:
    overlap = set(preset.victim_identities) & set(preset.aux_identities)
    if overlap:
        raise DatasetError(
            f"preset {preset.name!r}: victim and auxiliary identities overlap ({sorted(overlap)}); "
            "the attacker's auxiliary faces must be disjoint from the victims"
        )


_CACHE: dict[tuple[str, str], BenchData] = {}


def cached_bench_data(preset: Preset, root: Path | None = None) -> BenchData:
    """:func:`load_bench_data`, memoised per process (worker processes run many jobs)."""
    key = (repr(preset.to_dict()), str(root))
    if key not in _CACHE:
        _CACHE.clear()  # one dataset per process at a time keeps memory bounded
        _CACHE[key] = load_bench_data(preset, root)
    return _CACHE[key]
