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
    from lifeveil.teachers.mobilenet import MobileNetV2Teacher

    register_teacher("mobilenet_v2", MobileNetV2Teacher, "ImageNet MobileNetV2 (offline, default)")


_register_builtin()

__all__ = ["Preprocess", "Teacher", "create_teacher", "list_teachers", "register_teacher", "TEACHERS"]
