"""The names results are filed under: one module, versioned.

``results.json`` (written by :mod:`lifeveil.bench.report`) and every job's metrics use these
names. A job's metrics are grouped by axis (:class:`Axis`: ``dtp``, ``pl``, ``rr``), then by
result key (a task's or an attack's name, e.g. ``scene_probe``, ``accumulation_lfw``), then by
metric key (``linear_acc``, ``chance``, ...); the report flattens them to dotted keys such as
``pl.accumulation_lfw.headline``.

Renaming a key breaks every committed result, so don't: add a new key, and if a meaning
changes, bump :data:`RESULTS_VERSION` and teach the report to read the old version too.

>>> metric_key(Axis.PL, ACCUMULATION_LFW, HEADLINE)
'pl.accumulation_lfw.headline'
>>> to_jsonable({"a": (1, float("nan"))})
{'a': [1, None]}
"""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

RESULTS_FORMAT = "lifeveil-bench"  # results.json "format"
RESULTS_VERSION = 1  # results.json "version": the meaning of the keys below


class Axis(StrEnum):
    """The groups of a job's metrics: utility, privacy leakage, reconstruction risk."""

    DTP = "dtp"  # downstream task performance (utility tasks)
    PL = "pl"  # privacy leakage (attacks on the released features)
    RR = "rr"  # reconstruction risk (inversion attacks)


SE = "se"  # system efficiency: measured by the runner, filed beside the axes

# Result keys: one per task or attack result (the accumulation attack files one per face set).
SCENE_PROBE = "scene_probe"
SCENE_RETRIEVAL = "scene_retrieval"
CLIP_AGREEMENT = "clip_agreement"
IDENTITY_PROBE = "identity_probe"
REID = "reid"
BYSTANDER = "bystander"
MEMBERSHIP = "membership"
ACCUMULATION_ORL = "accumulation_orl"  # ORL s11-s40 victims
ACCUMULATION_LFW = "accumulation_lfw"  # LFW held-out identities
LEDGER_ORL = "ledger_orl"  # the ledger's bound on ORL victims, per accumulation k
LEDGER_LFW = "ledger_lfw"  # the same on LFW held-out identities
RECON_DECODER = "recon_decoder"
RECON_GENERATOR = "recon_generator"  # a timing only: training the attacker's generator
RECON_OPTIM = "recon_optim"
DETECTOR = "detector"  # face-region baselines: faces their detector found (the runner)

# Metric keys read by the report (tasks and attacks may add others).
LINEAR_ACC = "linear_acc"  # accuracy of a linear probe, in [0, 1]
MLP_ACC = "mlp_acc"  # accuracy of an MLP probe, in [0, 1]
TOP1 = "top1"  # top-1 accuracy of nearest-neighbour retrieval, in [0, 1]
CHANCE = "chance"  # the accuracy of guessing, next to every accuracy
K = "k"  # accumulation: numbers of releases averaged (list of ints)
IDENTITY = "identity"  # accumulation: best attacker per k (list)
IDENTITY_INF = "identity_inf"  # accumulation: best attacker on the noise-free encoding
HEADLINE = "headline"  # accumulation: identity at the largest k (the headline privacy number)
REID_TOP1 = "reid_top1"  # accumulation: 1-shot re-ID per k (list)
N_IDENTITIES = "n_identities"
FRESH_DRAWS = "fresh_draws"  # accumulation: independent releases per image
BITS_PER_FRAME = "bits_per_frame"  # ledger: bits charged per release (None: unbounded)
BOUND = "bound"  # ledger: which argument bounds the bits (fsq-code, vib-kl, ..., unbounded)
IDENTITY_BITS = "identity_bits"  # ledger: H(identity) = log2(people), bits
COMPOSED_BITS = "composed_bits"  # ledger: min(H(identity), k x bits per frame), per k (list)
FANO_CEILING = "fano_ceiling"  # ledger: most any attacker can identify, per k (list)
INF_SUFFIX = "_inf"  # accumulation: the same attacker on the noise-free encoding

# Bookkeeping entries of evaluate_method's result beside the axes (not metrics).
TIMINGS = "timings"
ARTIFACTS = "artifacts"


def metric_key(*parts: str) -> str:
    """The dotted key the report uses for a metric, e.g. ``pl.reid.top1``."""
    return ".".join(str(p) for p in parts)


def to_jsonable(obj: Any) -> Any:
    """NumPy scalars/arrays -> Python; NaN and inf -> None; Paths -> str; tuples -> lists."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, bytes):
        return None
    return obj
