"""Training inputs for the privatizer: gather frames, then cache augmented views.

Training needs no labels: the teacher supplies the target for every view. A *group* is a set of
frames that belong together (one image, or one window of consecutive video frames); clip mode
pools the frames of a group into one z.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from lifeveil.data import ORL_TRAIN_IDENTITIES, load_orl, load_sun8
from lifeveil.errors import InputError
from lifeveil.ingest.images import IMAGE_SUFFIXES, list_images, load_image
from lifeveil.ingest.video import VIDEO_SUFFIXES, iter_video_frames
from lifeveil.privatizer.model import StudentEncoder
from lifeveil.teachers.base import Teacher, resize_center_crop, to_float_batch


@dataclass
class FrameSet:
    """Frames with a group id each and a description of where they came from."""

    frames: list[np.ndarray] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def add_group(self, frames: Sequence[np.ndarray]) -> None:
        """Append frames that form one group."""
        gid = (self.groups[-1] + 1) if self.groups else 0
        self.frames.extend(frames)
        self.groups.extend([gid] * len(frames))

    def __len__(self) -> int:
        return len(self.frames)


def _read_csv_paths(csv_path: Path) -> list[Path]:
    import csv

    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "path" not in rows[0]:
        raise InputError(
            f"{csv_path}: expected a CSV with a 'path' column (relative to the CSV's folder)"
        )
    return [csv_path.parent / r["path"] for r in rows]


def collect_frames(
    inputs: Sequence[str | Path],
    sun8: str | Path | None = None,
    orl: str | Path | None = None,
    video_fps: float = 2.0,
    clip_frames: int = 1,
    max_side: int = 320,
) -> FrameSet:
    """Gather training frames from folders, CSVs (``path`` column), videos and named datasets.

    ``sun8``: only its fixed *train* split is used. ``orl``: only ORL_TRAIN_IDENTITIES.
    Video frames are sampled at ``video_fps`` and grouped in windows of ``clip_frames``.
    """
    out = FrameSet()
    for item in inputs:
        _add_input(out, Path(item), video_fps, clip_frames, max_side)
    if sun8 is not None:
        data = load_sun8(sun8, "train", max_side=max_side)
        for img in data.images:
            out.add_group([img])
        out.sources.append(f"sun8-train:{sun8} ({len(data)} images)")
    if orl is not None:
        data = load_orl(orl, ORL_TRAIN_IDENTITIES)
        for img in data.images:
            out.add_group([img])
        out.sources.append(
            f"orl:{orl} identities {ORL_TRAIN_IDENTITIES[0]}-{ORL_TRAIN_IDENTITIES[-1]} ({len(data)} images)"
        )
    if not out.frames:
        raise InputError("no training frames: give image folders, CSVs, videos, --sun8 or --orl")
    return out


def _shrink(img: np.ndarray, max_side: int) -> np.ndarray:
    s = max_side / max(img.shape[:2])
    if s >= 1:
        return img
    return cv2.resize(
        img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA
    )


def _add_input(out: FrameSet, path: Path, fps: float, clip_frames: int, max_side: int) -> None:
    if path.is_dir():
        files = list_images(path)
        for f in files:
            out.add_group([_shrink(load_image(f), max_side)])
        out.sources.append(f"folder:{path} ({len(files)} images)")
    elif path.suffix.lower() == ".csv":
        files = _read_csv_paths(path)
        for f in files:
            out.add_group([_shrink(load_image(f), max_side)])
        out.sources.append(f"csv:{path} ({len(files)} images)")
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        frames = [_shrink(f.image, max_side) for f in iter_video_frames(path, fps=fps)]
        for i in range(0, len(frames), clip_frames):
            out.add_group(frames[i : i + clip_frames])
        out.sources.append(f"video:{path} ({len(frames)} frames at {fps} fps)")
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        out.add_group([_shrink(load_image(path), max_side)])
        out.sources.append(f"image:{path}")
    else:
        raise InputError(f"{path}: not a folder, CSV, image or video file")


def random_view(img: np.ndarray, rng: np.random.Generator, min_scale: float = 0.45) -> np.ndarray:
    """A random square crop covering ``min_scale``..1 of the shorter side, randomly flipped."""
    h, w = img.shape[:2]
    side = int(min(h, w) * rng.uniform(min_scale, 1.0))
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    crop = img[top : top + side, left : left + side]
    return crop[:, ::-1] if rng.random() < 0.5 else crop


@dataclass
class ViewCache:
    """Cached training views: frozen student features, teacher targets and group ids."""

    features: torch.Tensor  # (V, C, h, w) output of the student's frozen blocks
    targets: torch.Tensor  # (V, teacher_dim) teacher embeddings of the same views
    groups: torch.Tensor  # (V,) group id of each view
    # Identity-invariance views (lifeveil.privatizer.invariance): kind 0 scene, 1 face,
    # 2 scene with a pasted face; partner = index of a composite's clean scene view, else -1.
    kinds: torch.Tensor | None = None
    partners: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.targets.shape[0])


@torch.inference_mode()
def student_pixels(crops: Sequence[np.ndarray], input_size: int) -> torch.Tensor:
    """Square uint8 crops (HxWx3) shrunk to the student's input: float (N, 3, S, S) in [0, 1]."""
    small = [cv2.resize(c, (input_size, input_size), interpolation=cv2.INTER_AREA) for c in crops]
    return torch.from_numpy(np.stack(small)).permute(0, 3, 1, 2).float().div(255.0)


def build_view_cache(
    frames: FrameSet,
    teacher: Teacher,
    student: StudentEncoder,
    input_size: int,
    views: int,
    seed: int,
    batch_size: int = 32,
    progress: bool = True,
) -> ViewCache:
    """Make ``views`` views per frame (view 0 = centre crop, others random), run the teacher and
    the student's frozen blocks on each. Deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    student.eval()
    feats, targets, groups = [], [], []
    jobs = [(i, v) for i in range(len(frames)) for v in range(views)]
    bar = tqdm(total=len(jobs), desc="teacher targets", unit="view", disable=not progress)
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start : start + batch_size]
        crops = [
            frames.frames[i] if v == 0 else random_view(frames.frames[i], rng) for i, v in batch
        ]
        crops = [resize_center_crop(np.ascontiguousarray(c), teacher.input_size) for c in crops]
        targets.append(teacher(to_float_batch(crops, teacher.input_size)))
        feats.append(student.frozen_features(student_pixels(crops, input_size)))
        groups.extend(frames.groups[i] for i, _ in batch)
        bar.update(len(batch))
    bar.close()
    return ViewCache(torch.cat(feats), torch.cat(targets), torch.tensor(groups))


def save_view_cache(cache: ViewCache, path: str | Path, key: dict[str, object]) -> None:
    """Store a view cache with the settings that made it (``key``), atomically."""
    import json

    from safetensors.torch import save_file

    from lifeveil.io import atomic_path, make_public

    tensors = {k: v.contiguous() for k, v in vars(cache).items() if v is not None}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"key": json.dumps(key, sort_keys=True)})
        make_public(tmp)  # safetensors writes the file 0600


def load_view_cache(path: str | Path, key: dict[str, object]) -> ViewCache | None:
    """The cache at ``path`` if it was made with exactly ``key``; otherwise None."""
    import json

    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        return None
    with safe_open(str(p), framework="pt") as fh:
        if (fh.metadata() or {}).get("key") != json.dumps(key, sort_keys=True):
            return None
        names = set(fh.keys())
        extra = {k: fh.get_tensor(k) for k in ("kinds", "partners") if k in names}
        return ViewCache(
            fh.get_tensor("features"), fh.get_tensor("targets"), fh.get_tensor("groups"), **extra
        )
