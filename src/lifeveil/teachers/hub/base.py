"""What the hub teachers share: finding a model's files (a local folder, or the Hugging Face
cache, downloading only when allowed), reading preprocessing from the model's own
configuration, and :class:`HubTeacher`, the base of every hub teacher.

``huggingface_hub`` is imported only inside :func:`resolve_model_dir`, so importing this
module stays light.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import cv2
import numpy as np
import torch

from lifeveil.errors import CheckpointError, InputError, ModelUnavailableError, ShapeError
from lifeveil.teachers.base import Preprocess, Teacher

DEFAULT_DINOV2 = "facebook/dinov2-small"
DEFAULT_CLIP = "openai/clip-vit-base-patch32"
DEFAULT_SIGLIP = "google/siglip-base-patch16-224"
DEFAULT_PERCEPTION_ENCODER = "facebook/PE-Core-B16-224"

HALF = (0.5, 0.5, 0.5)
HUB_PROBE_TIMEOUT_S = 3.0
TRANSFORMERS_WEIGHTS = ["*.json", "*.safetensors", "*.txt"]

# ---------------------------------------------------------------------------------------
# Finding the weights
# ---------------------------------------------------------------------------------------


def resolve_model_dir(
    model_id_or_path: str,
    *,
    allow_download: bool = False,
    cache_dir: str | None = None,
    patterns: Sequence[str] = tuple(TRANSFORMERS_WEIGHTS),
) -> Path:
    """Local folder holding ``model_id_or_path``'s files.

    An existing directory is returned unchanged. Otherwise the string is a hub id, looked up
    in the Hugging Face cache; with ``allow_download`` (and the hub reachable) the files
    matching ``patterns`` are fetched. Raises ModelUnavailableError saying how to get them.
    """
    path = Path(model_id_or_path).expanduser()
    if path.is_dir():
        return path
    if _looks_like_path(model_id_or_path):
        raise CheckpointError(
            f"{path}: no such model directory; pass an existing folder (a save_pretrained or "
            "`huggingface-cli download --local-dir` folder) or a hub id like "
            f"{DEFAULT_DINOV2!r}"
        )
    hub = _import_hub()
    why = _why_offline(allow_download)
    try:
        folder = hub.snapshot_download(
            model_id_or_path,
            cache_dir=cache_dir,
            local_files_only=why is not None,
            allow_patterns=list(patterns),
        )
    except hub.errors.HFValidationError as exc:
        raise InputError(f"{model_id_or_path!r} is neither a folder nor a hub id ({exc})") from None
    except (hub.errors.LocalEntryNotFoundError, hub.errors.HfHubHTTPError, OSError) as exc:
        reason = why or f"download failed: {type(exc).__name__}"
        raise ModelUnavailableError(_download_hint(model_id_or_path, cache_dir, reason)) from None
    return Path(folder)


def _looks_like_path(text: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else was meant as a local path."""
    return text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text


def _import_hub() -> Any:
    try:
        import huggingface_hub
        import huggingface_hub.errors  # noqa: F401 - makes .errors an attribute
    except ImportError:
        raise ModelUnavailableError(
            "hub teachers need huggingface_hub: run `pip install 'lifeveil[hub]'`"
        ) from None
    return huggingface_hub


def _why_offline(allow_download: bool) -> str | None:
    """Why the hub must not be contacted now, or None when downloading is allowed and works."""
    if not allow_download:
        return "downloads are off by default (allow_download=False)"
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return "HF_HUB_OFFLINE is set"
    if not _hub_reachable():
        return "the hub is unreachable from this machine"
    return None


def _hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """One TCP connect to the hub endpoint, so an offline machine fails in seconds."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout).close()
    except OSError:
        return False
    return True


def _download_hint(repo_id: str, cache_dir: str | None, reason: str) -> str:
    where = cache_dir or _import_hub().constants.HF_HUB_CACHE
    return (
        f"weights for {repo_id!r} are not in the Hugging Face cache {where} and {reason}. "
        f"On a machine with network run `hf download {repo_id} --local-dir DIR` (older "
        f"huggingface_hub: `huggingface-cli download {repo_id} --local-dir DIR`), copy DIR "
        "here and pass model_id_or_path=DIR; or set HF_HOME to a cache that holds the model; "
        "or pass allow_download=True where the hub is reachable"
    )


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or {} when the file does not exist."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable JSON ({exc})") from exc
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------------------------------
# Preprocessing from the model's own configuration
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubPreprocess:
    """A teacher's :class:`Preprocess` plus whether the frame is squashed (resized to a
    square ignoring aspect, as SigLIP and PE do) rather than centre-cropped."""

    spec: Preprocess
    squash: bool = False


def _side(value: object) -> int | None:
    """Pixel side from an HF ``size``/``crop_size`` entry (int or dict)."""
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        for key in ("shortest_edge", "height", "width"):
            if isinstance(value.get(key), int):
                return int(value[key])
    return None


def rgb_triple(value: object, default: tuple[float, float, float]) -> tuple[float, float, float]:
    """Three floats (a per-channel mean or std) from a JSON list, else ``default``."""
    if isinstance(value, list | tuple) and len(value) == 3:
        return (float(value[0]), float(value[1]), float(value[2]))
    return default


def preprocess_from_processor(config: dict[str, Any], default: HubPreprocess) -> HubPreprocess:
    """Read an HF ``preprocessor_config.json`` dict; missing entries keep ``default``.

    ``size`` + ``crop_size`` (DINOv2: resize 256, crop 224) become ``resize_ratio``;
    a ``size`` given as height/width without a centre crop (SigLIP) means squash.
    """
    base = default.spec
    mean = rgb_triple(config.get("image_mean"), base.mean)
    std = rgb_triple(config.get("image_std"), base.std)
    size_entry = config.get("size")
    resize = _side(size_entry)
    crop = _side(config.get("crop_size")) if config.get("do_center_crop", True) else None
    if crop:
        return HubPreprocess(Preprocess(crop, max(1.0, (resize or crop) / crop), mean, std))
    if resize:
        squash = not (isinstance(size_entry, dict) and "shortest_edge" in size_entry)
        return HubPreprocess(Preprocess(resize, 1.0, mean, std), squash)
    return HubPreprocess(replace(base, mean=mean, std=std), default.squash)


def squash_resize(img: np.ndarray, size: int) -> np.ndarray:
    """Resize a whole RGB uint8 frame to ``size`` x ``size``, ignoring its aspect ratio."""
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ShapeError(f"expected an RGB uint8 image (H, W, 3), got {img.dtype} {img.shape}")
    shrink = min(img.shape[:2]) > size
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(img, (size, size), interpolation=interp))


class HubTeacher(Teacher):
    """A frozen hub encoder: knows its source and whether it squashes frames."""

    def __init__(self, name: str, embed_dim: int, preprocess: HubPreprocess, source: str) -> None:
        super().__init__(embed_dim, preprocess.spec)
        self.name = name
        self.source = source
        self.squash = preprocess.squash

    def pixels(self, images: Sequence[np.ndarray] | np.ndarray) -> torch.Tensor:
        """RGB uint8 images -> pixel tensor (N, 3, S, S) in [0, 1], the teacher's view."""
        if not self.squash:
            return super().pixels(images)
        size = self.input_size
        batch = np.zeros((len(images), size, size, 3), np.uint8)
        for i, img in enumerate(images):
            batch[i] = squash_resize(img, size)
        return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, source={self.source!r}, embed_dim={self.embed_dim}"
