"""``raw-teacher``: the unprotected teacher embedding (the no-privacy reference)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from lifeveil.bench.methods.base import Method
from lifeveil.bench.methods.teacher import bench_teacher, embed_cached, teacher_cost


class RawTeacher(Method):
    """The teacher embedding of the frame, computed on the device and uploaded as is."""

    family = "raw-teacher"

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 1280) float32 teacher embeddings."""
        return embed_cached(images)

    def features_torch(self, pixels: torch.Tensor) -> torch.Tensor:
        """The teacher itself (exactly differentiable)."""
        return bench_teacher()(pixels)

    def device_cost(self) -> dict[str, float]:
        """The teacher runs on the device."""
        return teacher_cost()
