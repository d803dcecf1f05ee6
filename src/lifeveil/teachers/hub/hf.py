"""Loading ``transformers`` vision checkpoints for the DINOv2, CLIP and SigLIP teachers.

``transformers`` is imported inside the functions only (it belongs to the ``hub`` extra).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lifeveil.errors import CheckpointError, ModelUnavailableError
from lifeveil.teachers.hub.base import (
    HubPreprocess,
    preprocess_from_processor,
    read_json,
    resolve_model_dir,
)

TRANSFORMERS_LEGACY_WEIGHTS = ["*.json", "pytorch_model*.bin"]


def import_transformers() -> Any:
    """The ``transformers`` module, or ModelUnavailableError saying how to install it."""
    try:
        import transformers
    except ImportError:
        raise ModelUnavailableError(
            "this teacher needs transformers: run `pip install 'lifeveil[hub]'`"
        ) from None
    return transformers


@contextlib.contextmanager
def quiet_transformers(transformers: Any) -> Iterator[None]:
    """Silence load reports (a full CLIP checkpoint's text keys are expected extras)."""
    logging = transformers.utils.logging
    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def transformers_dir(model_id_or_path: str, allow_download: bool, cache_dir: str | None) -> Path:
    """Resolve a transformers checkpoint folder, preferring safetensors over legacy .bin."""
    folder = resolve_model_dir(model_id_or_path, allow_download=allow_download, cache_dir=cache_dir)
    if any(folder.glob("*.safetensors")) or any(folder.glob("*.bin")):
        return folder
    return resolve_model_dir(
        model_id_or_path,
        allow_download=allow_download,
        cache_dir=cache_dir,
        patterns=TRANSFORMERS_LEGACY_WEIGHTS,
    )


def vision_config(folder: Path, full_cls: Any, vision_cls: Any) -> Any:
    """The vision-tower config of a full (image+text) or a vision-only checkpoint.

    A full CLIP config keeps ``projection_dim`` at the top level; it is copied into the
    vision config so the projection loads with its real size.
    """
    model_type = read_json(folder / "config.json").get("model_type")
    if model_type != full_cls.model_type:
        return vision_cls.from_pretrained(folder, local_files_only=True)
    full = full_cls.from_pretrained(folder, local_files_only=True)
    vision = full.vision_config
    if hasattr(full, "projection_dim") and hasattr(vision, "projection_dim"):
        vision.projection_dim = full.projection_dim
    return vision


def load_transformers_model(model_cls: Any, folder: Path, config: Any = None) -> nn.Module:
    """``model_cls.from_pretrained(folder)`` in float32, eval, errors made readable."""
    transformers = import_transformers()
    kwargs: dict[str, Any] = {"local_files_only": True, "dtype": torch.float32}
    if config is not None:
        kwargs["config"] = config
    try:
        with quiet_transformers(transformers):
            model = model_cls.from_pretrained(folder, **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(
            f"{folder}: cannot load a {model_cls.__name__} checkpoint ({exc}); expected "
            "config.json plus model.safetensors as written by save_pretrained"
        ) from exc
    return model.eval()


def hub_preprocess(folder: Path, default: HubPreprocess) -> HubPreprocess:
    """Preprocessing from ``folder``'s preprocessor_config.json, else ``default``."""
    return preprocess_from_processor(read_json(folder / "preprocessor_config.json"), default)
