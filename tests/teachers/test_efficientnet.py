"""EfficientNet-Lite0 teacher: real ImageNet weights, TF "SAME" padding, frozen."""

from __future__ import annotations

import pytest
import torch

from lifeveil.errors import CheckpointError
from lifeveil.teachers import create_teacher
from lifeveil.teachers.efficientnet import (
    EfficientNetLite0,
    EfficientNetLite0Teacher,
    load_imagenet_efficientnet_lite0,
    same_padding,
)

from .checks import (
    CAT_CLASSES,
    COFFEE_CLASSES,
    assert_differentiable_in_pixels,
    assert_embeds,
    assert_frozen,
    top1,
)


@pytest.fixture(scope="module")
def teacher() -> EfficientNetLite0Teacher:
    return create_teacher("efficientnet_lite0")


def test_classifies_cat_and_coffee(teacher, skimage_images):
    cat, coffee = top1(teacher, skimage_images[:2])
    assert cat in CAT_CLASSES
    assert coffee in COFFEE_CLASSES


def test_espresso_is_confident(teacher, skimage_images):
    """With the right normalisation and padding espresso wins by a wide margin (~0.95)."""
    with torch.no_grad():
        probs = teacher.logits(teacher.pixels(skimage_images[1:2])).softmax(dim=1)
    assert probs[0, 967] > 0.8


def test_is_frozen(teacher):
    assert_frozen(teacher)


def test_embeddings_are_1280d_and_deterministic(teacher, skimage_images):
    assert teacher.embed_dim == 1280
    assert_embeds(teacher, skimage_images)


def test_differentiable_in_pixels(teacher):
    assert_differentiable_in_pixels(teacher)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (224, 3, 2, (0, 1)),
        (112, 3, 1, (1, 1)),
        (56, 5, 2, (1, 2)),
        (14, 5, 1, (2, 2)),
        (7, 1, 1, (0, 0)),
    ],
)
def test_same_padding_matches_tensorflow(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def test_architecture_matches_lite0_shapes():
    net = EfficientNetLite0()
    assert len(net._blocks) == 16
    assert sum(p.numel() for p in net.parameters()) == 4_652_008  # published 4.65M
    assert net.pooled(torch.zeros(1, 3, 224, 224)).shape == (1, 1280)


def test_foreign_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "not_lite0.pth"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not_lite0.pth"):
        load_imagenet_efficientnet_lite0(path)
