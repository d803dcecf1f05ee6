"""Checks shared by the teacher tests (ImageNet classes, frozen-ness, determinism)."""

from __future__ import annotations

import numpy as np
import torch

from lifeveil.teachers import Teacher

CAT_CLASSES = frozenset(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = frozenset({967, 968, 504})  # espresso, cup, coffee mug


def top1(teacher: Teacher, images: list[np.ndarray]) -> list[int]:
    """ImageNet top-1 class of each image, through the teacher's own preprocessing."""
    with torch.no_grad():
        return teacher.logits(teacher.pixels(images)).argmax(dim=1).tolist()


def assert_frozen(teacher: Teacher) -> None:
    """No parameter wants gradients and ``train()`` leaves every module in eval mode."""
    assert all(not p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not any(m.training for m in teacher.modules())
    teacher.train(True)
    assert not any(m.training for m in teacher.modules())


def assert_embeds(teacher: Teacher, images: list[np.ndarray]) -> np.ndarray:
    """Embeddings are (N, embed_dim) float32, finite, and identical on a second call."""
    first = teacher.embed(images)
    assert first.shape == (len(images), teacher.embed_dim)
    assert first.dtype == np.float32
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, teacher.embed(images))
    return first


def assert_differentiable_in_pixels(teacher: Teacher, size: int = 64) -> None:
    """Gradients reach the input pixels (attacks optimise images through teachers)."""
    pixels = torch.rand(1, 3, size, size, requires_grad=True)
    teacher(pixels).sum().backward()
    assert pixels.grad is not None and torch.isfinite(pixels.grad).all()
    assert pixels.grad.abs().sum() > 0
