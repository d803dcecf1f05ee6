"""Foundation-model teachers that users bring from the Hugging Face hub or a local folder:
DINOv2, CLIP, SigLIP (through ``transformers``) and Meta's Perception Encoder (PE-Core, in
plain torch), one loader per module.

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

Modules: ``base`` (finding weights, preprocessing, :class:`HubTeacher`), ``hf`` (loading
transformers checkpoints), ``dinov2``, ``clip``, ``siglip``, ``pe_tower`` (the PE vision
tower) and ``perception_encoder`` (PE checkpoints and the teacher).
"""

from __future__ import annotations

from lifeveil.teachers.hub.base import (
    DEFAULT_CLIP,
    DEFAULT_DINOV2,
    DEFAULT_PERCEPTION_ENCODER,
    DEFAULT_SIGLIP,
    HALF,
    HUB_PROBE_TIMEOUT_S,
    TRANSFORMERS_WEIGHTS,
    HubPreprocess,
    HubTeacher,
    preprocess_from_processor,
    resolve_model_dir,
    squash_resize,
)
from lifeveil.teachers.hub.clip import CLIP_MEAN, CLIP_STD, ClipTeacher
from lifeveil.teachers.hub.dinov2 import Dinov2Teacher
from lifeveil.teachers.hub.hf import TRANSFORMERS_LEGACY_WEIGHTS
from lifeveil.teachers.hub.pe_tower import (
    PE_HEADS_BY_WIDTH,
    PE_POOL_HEADS,
    PE_ROPE_THETA,
    LayerScale,
    PEAttentionPool,
    PEBlock,
    PESelfAttention,
    PETransformer,
    PEVisionConfig,
    PEVisionTower,
    apply_rope,
    pe_mlp,
    rope_2d_frequencies,
    rope_axis_frequencies,
)
from lifeveil.teachers.hub.perception_encoder import (
    PE_WEIGHT_FILES,
    PE_WEIGHTS,
    PerceptionEncoderTeacher,
    find_pe_weights,
    infer_pe_config,
    load_pe_vision_tower,
    normalize_pe_state,
    pe_preprocess,
    pe_state_from_timm,
    read_state_dict,
)
from lifeveil.teachers.hub.siglip import SiglipTeacher

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "DEFAULT_CLIP",
    "DEFAULT_DINOV2",
    "DEFAULT_PERCEPTION_ENCODER",
    "DEFAULT_SIGLIP",
    "HALF",
    "HUB_PROBE_TIMEOUT_S",
    "PE_HEADS_BY_WIDTH",
    "PE_POOL_HEADS",
    "PE_ROPE_THETA",
    "PE_WEIGHTS",
    "PE_WEIGHT_FILES",
    "TRANSFORMERS_LEGACY_WEIGHTS",
    "TRANSFORMERS_WEIGHTS",
    "ClipTeacher",
    "Dinov2Teacher",
    "HubPreprocess",
    "HubTeacher",
    "LayerScale",
    "PEAttentionPool",
    "PEBlock",
    "PESelfAttention",
    "PETransformer",
    "PEVisionConfig",
    "PEVisionTower",
    "PerceptionEncoderTeacher",
    "SiglipTeacher",
    "apply_rope",
    "find_pe_weights",
    "infer_pe_config",
    "load_pe_vision_tower",
    "normalize_pe_state",
    "pe_mlp",
    "pe_preprocess",
    "pe_state_from_timm",
    "preprocess_from_processor",
    "read_state_dict",
    "resolve_model_dir",
    "rope_2d_frequencies",
    "rope_axis_frequencies",
    "squash_resize",
]
