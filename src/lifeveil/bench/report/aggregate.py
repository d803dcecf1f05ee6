"""Job results -> per-method aggregates and the points the plots and verdicts use.

Metrics from ``evaluate_method`` are nested dicts; they are flattened to dotted keys
(``pl.identity_probe.linear_acc``) and averaged over seeds per method id. Which axis a key
belongs to comes from its top-level key (``dtp``, ``pl``, ``rr``) or, failing that, from its
name. The plots find their quantities by key patterns (:data:`PLOT_KEYS`), so they keep
working when the attack set grows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from lifeveil.bench.schema import (
    ACCUMULATION_LFW,
    ACCUMULATION_ORL,
    ARTIFACTS,
    CHANCE,
    HEADLINE,
    IDENTITY,
    IDENTITY_INF,
    LEDGER_LFW,
    LEDGER_ORL,
    TIMINGS,
    Axis,
    K,
    metric_key,
)

# First pattern that matches a flattened key wins; keys containing an excluded word are skipped.
PLOT_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "scene_acc": (
        (r"scene_probe\.linear_acc$", r"scene[^.]*\.linear_acc$", r"scene[^.]*acc$"),
        ("bystander",),
    ),
    "identity_acc": (
        (r"identity[^.]*\.linear_acc$", r"ident[^.]*\.linear_acc$", r"identity.*acc$"),
        ("accumulation", "bystander", "chance"),
    ),
    "reid_top1": (
        (r"re_?id[^.]*\.top1$", r"re_?id.*top1", r"top1$"),
        ("accumulation", "bystander", "chance"),
    ),
}


# Face sets of the accumulation attack: (name, flattened key prefix of its result).
ACCUMULATION_SETS: tuple[tuple[str, str], ...] = (
    ("ORL", metric_key(Axis.PL, ACCUMULATION_ORL)),
    ("LFW", metric_key(Axis.PL, ACCUMULATION_LFW)),
)
# The ledger's bound per face set, in the same order: (name, flattened key prefix).
LEDGER_SETS: tuple[tuple[str, str], ...] = (
    ("ORL", metric_key(Axis.PL, LEDGER_ORL)),
    ("LFW", metric_key(Axis.PL, LEDGER_LFW)),
)
HEADLINE_METRICS = tuple(f"headline_{name.lower()}" for name, _ in ACCUMULATION_SETS)


NON_METRIC_KEYS = (TIMINGS, ARTIFACTS)  # evaluate_method bookkeeping, not results


def flatten(metrics: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {dotted.key: leaf}. Lists stay leaves."""
    if not isinstance(metrics, dict):
        return {prefix: metrics} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        out.update(flatten(value, name) if isinstance(value, dict) else {name: value})
    return out


def is_number(v: Any) -> bool:
    """True for an int or float (not a bool)."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def _mean_std(values: list[Any]) -> tuple[Any, Any]:
    """Mean and std (ddof=0) of numbers, or elementwise of equal-length number lists."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    if all(is_number(v) for v in vals):
        arr = np.asarray(vals, dtype=float)
        return float(arr.mean()), float(arr.std())
    lists = all(isinstance(v, list) and v and all(is_number(x) for x in v) for v in vals)
    if lists and len({len(v) for v in vals}) == 1:
        arr = np.asarray(vals, dtype=float)
        return arr.mean(axis=0).tolist(), arr.std(axis=0).tolist()
    return vals[0], None


def metric_dict(job: dict[str, Any]) -> dict[str, Any]:
    """A job's metrics without bookkeeping entries (timings, artifact lists)."""
    return {k: v for k, v in job.get("metrics", {}).items() if k not in NON_METRIC_KEYS}


def aggregate(jobs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per method id: family, params, seeds, and mean/std of every metric and SE number."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        grouped.setdefault(job["method_id"], []).append(job)
    out: dict[str, dict[str, Any]] = {}
    for mid, runs in grouped.items():
        flat = [{**flatten(metric_dict(r)), **flatten(r.get("se", {}), "se")} for r in runs]
        keys = sorted({k for f in flat for k in f})
        mean, std = {}, {}
        for k in keys:
            mean[k], std[k] = _mean_std([f.get(k) for f in flat])
        first = runs[0]
        out[mid] = {
            "family": first["family"],
            "params": first.get("method", {}).get("params", {}),
            "method": first.get("method", {}),
            "seeds": sorted(r["seed"] for r in runs),
            "mean": mean,
            "std": std,
        }
    return out


def find_key(keys: Sequence[str], name: str) -> str | None:
    """The flattened key that holds plot quantity ``name`` (see :data:`PLOT_KEYS`)."""
    patterns, excluded = PLOT_KEYS[name]
    for pattern in patterns:
        for key in sorted(keys):
            if any(word in key for word in excluded):
                continue
            if re.search(pattern, key):
                return key
    return None


def axis_of(key: str) -> str:
    """DTP, PL, RR or SE for a flattened key."""
    head = key.split(".")[0].lower()
    if head in ("dtp", "pl", "rr", "se"):
        return head.upper()
    lowered = key.lower()
    if any(w in lowered for w in ("recon", "psnr", "ssim", "inversion", "lpips")):
        return "RR"
    if any(w in lowered for w in ("scene", "task", "clip_agreement", "utility", "retrieval")):
        return "DTP"
    return "PL"


def accumulation_curve(m: dict[str, Any], prefix: str) -> tuple[list[int], list[float], Any] | None:
    """(k values, identity per k, identity at k = inf) of one method's accumulation result.

    ``m`` is a method's aggregate (:func:`aggregate`), ``prefix`` a key of
    :data:`ACCUMULATION_SETS`; None when the result is absent.
    """
    ks, ident = m["mean"].get(metric_key(prefix, K)), m["mean"].get(metric_key(prefix, IDENTITY))
    if not (isinstance(ks, list) and isinstance(ident, list) and ks and len(ks) == len(ident)):
        return None
    return [int(round(k)) for k in ks], ident, m["mean"].get(metric_key(prefix, IDENTITY_INF))


def first_value(agg: dict[str, dict[str, Any]], key: str) -> Any:
    """The first method's mean of ``key`` that is not None (e.g. a chance level), else None."""
    return next((m["mean"][key] for m in agg.values() if m["mean"].get(key) is not None), None)


def plot_points(agg: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per method: scene accuracy (relative to raw-teacher), the headline identity under
    accumulation per face set (``headline_orl``, ``headline_lfw``), and the single-release
    identity accuracy and re-ID top-1 for reference."""
    keys = sorted({k for m in agg.values() for k in m["mean"]})
    k_scene, k_id, k_reid = (find_key(keys, n) for n in ("scene_acc", "identity_acc", "reid_top1"))
    raw = next((m for m in agg.values() if m["family"] == "raw-teacher"), None)
    raw_scene = raw["mean"].get(k_scene) if raw and k_scene else None
    points: dict[str, dict[str, float | None]] = {}
    for mid, m in agg.items():
        scene = m["mean"].get(k_scene) if k_scene else None
        rel = scene / raw_scene if is_number(scene) and is_number(raw_scene) and raw_scene else None
        points[mid] = {
            "scene_acc": scene,
            "scene_rel": rel,
            "identity_acc": m["mean"].get(k_id) if k_id else None,
            "reid_top1": m["mean"].get(k_reid) if k_reid else None,
            **{
                metric: m["mean"].get(metric_key(prefix, HEADLINE))
                for metric, (_, prefix) in zip(HEADLINE_METRICS, ACCUMULATION_SETS, strict=True)
            },
        }
    chance = None
    if k_id:
        chance_key = metric_key(k_id.rsplit(".", 1)[0], CHANCE)
        chance = next(
            (m["mean"].get(chance_key) for m in agg.values() if chance_key in m["mean"]), None
        )
    reid_chance = None
    if k_reid:
        chance_key = metric_key(k_reid.rsplit(".", 1)[0], CHANCE)
        reid_chance = next(
            (m["mean"].get(chance_key) for m in agg.values() if chance_key in m["mean"]), None
        )
    ks = next((k for _, p in ACCUMULATION_SETS if (k := first_value(agg, metric_key(p, K)))), None)
    return {
        "keys": {
            "scene_acc": k_scene,
            "identity_acc": k_id,
            "reid_top1": k_reid,
            **{
                metric: metric_key(prefix, HEADLINE)
                for metric, (_, prefix) in zip(HEADLINE_METRICS, ACCUMULATION_SETS, strict=True)
            },
        },
        "identity_chance": chance,
        "reid_chance": reid_chance,
        "headline_k": int(round(max(ks))) if isinstance(ks, list) and ks else None,
        "headline_chance": {
            metric: first_value(agg, metric_key(prefix, CHANCE))
            for metric, (_, prefix) in zip(HEADLINE_METRICS, ACCUMULATION_SETS, strict=True)
        },
        "relative_to_raw": raw_scene is not None,
        "points": points,
    }


def curve_family(mid: str, family: str, params: dict[str, Any]) -> str:
    """The curve a method belongs to in plots: its family (msr split by release mode)."""
    if family == "msr":
        return f"msr ({params.get('mode', 'mean')})"
    return family
