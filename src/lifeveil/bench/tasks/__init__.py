"""Utility tasks (DTP) measured on a method's released features, chosen by name.

>>> from lifeveil.bench.tasks import list_tasks
>>> list_tasks()
['clip_agreement', 'scene_probe', 'scene_retrieval']
"""

from __future__ import annotations

from collections.abc import Callable

from lifeveil.bench.tasks.clips import clip_agreement
from lifeveil.bench.tasks.scene import scene_probe, scene_retrieval
from lifeveil.registry import Registry

TaskFn = Callable[..., dict[str, float]]
TASKS: Registry[dict[str, float]] = Registry("task")


def register_task(name: str, fn: TaskFn, help: str = "") -> None:
    """Add a task function under ``name`` (duplicates refused)."""
    TASKS.register(name, fn, help)


def get_task(name: str) -> TaskFn:
    """The task function called ``name``; UnknownNameError lists the tasks."""
    return TASKS.get(name)


def list_tasks() -> list[str]:
    """Names of the registered tasks."""
    return TASKS.names()


register_task("scene_probe", scene_probe, "SUN8 scene accuracy: linear and k-NN probes")
register_task("scene_retrieval", scene_retrieval, "SUN8 scene retrieval mAP (test vs train)")
register_task("clip_agreement", clip_agreement, "clip halves retrieve their own clip (top-1)")

__all__ = [
    "TASKS",
    "clip_agreement",
    "get_task",
    "list_tasks",
    "register_task",
    "scene_probe",
    "scene_retrieval",
]
