"""The DINOv2 teacher (transformers ``Dinov2Model``)."""

from __future__ import annotations

import torch

from lifeveil.errors import InputError
from lifeveil.teachers.base import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from lifeveil.teachers.hub.base import DEFAULT_DINOV2, HubPreprocess, HubTeacher
from lifeveil.teachers.hub.hf import (
    hub_preprocess,
    import_transformers,
    load_transformers_model,
    transformers_dir,
)


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
        transformers = import_transformers()
        folder = transformers_dir(model_id_or_path, allow_download, cache_dir)
        net = load_transformers_model(transformers.Dinov2Model, folder)
        default = HubPreprocess(Preprocess(224, 256 / 224, IMAGENET_MEAN, IMAGENET_STD))
        hidden = int(net.config.hidden_size)
        embed_dim = hidden * (2 if pooling == "cls+mean" else 1)
        super().__init__("dinov2", embed_dim, hub_preprocess(folder, default), model_id_or_path)
        self.pooling = pooling
        self.net = net
        self.freeze()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.net(pixel_values=x).last_hidden_state  # (N, 1 + patches, hidden)
        cls = tokens[:, 0]
        if self.pooling == "cls":
            return cls
        return torch.cat([cls, tokens[:, 1:].mean(dim=1)], dim=1)
