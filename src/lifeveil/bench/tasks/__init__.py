"""Utility tasks (DTP) measured on a method's released features, chosen by name.

A task is a :class:`~lifeveil.bench.contracts.Task`: ``(inputs: EvalInputs) -> Result``.
:func:`lifeveil.bench.evaluate.evaluate_method` runs every registered task, in registration
order; each module also keeps its pure metric functions (``scene_probe``, ...).

>>> from lifeveil.bench.tasks import list_tasks
>>> list_tasks()
['clip_agreement', 'scene_probe', 'scene_retrieval']
"""

from __future__ import annotations

from lifeveil.bench.contracts import Result, Task
from lifeveil.bench.tasks.clips import clip_agreement, measure_clip_agreement
from lifeveil.bench.tasks.scene import (
    measure_scene_probe,
    measure_scene_retrieval,
    scene_probe,
    scene_retrieval,
)
from lifeveil.registry import Registry

TASKS: Registry[Result] = Registry("task")


def register_task(name: str, task: Task, help: str = "") -> None:
    """Add ``task`` under ``name`` (duplicates refused); evaluate runs it after those before."""
    TASKS.register(name, task, help)


def get_task(name: str) -> Task:
    """The task called ``name``; UnknownNameError lists the tasks."""
    return TASKS.get(name)


def list_tasks() -> list[str]:
    """Names of the registered tasks, sorted."""
    return TASKS.names()


register_task("scene_probe", measure_scene_probe, "SUN8 scene accuracy: linear and k-NN probes")
register_task(
    "scene_retrieval", measure_scene_retrieval, "SUN8 scene retrieval mAP (test vs train)"
)
register_task(
    "clip_agreement", measure_clip_agreement, "clip halves retrieve their own clip (top-1)"
)

__all__ = [
    "TASKS",
    "clip_agreement",
    "get_task",
    "list_tasks",
    "register_task",
    "scene_probe",
    "scene_retrieval",
]
