"""The SigLIP image-tower teacher (transformers ``SiglipVisionModel``)."""

from __future__ import annotations

import torch

from lifeveil.teachers.base import Preprocess
from lifeveil.teachers.hub.base import DEFAULT_SIGLIP, HALF, HubPreprocess, HubTeacher
from lifeveil.teachers.hub.hf import (
    hub_preprocess,
    import_transformers,
    load_transformers_model,
    transformers_dir,
    vision_config,
)


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
        transformers = import_transformers()
        folder = transformers_dir(model_id_or_path, allow_download, cache_dir)
        config = vision_config(folder, transformers.SiglipConfig, transformers.SiglipVisionConfig)
        net = load_transformers_model(transformers.SiglipVisionModel, folder, config)
        default = HubPreprocess(Preprocess(int(config.image_size), 1.0, HALF, HALF), squash=True)
        embed_dim = int(config.hidden_size)
        super().__init__("siglip", embed_dim, hub_preprocess(folder, default), model_id_or_path)
        self.net = net
        self.native_size = int(config.image_size)
        self.freeze()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        resized = x.shape[-1] != self.native_size
        return self.net(pixel_values=x, interpolate_pos_encoding=resized).pooler_output
