"""The CLIP image-tower teacher (transformers ``CLIPVisionModelWithProjection``)."""

from __future__ import annotations

import torch

from lifeveil.teachers.base import Preprocess
from lifeveil.teachers.hub.base import DEFAULT_CLIP, HubPreprocess, HubTeacher
from lifeveil.teachers.hub.hf import (
    hub_preprocess,
    import_transformers,
    load_transformers_model,
    transformers_dir,
    vision_config,
)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


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
        transformers = import_transformers()
        folder = transformers_dir(model_id_or_path, allow_download, cache_dir)
        config = vision_config(folder, transformers.CLIPConfig, transformers.CLIPVisionConfig)
        net = load_transformers_model(transformers.CLIPVisionModelWithProjection, folder, config)
        default = HubPreprocess(Preprocess(int(config.image_size), 1.0, CLIP_MEAN, CLIP_STD))
        embed_dim = int(config.projection_dim)
        super().__init__("clip", embed_dim, hub_preprocess(folder, default), model_id_or_path)
        self.net = net
        self.native_size = int(config.image_size)
        self.freeze()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        resized = x.shape[-1] != self.native_size
        return self.net(pixel_values=x, interpolate_pos_encoding=resized).image_embeds
