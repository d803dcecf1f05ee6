"""Loaders for the layouts LifeVeil uses.

Data-use policy (kept here so code and docs cannot drift):

* The default privatizer trains on the SUN8 *train* split and ORL identities
  ``ORL_TRAIN_IDENTITIES`` (s1-s10) only.
* Benchmarks evaluate scene utility on the SUN8 *test* split and attack ORL identities
  s11-s40 only, so no attack victim was ever seen in training.

The SUN8 split is fixed: per class, images are ordered by the SHA-1 of their relative path and
the first 60 % go to train. It depends only on file names, so it is the same on every machine.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lifeveil.errors import DatasetError
from lifeveil.ingest.images import IMAGE_SUFFIXES, load_image

ORL_TRAIN_IDENTITIES: tuple[str, ...] = tuple(f"s{i}" for i in range(1, 11))
SUN8_TRAIN_FRACTION = 0.6
# LFW identities in sorted-name order: the first 300 may be used for training (privatizers,
# attackers' auxiliary data); 301-423 are held out and only ever attacked.
LFW_TRAIN_IDENTITIES = 300
LFW_LAYOUT = "labels.csv (path,identity) and <Name>/<Name>_NNNN.jpg"


@dataclass
class LabelledImages:
    """Images with one string label each; ``paths`` are the source files."""

    images: list[np.ndarray]
    labels: np.ndarray
    paths: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: Sequence[int] | np.ndarray) -> LabelledImages:
        """The images at ``index`` (order kept)."""
        idx = [int(i) for i in index]
        paths = [self.paths[i] for i in idx] if self.paths else []
        return LabelledImages([self.images[i] for i in idx], self.labels[idx], paths)

    @property
    def classes(self) -> list[str]:
        """Sorted distinct labels."""
        return sorted(set(self.labels.tolist()))


@dataclass(frozen=True)
class ClipInfo:
    """One video clip and its activity label."""

    path: Path
    label: str
    fps: float
    frames: int


def _read_all(
    paths: list[Path], desc: str, max_side: int | None, progress: bool = True
) -> list[np.ndarray]:
    images = []
    bar = tqdm(paths, desc=desc, unit="img", leave=False, disable=not progress or len(paths) < 200)
    for p in bar:
        img = load_image(p)
        if max_side and max(img.shape[:2]) > max_side:
            import cv2

            s = max_side / max(img.shape[:2])
            img = cv2.resize(
                img,
                (round(img.shape[1] * s), round(img.shape[0] * s)),
                interpolation=cv2.INTER_AREA,
            )
        images.append(img)
    return images


def _read_labels_csv(csv_path: Path, label_column: str) -> list[dict[str, str]]:
    if not csv_path.is_file():
        raise DatasetError(
            f"{csv_path}: labels file missing (expected a CSV with columns path,{label_column})"
        )
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "path" not in rows[0] or label_column not in rows[0]:
        cols = ", ".join(rows[0]) if rows else "(empty)"
        raise DatasetError(f"{csv_path}: expected columns path,{label_column}; found {cols}")
    return rows


def load_image_folder(root: str | Path, max_side: int | None = None) -> LabelledImages:
    """Generic ``<label>/<image>`` folders: the sub-folder name is the label."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (expected <label>/<image> sub-folders)")
    paths = sorted(p for p in root.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DatasetError(f"{root}: no images in <label>/<image> layout")
    labels = np.array([p.parent.name for p in paths])
    return LabelledImages(_read_all(paths, root.name, max_side), labels, paths)


def load_csv_images(
    root: str | Path, label_column: str, csv_name: str = "labels.csv", max_side: int | None = None
) -> LabelledImages:
    """Images listed in ``root/labels.csv`` (column ``path`` relative to root, plus a label column)."""
    root = Path(root)
    rows = _read_labels_csv(root / csv_name, label_column)
    paths = [root / r["path"] for r in rows]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(
            f"{missing[0]}: listed in {root / csv_name} but missing ({len(missing)} missing)"
        )
    labels = np.array([r[label_column] for r in rows])
    return LabelledImages(_read_all(paths, root.name, max_side), labels, paths)


def load_orl(root: str | Path, identities: Sequence[str] | None = None) -> LabelledImages:
    """ORL / AT&T faces in ``sX/Y.pgm`` layout, optionally only some identities.

    Images are 112x92 grey, returned as RGB uint8; ordered by identity number then image number.
    """
    root = Path(root)
    dirs = sorted(
        (d for d in root.glob("s*") if d.is_dir() and d.name[1:].isdigit()),
        key=lambda d: int(d.name[1:]),
    )
    if not dirs:
        raise DatasetError(f"{root}: no ORL identity folders (expected sX/Y.pgm, e.g. s1/1.pgm)")
    wanted = set(identities) if identities is not None else None
    paths: list[Path] = []
    for d in dirs:
        if wanted is not None and d.name not in wanted:
            continue
        paths += sorted(d.glob("*.pgm"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)
    if not paths:
        raise DatasetError(f"{root}: no .pgm faces for identities {sorted(wanted or [])}")
    labels = np.array([p.parent.name for p in paths])
    return LabelledImages(_read_all(paths, "orl", None), labels, paths)


def lfw_identity_split(root: str | Path) -> dict[str, list[str]]:
    """The fixed LFW identity split: {'train': names 1-300, 'heldout': names 301-...} (sorted)."""
    rows = _read_labels_csv(Path(root) / "labels.csv", "identity")
    names = sorted({r["identity"] for r in rows})
    if len(names) <= LFW_TRAIN_IDENTITIES:
        raise DatasetError(
            f"{root}: {len(names)} LFW identities; the fixed split needs more than "
            f"{LFW_TRAIN_IDENTITIES} (expected {LFW_LAYOUT})"
        )
    return {"train": names[:LFW_TRAIN_IDENTITIES], "heldout": names[LFW_TRAIN_IDENTITIES:]}


def load_lfw(
    root: str | Path,
    split: str = "heldout",
    max_identities: int | None = None,
    max_side: int | None = 160,
    progress: bool = True,
) -> LabelledImages:
    """LFW faces of the fixed identity ``split`` ("train", "heldout" or "all").

    Identities are taken in sorted-name order (``max_identities`` keeps the first ones); images
    per identity in labels.csv order. ``max_side`` shrinks on load (teachers crop 224 px);
    ``progress`` shows a bar on stderr while the photos load.
    """
    root = Path(root)
    if split not in ("train", "heldout", "all"):
        raise DatasetError(f"unknown LFW split {split!r}; expected train, heldout or all")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (expected {LFW_LAYOUT})")
    rows = _read_labels_csv(root / "labels.csv", "identity")
    parts = lfw_identity_split(root)
    names = parts["train"] + parts["heldout"] if split == "all" else parts[split]
    names = names[:max_identities] if max_identities is not None else names
    order = {n: i for i, n in enumerate(names)}
    rows = sorted((r for r in rows if r["identity"] in order), key=lambda r: order[r["identity"]])
    paths = [root / r["path"] for r in rows]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(f"{missing[0]}: listed in {root / 'labels.csv'} but missing")
    labels = np.array([r["identity"] for r in rows])
    return LabelledImages(_read_all(paths, f"lfw-{split}", max_side, progress), labels, paths)


def _split_key(rel: str) -> str:
    return hashlib.sha1(rel.encode()).hexdigest()


def sun8_split(root: str | Path) -> dict[str, list[str]]:
    """The fixed SUN8 split: {'train': [...], 'test': [...]} of relative paths."""
    rows = _read_labels_csv(Path(root) / "labels.csv", "category")
    by_class: dict[str, list[str]] = {}
    for r in rows:
        by_class.setdefault(r["category"], []).append(r["path"])
    split: dict[str, list[str]] = {"train": [], "test": []}
    for cls in sorted(by_class):
        ordered = sorted(by_class[cls], key=_split_key)
        n_train = int(round(len(ordered) * SUN8_TRAIN_FRACTION))
        split["train"] += ordered[:n_train]
        split["test"] += ordered[n_train:]
    return split


def load_sun8(
    root: str | Path, split: str = "all", max_side: int | None = 256, label_column: str = "category"
) -> LabelledImages:
    """SUN8 scenes (``<class>/sun_*.jpg`` + labels.csv); ``split`` is train, test or all.

    ``max_side`` shrinks images on load (the teachers crop 224 px anyway) to save memory.
    """
    root = Path(root)
    if split not in ("train", "test", "all"):
        raise DatasetError(f"unknown SUN8 split {split!r}; expected train, test or all")
    rows = _read_labels_csv(root / "labels.csv", label_column)
    if split != "all":
        keep = set(sun8_split(root)[split])
        rows = [r for r in rows if r["path"] in keep]
    paths = [root / r["path"] for r in rows]
    labels = np.array([r[label_column] for r in rows])
    return LabelledImages(_read_all(paths, f"sun8-{split}", max_side), labels, paths)


def load_action_clips(root: str | Path) -> list[ClipInfo]:
    """The action clips listed in ``root/labels.csv`` (columns file, label, fps, frames_decoded)."""
    root = Path(root)
    csv_path = root / "labels.csv"
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: missing (expected columns file,label,fps,frames_decoded)")
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise DatasetError(f"{csv_path}: expected columns file,label,fps,frames_decoded")
    clips = []
    for r in rows:
        path = root / r["file"]
        if not path.is_file():
            raise DatasetError(f"{path}: listed in {csv_path} but missing")
        clips.append(
            ClipInfo(path, r["label"], float(r.get("fps") or 0), int(r.get("frames_decoded") or 0))
        )
    return clips
