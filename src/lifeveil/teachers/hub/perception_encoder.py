"""The Perception Encoder (PE-Core) teacher: reading Meta's, timm's and open_clip's
checkpoints into :class:`~lifeveil.teachers.hub.pe_tower.PEVisionTower`.

PE-Core has no native image class in transformers 5.x: its ``pe_video``/``pe_audio_video``
and ``perception_lm`` models wrap the vision tower in ``TimmWrapperModel``, which needs timm
(and so torchvision); LifeVeil therefore builds the tower itself.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from lifeveil.errors import CheckpointError
from lifeveil.teachers.base import Preprocess
from lifeveil.teachers.hub.base import (
    DEFAULT_PERCEPTION_ENCODER,
    HALF,
    HubPreprocess,
    HubTeacher,
    read_json,
    resolve_model_dir,
    rgb_triple,
)
from lifeveil.teachers.hub.pe_tower import PE_HEADS_BY_WIDTH, PEVisionConfig, PEVisionTower

PE_WEIGHTS = ["*.json", "*.yaml", "*.safetensors", "*.pt", "*.pth"]
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
    pre = read_json(folder / "open_clip_config.json").get("preprocess_cfg", {})
    mean, std = rgb_triple(pre.get("mean"), HALF), rgb_triple(pre.get("std"), HALF)
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
