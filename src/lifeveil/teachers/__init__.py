"""Frozen semantic teachers (x_semantic), chosen by name.

>>> from lifeveil.teachers import create_teacher, list_teachers
>>> "mobilenet_v2" in list_teachers()
True
"""

from __future__ import annotations

from lifeveil.registry import Registry
from lifeveil.teachers.base import Preprocess, Teacher

TEACHERS: Registry[Teacher] = Registry("teacher")
_CACHE: dict[tuple[str, tuple[tuple[str, object], ...]], Teacher] = {}


def register_teacher(name: str, factory: object, help: str = "") -> None:
    """Add a teacher factory under ``name`` (duplicates refused)."""
    TEACHERS.register(name, factory, help)  # type: ignore[arg-type]


def create_teacher(name: str = "mobilenet_v2", cache: bool = True, **kwargs: object) -> Teacher:
    """Build (or reuse) the frozen teacher called ``name``."""
    key = (name, tuple(sorted(kwargs.items())))
    if cache and key in _CACHE:
        return _CACHE[key]
    teacher = TEACHERS.create(name, **kwargs)
    if cache:
        _CACHE[key] = teacher
    return teacher


def list_teachers() -> list[str]:
    """Names of the registered teachers."""
    return TEACHERS.names()


def _register_builtin() -> None:
    from lifeveil.teachers import hub
    from lifeveil.teachers.efficientnet import EfficientNetLite0Teacher
    from lifeveil.teachers.mobilenet import MobileNetV2Teacher

    register_teacher("mobilenet_v2", MobileNetV2Teacher, "ImageNet MobileNetV2 (offline, default)")
    register_teacher(
        "efficientnet_lite0", EfficientNetLite0Teacher, "ImageNet EfficientNet-Lite0 (offline)"
    )
    register_teacher(
        "dinov2",
        hub.Dinov2Teacher,
        "DINOv2 CLS (or pooling='cls+mean') embedding; model_id_or_path= hub id or folder "
        f"(default {hub.DEFAULT_DINOV2})",
    )
    register_teacher(
        "clip",
        hub.ClipTeacher,
        f"CLIP image embedding; model_id_or_path= hub id or folder (default {hub.DEFAULT_CLIP})",
    )
    register_teacher(
        "siglip",
        hub.SiglipTeacher,
        "SigLIP pooled embedding; model_id_or_path= hub id or folder "
        f"(default {hub.DEFAULT_SIGLIP})",
    )
    register_teacher(
        "perception_encoder",
        hub.PerceptionEncoderTeacher,
        "Meta PE-Core image embedding, plain torch; model_id_or_path= hub id or folder "
        f"(default {hub.DEFAULT_PERCEPTION_ENCODER})",
    )


_register_builtin()

__all__ = [
    "Preprocess",
    "Teacher",
    "create_teacher",
    "list_teachers",
    "register_teacher",
    "TEACHERS",
]
