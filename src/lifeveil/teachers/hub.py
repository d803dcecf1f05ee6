"""Foundation-model teachers that users bring from the Hugging Face hub or a local folder:
DINOv2, CLIP, SigLIP (through ``transformers``) and Meta's Perception Encoder (PE-Core).

PE-Core has no native image class in transformers 5.x: its ``pe_video``/``pe_audio_video``
and ``perception_lm`` models wrap the vision tower in ``TimmWrapperModel``, which needs
timm (and so torchvision). LifeVeil therefore implements the PE-Core vision tower in plain
torch below and loads Meta's own checkpoints as well as timm/open_clip re-exports.

Every factory takes ``model_id_or_path``: an existing local directory is used as is (a
``save_pretrained`` folder, a ``huggingface-cli download --local-dir`` folder); anything else
is a hub id looked up in the local Hugging Face cache (``$HF_HOME``, or ``cache_dir``).
Nothing is downloaded unless ``allow_download=True``; missing weights raise
:class:`~lifeveil.errors.ModelUnavailableError` at once with the command that fetches them,
instead of hanging on network timeouts.

Preprocessing is part of each teacher: size, mean and std come from the folder's
``preprocessor_config.json`` (or ``open_clip_config.json`` for PE) when present, else from
the defaults documented on each class. ``transformers`` and ``huggingface_hub`` are imported
only inside the factories, so ``import lifeveil`` stays light.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lifeveil.errors import CheckpointError, InputError, ModelUnavailableError, ShapeError
from lifeveil.teachers.base import IMAGENET_MEAN, IMAGENET_STD, Preprocess, Teacher

DEFAULT_DINOV2 = "facebook/dinov2-small"
DEFAULT_CLIP = "openai/clip-vit-base-patch32"
DEFAULT_SIGLIP = "google/siglip-base-patch16-224"
DEFAULT_PERCEPTION_ENCODER = "facebook/PE-Core-B16-224"

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)
HUB_PROBE_TIMEOUT_S = 3.0
TRANSFORMERS_WEIGHTS = ["*.json", "*.safetensors", "*.txt"]
TRANSFORMERS_LEGACY_WEIGHTS = ["*.json", "pytorch_model*.bin"]
PE_WEIGHTS = ["*.json", "*.yaml", "*.safetensors", "*.pt", "*.pth"]

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


def _read_json(path: Path) -> dict[str, Any]:
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


def _triple(value: object, default: tuple[float, float, float]) -> tuple[float, float, float]:
    if isinstance(value, list | tuple) and len(value) == 3:
        return (float(value[0]), float(value[1]), float(value[2]))
    return default


def preprocess_from_processor(config: dict[str, Any], default: HubPreprocess) -> HubPreprocess:
    """Read an HF ``preprocessor_config.json`` dict; missing entries keep ``default``.

    ``size`` + ``crop_size`` (DINOv2: resize 256, crop 224) become ``resize_ratio``;
    a ``size`` given as height/width without a centre crop (SigLIP) means squash.
    """
    base = default.spec
    mean = _triple(config.get("image_mean"), base.mean)
    std = _triple(config.get("image_std"), base.std)
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


# ---------------------------------------------------------------------------------------
# transformers encoders: DINOv2, CLIP, SigLIP
# ---------------------------------------------------------------------------------------


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ModelUnavailableError(
            "this teacher needs transformers: run `pip install 'lifeveil[hub]'`"
        ) from None
    return transformers


@contextlib.contextmanager
def _quiet_transformers(transformers: Any) -> Iterator[None]:
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


def _transformers_dir(model_id_or_path: str, allow_download: bool, cache_dir: str | None) -> Path:
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


def _vision_config(folder: Path, full_cls: Any, vision_cls: Any) -> Any:
    """The vision-tower config of a full (image+text) or a vision-only checkpoint.

    A full CLIP config keeps ``projection_dim`` at the top level; it is copied into the
    vision config so the projection loads with its real size.
    """
    model_type = _read_json(folder / "config.json").get("model_type")
    if model_type != full_cls.model_type:
        return vision_cls.from_pretrained(folder, local_files_only=True)
    full = full_cls.from_pretrained(folder, local_files_only=True)
    vision = full.vision_config
    if hasattr(full, "projection_dim") and hasattr(vision, "projection_dim"):
        vision.projection_dim = full.projection_dim
    return vision


def _load_transformers_model(model_cls: Any, folder: Path, config: Any = None) -> nn.Module:
    """``model_cls.from_pretrained(folder)`` in float32, eval, errors made readable."""
    transformers = _import_transformers()
    kwargs: dict[str, Any] = {"local_files_only": True, "dtype": torch.float32}
    if config is not None:
        kwargs["config"] = config
    try:
        with _quiet_transformers(transformers):
            model = model_cls.from_pretrained(folder, **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(
            f"{folder}: cannot load a {model_cls.__name__} checkpoint ({exc}); expected "
            "config.json plus model.safetensors as written by save_pretrained"
        ) from exc
    return model.eval()


def _hub_preprocess(folder: Path, default: HubPreprocess) -> HubPreprocess:
    return preprocess_from_processor(_read_json(folder / "preprocessor_config.json"), default)


class Dinov2Teacher(HubTeacher):
    """DINOv2 ViT (transformers ``Dinov2Model``) from the hub or a local folder.

    Embedding: ``pooling="cls"`` gives the final-layer-normed CLS token (hidden_size, 384
    for dinov2-small); ``pooling="cls+mean"`` concatenates it with the mean of the patch
    tokens (2 x hidden_size), the feature DINOv2's linear probes use. Preprocessing default
    (no preprocessor_config.json): resize 256, centre crop 224, ImageNet mean/std.
    """

    POOLINGS = ("cls", "cls+mean")

    def __init__(
        self,
        model_id_or_path: str = DEFAULT_DINOV2,
        *,
        pooling: str = "cls",
        allow_download: bool = False,
        cache_dir: str | None = None,
    ) -> None:
        if pooling not in self.POOLINGS:
            raise InputError(f"dinov2 pooling {pooling!r} unknown; choose one of {self.POOLINGS}")
        transformers = _import_transformers()
        folder = _transformers_dir(model_id_or_path, allow_download, cache_dir)
        net = _load_transformers_model(transformers.Dinov2Model, folder)
        default = HubPreprocess(Preprocess(224, 256 / 224, IMAGENET_MEAN, IMAGENET_STD))
        hidden = int(net.config.hidden_size)
        embed_dim = hidden * (2 if pooling == "cls+mean" else 1)
        super().__init__("dinov2", embed_dim, _hub_preprocess(folder, default), model_id_or_path)
        self.pooling = pooling
        self.net = net
        self.freeze()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.net(pixel_values=x).last_hidden_state  # (N, 1 + patches, hidden)
        cls = tokens[:, 0]
        if self.pooling == "cls":
            return cls
        return torch.cat([cls, tokens[:, 1:].mean(dim=1)], dim=1)


class ClipTeacher(HubTeacher):
    """CLIP image tower (transformers ``CLIPVisionModelWithProjection``).

    Embedding: the projected ``image_embeds`` (projection_dim, 512 for ViT-B/32), not
    L2-normalised. Loads full CLIP checkpoints (text tower ignored) and vision-only ones.
    Preprocessing default: side ``vision_config.image_size``, centre crop, OpenAI CLIP
    mean/std.
    """

    def __init__(
        self,
        model_id_or_path: str = DEFAULT_CLIP,
        *,
        allow_download: bool = False,
        cache_dir: str | None = None,
    ) -> None:
        transformers = _import_transformers()
        folder = _transformers_dir(model_id_or_path, allow_download, cache_dir)
        config = _vision_config(folder, transformers.CLIPConfig, transformers.CLIPVisionConfig)
        net = _load_transformers_model(transformers.CLIPVisionModelWithProjection, folder, config)
        default = HubPreprocess(Preprocess(int(config.image_size), 1.0, CLIP_MEAN, CLIP_STD))
        embed_dim = int(config.projection_dim)
        super().__init__("clip", embed_dim, _hub_preprocess(folder, default), model_id_or_path)
        self.net = net
        self.native_size = int(config.image_size)
        self.freeze()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        resized = x.shape[-1] != self.native_size
        return self.net(pixel_values=x, interpolate_pos_encoding=resized).image_embeds


class SiglipTeacher(HubTeacher):
    """SigLIP image tower (transformers ``SiglipVisionModel``).

    Embedding: ``pooler_output`` (hidden_size, 768 for base), the attention-pooled feature
    SigLIP's contrastive loss is computed on. Loads full or vision-only checkpoints.
    Preprocessing default: the whole frame squashed to ``image_size``, mean = std = 0.5.
    """

    def __init__(
        self,
        model_id_or_path: str = DEFAULT_SIGLIP,
        *,
        allow_download: bool = False,
        cache_dir: str | None = None,
    ) -> None:
        transformers = _import_transformers()
        folder = _transformers_dir(model_id_or_path, allow_download, cache_dir)
        config = _vision_config(folder, transformers.SiglipConfig, transformers.SiglipVisionConfig)
        net = _load_transformers_model(transformers.SiglipVisionModel, folder, config)
        default = HubPreprocess(Preprocess(int(config.image_size), 1.0, HALF, HALF), squash=True)
        embed_dim = int(config.hidden_size)
        super().__init__("siglip", embed_dim, _hub_preprocess(folder, default), model_id_or_path)
        self.net = net
        self.native_size = int(config.image_size)
        self.freeze()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        resized = x.shape[-1] != self.native_size
        return self.net(pixel_values=x, interpolate_pos_encoding=resized).pooler_output


# ---------------------------------------------------------------------------------------
# Perception Encoder (PE-Core) vision tower, plain torch
# ---------------------------------------------------------------------------------------
# Module names follow Meta's perception_models ``VisionTransformer`` so its checkpoints load
# unchanged; timm/open_clip checkpoints are renamed to this layout by ``pe_state_from_timm``.

PE_HEADS_BY_WIDTH = {192: 3, 384: 6, 768: 12, 1024: 16, 1536: 16}  # PE-Core T, S, B, L, G
PE_POOL_HEADS = 8
PE_ROPE_THETA = 10000.0
# Where PE weights may sit in a folder, in order of preference.
PE_WEIGHT_FILES = (
    "open_clip_model.safetensors",
    "model.safetensors",
    "*.safetensors",
    "*.pt",
    "*.pth",
    "open_clip_pytorch_model.bin",
    "pytorch_model.bin",
    "*.bin",
)


@dataclass(frozen=True)
class PEVisionConfig:
    """Shape of a PE vision tower (read off a checkpoint by :func:`infer_pe_config`).

    patch_size: pixels per patch side; width: token dimension; layers: transformer blocks;
    heads: attention heads; mlp_width: hidden units of each MLP; image_size: pretraining
    side in pixels (the absolute position grid is image_size / patch_size);
    output_dim: projection size (None = no projection); use_cls_token: a class token is
    prepended; layer_scale: blocks carry LayerScale gammas; attn_pool: attention pooling
    head (else the CLS token, or the token mean, is pooled).
    """

    patch_size: int
    width: int
    layers: int
    heads: int
    mlp_width: int
    image_size: int
    output_dim: int | None = None
    use_cls_token: bool = True
    layer_scale: bool = False
    attn_pool: bool = True


def rope_axis_frequencies(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """1-D rotary angles (len(positions), dim): each frequency repeated for its pair."""
    inv_freq = 1.0 / PE_ROPE_THETA ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim)
    return (positions.float()[:, None] * inv_freq[None, :]).repeat_interleave(2, dim=-1)


def rope_2d_frequencies(head_dim: int, grid_h: int, grid_w: int, cls_token: bool) -> torch.Tensor:
    """PE's 2-D RoPE angles, (cls + grid_h * grid_w, head_dim), tokens in row-major order.

    The first half of each head rotates with the column (x), the second with the row (y).
    With a class token, patch positions start at 1 and the class token (angle 0) is not
    rotated.
    """
    offset = 1 if cls_token else 0
    half = head_dim // 2
    fy = rope_axis_frequencies(torch.arange(grid_h) + offset, half)
    fx = rope_axis_frequencies(torch.arange(grid_w) + offset, half)
    grid = torch.cat(
        [fx[None, :, :].expand(grid_h, -1, -1), fy[:, None, :].expand(-1, grid_w, -1)], dim=-1
    ).reshape(grid_h * grid_w, head_dim)
    if cls_token:
        grid = torch.cat([torch.zeros(1, head_dim), grid], dim=0)
    return grid


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs of ``x`` (..., T, D) by ``angles`` (T, D)."""
    pairs = x.unflatten(-1, (-1, 2))
    rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
    angles = angles.to(x.dtype)
    return x * angles.cos() + rotated * angles.sin()


class PESelfAttention(nn.Module):
    """Multi-head self-attention with 2-D RoPE on queries and keys (fused in_proj)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(apply_rope(q, angles), apply_rope(k, angles), v)
        return self.out_proj(out.transpose(1, 2).flatten(2))


class LayerScale(nn.Module):
    """Per-channel residual scale ``gamma``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((width,), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


def pe_mlp(width: int, hidden: int) -> nn.Sequential:
    """Linear -> GELU -> Linear, named as Meta's ``c_fc`` / ``c_proj``."""
    return nn.Sequential(
        OrderedDict(
            [
                ("c_fc", nn.Linear(width, hidden)),
                ("gelu", nn.GELU()),
                ("c_proj", nn.Linear(hidden, width)),
            ]
        )
    )


class PEBlock(nn.Module):
    """Pre-norm transformer block: x + ls_1(attn(ln_1 x)), then x + ls_2(mlp(ln_2 x))."""

    def __init__(self, cfg: PEVisionConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.width)
        self.attn = PESelfAttention(cfg.width, cfg.heads)
        self.ls_1 = LayerScale(cfg.width) if cfg.layer_scale else nn.Identity()
        self.ln_2 = nn.LayerNorm(cfg.width)
        self.mlp = pe_mlp(cfg.width, cfg.mlp_width)
        self.ls_2 = LayerScale(cfg.width) if cfg.layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        x = x + self.ls_1(self.attn(self.ln_1(x), angles))
        return x + self.ls_2(self.mlp(self.ln_2(x)))


class PETransformer(nn.Module):
    """The stack of :class:`PEBlock` (``resblocks``)."""

    def __init__(self, cfg: PEVisionConfig) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(PEBlock(cfg) for _ in range(cfg.layers))

    def forward(self, x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, angles)
        return x


class PEAttentionPool(nn.Module):
    """One learned probe attends over all tokens, followed by a residual MLP."""

    def __init__(self, width: int, heads: int = PE_POOL_HEADS) -> None:
        super().__init__()
        self.probe = nn.Parameter(torch.randn(1, 1, width) * width**-0.5)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.layernorm = nn.LayerNorm(width)
        self.mlp = pe_mlp(width, 4 * width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probe = self.probe.expand(x.shape[0], -1, -1).to(x.dtype)
        pooled = self.attn(probe, x, x, need_weights=False)[0]
        return (pooled + self.mlp(self.layernorm(pooled)))[:, 0]


class PEVisionTower(nn.Module):
    """PE-Core vision encoder: patchify, +abs position, ln_pre, RoPE transformer, ln_post,
    attention pool, projection. Images (N, 3, H, W) normalised -> (N, output_dim)."""

    def __init__(self, cfg: PEVisionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        scale = cfg.width**-0.5
        grid = cfg.image_size // cfg.patch_size
        self.conv1 = nn.Conv2d(3, cfg.width, cfg.patch_size, cfg.patch_size, bias=False)
        if cfg.use_cls_token:
            self.class_embedding = nn.Parameter(torch.randn(cfg.width) * scale)
        tokens = grid * grid + int(cfg.use_cls_token)
        self.positional_embedding = nn.Parameter(torch.randn(tokens, cfg.width) * scale)
        self.ln_pre = nn.LayerNorm(cfg.width)
        self.transformer = PETransformer(cfg)
        self.ln_post = nn.LayerNorm(cfg.width)
        self.attn_pool = PEAttentionPool(cfg.width) if cfg.attn_pool else None
        if cfg.output_dim is not None:
            self.proj = nn.Parameter(torch.randn(cfg.width, cfg.output_dim) * scale)

    @property
    def embed_dim(self) -> int:
        """Size of the pooled (and projected) output."""
        return self.cfg.output_dim or self.cfg.width

    def position_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """Absolute position table for a grid_h x grid_w grid (bilinear if not pretrain)."""
        pos = self.positional_embedding
        grid = self.cfg.image_size // self.cfg.patch_size
        if (grid_h, grid_w) == (grid, grid):
            return pos
        n_cls = int(self.cfg.use_cls_token)
        table = pos[n_cls:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=(grid_h, grid_w), mode="bilinear", align_corners=False)
        return torch.cat([pos[:n_cls], table.permute(0, 2, 3, 1).flatten(0, 2)], dim=0)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Final-normed tokens (N, cls + patches, width)."""
        grid_h, grid_w = x.shape[-2] // self.cfg.patch_size, x.shape[-1] // self.cfg.patch_size
        x = self.conv1(x).flatten(2).transpose(1, 2)
        if self.cfg.use_cls_token:
            x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], dim=1)
        x = self.ln_pre(x + self.position_embedding(grid_h, grid_w))
        head_dim = self.cfg.width // self.cfg.heads
        angles = rope_2d_frequencies(head_dim, grid_h, grid_w, self.cfg.use_cls_token)
        return self.ln_post(self.transformer(x, angles.to(x.device)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens(x)
        if self.attn_pool is not None:
            pooled = self.attn_pool(tokens)
        else:
            pooled = tokens[:, 0] if self.cfg.use_cls_token else tokens.mean(dim=1)
        return pooled @ self.proj if self.cfg.output_dim is not None else pooled


# timm's Eva names -> Meta names; applied in order to each key of a timm-format state dict.
_TIMM_TO_META = (
    ("patch_embed.proj.", "conv1."),
    ("norm_pre.", "ln_pre."),
    ("blocks.", "transformer.resblocks."),
    (".norm1.", ".ln_1."),
    (".norm2.", ".ln_2."),
    (".gamma_1", ".ls_1.gamma"),
    (".gamma_2", ".ls_2.gamma"),
    (".attn.qkv.", ".attn.in_proj_"),
    (".attn.proj.", ".attn.out_proj."),
    (".mlp.fc1.", ".mlp.c_fc."),
    (".mlp.fc2.", ".mlp.c_proj."),
    ("attn_pool.latent", "attn_pool.probe"),
    ("attn_pool.proj.", "attn_pool.attn.out_proj."),
    ("attn_pool.norm.", "attn_pool.layernorm."),
)


def pe_state_from_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a timm/open_clip (Eva-layout) PE state dict to Meta's layout.

    The inverse of timm's ``_convert_pe``: cls_token/pos_embed lose their batch axes, the
    pooler's separate q and kv projections are fused into one in_proj, the final ``norm``
    becomes ``ln_post`` and the ``head`` linear becomes the ``proj`` matrix.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(("rope", "attn_pool.q.", "attn_pool.kv.")) or key == "head.bias":
            continue
        if key == "cls_token":
            out["class_embedding"] = value.reshape(-1)
        elif key == "pos_embed":
            out["positional_embedding"] = value.reshape(-1, value.shape[-1])
        elif key == "head.weight":
            out["proj"] = value.t()
        elif key.startswith("norm."):
            out["ln_post." + key[len("norm.") :]] = value
        else:
            for old, new in _TIMM_TO_META:
                key = key.replace(old, new)
            out[key] = value
    for part in ("weight", "bias"):
        if f"attn_pool.q.{part}" in state:
            fused = torch.cat([state[f"attn_pool.q.{part}"], state[f"attn_pool.kv.{part}"]])
            out[f"attn_pool.attn.in_proj_{part}"] = fused
    _check_zero_head_bias(state)
    return out


def _check_zero_head_bias(state: dict[str, torch.Tensor]) -> None:
    bias = state.get("head.bias")
    if bias is not None and bias.abs().max() > 0:
        raise CheckpointError(
            "PE checkpoint has a non-zero head.bias; PE-Core projects without bias, so this "
            "is not a PE-Core vision tower"
        )


def _strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def normalize_pe_state(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Meta-layout vision state dict from any PE checkpoint: Meta's ``.pt`` (whole CLIP,
    ``visual.`` prefix), timm ``model.safetensors`` or open_clip ``visual.trunk.`` files."""
    for wrapper in ("state_dict", "weights", "model"):
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    state = {k.removeprefix("module."): v for k, v in state.items() if torch.is_tensor(v)}
    for prefix in ("visual.trunk.", "visual."):
        if any(k.startswith(prefix) for k in state):
            state = _strip_prefix(state, prefix)
            break
    if "conv1.weight" in state:
        return {k: v for k, v in state.items() if not k.startswith("rope")}
    if "patch_embed.proj.weight" in state:
        return pe_state_from_timm(state)
    raise CheckpointError(
        "not a Perception Encoder checkpoint: found neither conv1.weight (Meta layout) nor "
        f"patch_embed.proj.weight (timm layout); first keys: {sorted(state)[:5]}"
    )


def infer_pe_config(state: dict[str, torch.Tensor], heads: int | None = None) -> PEVisionConfig:
    """Read a PE tower's shape off its Meta-layout state dict.

    Heads cannot be read from shapes: ``heads`` if given, else PE-Core's own choice for that
    width (:data:`PE_HEADS_BY_WIDTH`), else width / 64.
    """
    width, _, patch, _ = state["conv1.weight"].shape
    use_cls = "class_embedding" in state
    positions = state["positional_embedding"].shape[0] - int(use_cls)
    grid = math.isqrt(positions)
    if grid * grid != positions:
        raise CheckpointError(f"PE position table has {positions} patch entries, not a square")
    layers = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
    proj = state.get("proj")
    return PEVisionConfig(
        patch_size=int(patch),
        width=int(width),
        layers=layers,
        heads=heads or PE_HEADS_BY_WIDTH.get(int(width), max(1, int(width) // 64)),
        mlp_width=int(state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
        image_size=int(grid * patch),
        output_dim=None if proj is None else int(proj.shape[1]),
        use_cls_token=use_cls,
        layer_scale="transformer.resblocks.0.ls_1.gamma" in state,
        attn_pool="attn_pool.probe" in state,
    )


def find_pe_weights(folder: Path) -> Path:
    """The weights file in a PE folder (safetensors first, then Meta's .pt)."""
    for pattern in PE_WEIGHT_FILES:
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    raise CheckpointError(
        f"{folder}: no PE weights found; expected Meta's PE-Core-*.pt (from facebook/PE-Core-*) "
        "or a timm/open_clip model.safetensors / open_clip_model.safetensors"
    )


def read_state_dict(path: Path) -> dict[str, Any]:
    """Tensors of a safetensors or torch file (never unpickles arbitrary objects)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or a pickle with foreign objects
        raise CheckpointError(f"{path}: cannot read weights ({exc})") from exc


def load_pe_vision_tower(folder: Path, heads: int | None = None) -> PEVisionTower:
    """Build a :class:`PEVisionTower` from the PE checkpoint in ``folder``, in eval mode."""
    path = find_pe_weights(folder)
    state = normalize_pe_state(read_state_dict(path))
    try:
        tower = PEVisionTower(infer_pe_config(state, heads))
        tower.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a loadable PE-Core vision tower ({exc})") from exc
    return tower.eval()


def pe_preprocess(folder: Path, cfg: PEVisionConfig) -> HubPreprocess:
    """PE's input: squash to the pretraining size, mean = std = 0.5 (Meta's transform);
    an open_clip_config.json's preprocess_cfg (mean, std, resize_mode) overrides."""
    pre = _read_json(folder / "open_clip_config.json").get("preprocess_cfg", {})
    mean, std = _triple(pre.get("mean"), HALF), _triple(pre.get("std"), HALF)
    squash = pre.get("resize_mode", "squash") == "squash"
    return HubPreprocess(Preprocess(cfg.image_size, 1.0, mean, std), squash)


class PerceptionEncoderTeacher(HubTeacher):
    """Meta's Perception Encoder PE-Core vision tower, in plain torch (no timm/open_clip).

    ``model_id_or_path``: a Meta hub repo (``facebook/PE-Core-B16-224``, ``-L14-336``,
    ``-T16-384``, ``-S16-384``, ``-G14-448``; file ``PE-Core-*.pt``), a timm repo
    (``timm/vit_pe_core_base_patch16_224.fb``) or an open_clip repo, or a local folder with
    any of these files. Embedding: the attention-pooled, projected image embedding (1024 for
    B/L), not L2-normalised. ``heads`` overrides the head count for non-standard widths.
    """

    def __init__(
        self,
        model_id_or_path: str = DEFAULT_PERCEPTION_ENCODER,
        *,
        heads: int | None = None,
        allow_download: bool = False,
        cache_dir: str | None = None,
    ) -> None:
        folder = resolve_model_dir(
            model_id_or_path,
            allow_download=allow_download,
            cache_dir=cache_dir,
            patterns=PE_WEIGHTS,
        )
        tower = load_pe_vision_tower(folder, heads)
        preprocess = pe_preprocess(folder, tower.cfg)
        super().__init__("perception_encoder", tower.embed_dim, preprocess, model_id_or_path)
        self.net = tower
        self.freeze()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
