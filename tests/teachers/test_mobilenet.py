"""MobileNetV2 teacher: real ImageNet weights, frozen, deterministic 1280-d embeddings."""

from __future__ import annotations

import pytest

from lifeveil.teachers import create_teacher
from lifeveil.teachers.mobilenet import MobileNetV2Teacher

from .checks import (
    CAT_CLASSES,
    COFFEE_CLASSES,
    assert_differentiable_in_pixels,
    assert_embeds,
    assert_frozen,
    top1,
)


@pytest.fixture(scope="module")
def teacher() -> MobileNetV2Teacher:
    return create_teacher("mobilenet_v2")


def test_classifies_cat_and_coffee(teacher, skimage_images):
    cat, coffee = top1(teacher, skimage_images[:2])
    assert cat in CAT_CLASSES
    assert coffee in COFFEE_CLASSES


def test_is_frozen(teacher):
    assert_frozen(teacher)


def test_embeddings_are_1280d_and_deterministic(teacher, skimage_images):
    assert teacher.embed_dim == 1280
    assert_embeds(teacher, skimage_images)


def test_differentiable_in_pixels(teacher):
    assert_differentiable_in_pixels(teacher)
