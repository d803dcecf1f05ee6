"""Aggregate job results into results.json, summary.md and a self-contained report.html.

Metrics from ``evaluate_method`` are nested dicts; they are flattened to dotted keys
(``pl.identity.linear_acc``) and averaged over seeds per method id. Which axis a key belongs
to comes from its top-level key (``dtp``, ``pl``, ``rr``) or, failing that, from its name.
The plots find their quantities by key patterns (:data:`PLOT_KEYS`), so they keep working when
the attack set grows.

The headline privacy number is identity under accumulation at the largest k (256): the best
of a linear probe, an MLP probe and 1-shot re-ID on the mean of k releases of a person
(:mod:`lifeveil.bench.attacks.accumulation`), on ORL and on LFW. It leads the summary, is the
privacy axis of the trade-off plots and decides the matched-utility verdicts.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lifeveil.io import atomic_open, atomic_path, write_json

AXES = ("DTP", "PL", "RR", "SE")
AXIS_TITLES = {
    "DTP": "Downstream task performance (utility)",
    "PL": "Privacy leakage (attacks on the released features)",
    "RR": "Reconstruction risk",
    "SE": "System efficiency (on-device cost, bytes per frame on the wire)",
}
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
    ("ORL", "pl.accumulation_orl"),
    ("LFW", "pl.accumulation_lfw"),
)
HEADLINE_METRICS = tuple(f"headline_{name.lower()}" for name, _ in ACCUMULATION_SETS)
SIDE_KS = (1, 16)  # k columns shown beside the headline (the largest k) and inf
_SE_COLUMNS = (
    "params",
    "mflops",
    "latency_ms",
    "wire_bytes",
    "vector_bytes",
    "wire_frame_bytes",
    "jpeg_bytes",
    "h264_bytes",
    "upload",
)
_DATA_CREDITS = (
    "Data: SUN database scene photos (Xiao et al., SUN8 subset), AT&T Laboratories Cambridge "
    "ORL Database of Faces, Labeled Faces in the Wild (Huang et al.), action clips from HMDB51, "
    "UCF101, Kinetics and NTU RGB+D samples (see each dataset's PROVENANCE.md for terms)."
)


# ------------------------------------------------------------------------- aggregation


def flatten(metrics: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {dotted.key: leaf}. Lists stay leaves."""
    if not isinstance(metrics, dict):
        return {prefix: metrics} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        out.update(flatten(value, name) if isinstance(value, dict) else {name: value})
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _mean_std(values: list[Any]) -> tuple[Any, Any]:
    """Mean and std (ddof=0) of numbers, or elementwise of equal-length number lists."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    if all(_is_number(v) for v in vals):
        arr = np.asarray(vals, dtype=float)
        return float(arr.mean()), float(arr.std())
    lists = all(isinstance(v, list) and v and all(_is_number(x) for x in v) for v in vals)
    if lists and len({len(v) for v in vals}) == 1:
        arr = np.asarray(vals, dtype=float)
        return arr.mean(axis=0).tolist(), arr.std(axis=0).tolist()
    return vals[0], None


NON_METRIC_KEYS = ("timings", "artifacts")  # evaluate_method bookkeeping, not results


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
    ks, ident = m["mean"].get(f"{prefix}.k"), m["mean"].get(f"{prefix}.identity")
    if not (isinstance(ks, list) and isinstance(ident, list) and ks and len(ks) == len(ident)):
        return None
    return [int(round(k)) for k in ks], ident, m["mean"].get(f"{prefix}.identity_inf")


def _first(agg: dict[str, dict[str, Any]], key: str) -> Any:
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
        rel = (
            scene / raw_scene if _is_number(scene) and _is_number(raw_scene) and raw_scene else None
        )
        points[mid] = {
            "scene_acc": scene,
            "scene_rel": rel,
            "identity_acc": m["mean"].get(k_id) if k_id else None,
            "reid_top1": m["mean"].get(k_reid) if k_reid else None,
            **{
                metric: m["mean"].get(f"{prefix}.headline")
                for metric, (_, prefix) in zip(HEADLINE_METRICS, ACCUMULATION_SETS, strict=True)
            },
        }
    chance = None
    if k_id:
        chance_key = k_id.rsplit(".", 1)[0] + ".chance"
        chance = next(
            (m["mean"].get(chance_key) for m in agg.values() if chance_key in m["mean"]), None
        )
    reid_chance = None
    if k_reid:
        chance_key = k_reid.rsplit(".", 1)[0] + ".chance"
        reid_chance = next(
            (m["mean"].get(chance_key) for m in agg.values() if chance_key in m["mean"]), None
        )
    ks = next((k for _, p in ACCUMULATION_SETS if (k := _first(agg, f"{p}.k"))), None)
    return {
        "keys": {
            "scene_acc": k_scene,
            "identity_acc": k_id,
            "reid_top1": k_reid,
            **{
                metric: f"{prefix}.headline"
                for metric, (_, prefix) in zip(HEADLINE_METRICS, ACCUMULATION_SETS, strict=True)
            },
        },
        "identity_chance": chance,
        "reid_chance": reid_chance,
        "headline_k": int(round(max(ks))) if isinstance(ks, list) and ks else None,
        "headline_chance": {
            metric: _first(agg, f"{prefix}.chance")
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


# --------------------------------------------------------------------- matched utility


MATCH_TOLERANCE = 0.10  # largest relative-scene-accuracy gap still called "matched utility"


def matched_utility(agg: dict[str, dict[str, Any]], pp: dict[str, Any]) -> list[dict[str, Any]]:
    """For each msr setting and each baseline family, the baseline setting closest in utility.

    Utility = scene accuracy relative to raw-teacher. Each row says who leaks less at that
    matched utility by the headline numbers (identity under accumulation at the largest k, on
    ORL and on LFW; lower is better).
    """
    pts = pp["points"]
    rows = []
    msr_ids = [mid for mid, m in agg.items() if m["family"] == "msr"]
    families = sorted({m["family"] for m in agg.values()} - {"msr", "raw-teacher"})
    for mid in msr_ids:
        mine = pts[mid]
        if mine["scene_rel"] is None:
            continue
        for fam in families:
            cands = [
                c for c, m in agg.items() if m["family"] == fam and pts[c]["scene_rel"] is not None
            ]
            if not cands:
                continue
            best = min(cands, key=lambda c: abs(pts[c]["scene_rel"] - mine["scene_rel"]))
            gap = pts[best]["scene_rel"] - mine["scene_rel"]
            row = {
                "msr": mid,
                "baseline": best,
                "msr_scene_rel": mine["scene_rel"],
                "baseline_scene_rel": pts[best]["scene_rel"],
                "utility_gap": gap,
                "matched": abs(gap) <= MATCH_TOLERANCE,
            }
            for metric in HEADLINE_METRICS:
                a, b = mine[metric], pts[best][metric]
                row[f"msr_{metric}"], row[f"baseline_{metric}"] = a, b
                row[f"{metric}_winner"] = _winner(a, b)
            rows.append(row)
    return rows


def _winner(msr: Any, baseline: Any, tol: float = 0.01) -> str | None:
    if not (_is_number(msr) and _is_number(baseline)):
        return None
    if abs(msr - baseline) <= tol:
        return "tie"
    return "msr" if msr < baseline else "baseline"


def _headline_label(metric: str) -> str:
    """``headline_lfw`` -> ``LFW identity under accumulation``."""
    return f"{metric.removeprefix('headline_').upper()} identity under accumulation"


def matched_sentences(rows: list[dict[str, Any]]) -> list[str]:
    """Plain-language lines for the summary: a verdict per matched pair, then the unmatched."""
    matched = [r for r in rows if r["matched"]]
    lines = []
    if rows:
        counts = []
        for metric in HEADLINE_METRICS:
            wins = sum(r.get(f"{metric}_winner") == "msr" for r in matched)
            losses = sum(r.get(f"{metric}_winner") == "baseline" for r in matched)
            counts.append(
                f"by {_headline_label(metric)}, msr leaks less in {wins}, the baseline in "
                f"{losses}, and {len(matched) - wins - losses} are ties (within 0.01) or lack it"
            )
        lines.append(
            f"Each msr setting is paired with the setting of every baseline family closest in scene "
            f"accuracy relative to raw-teacher; a pair counts as matched when the gap is at most "
            f"{MATCH_TOLERANCE:.2f}. Verdicts use the headline privacy number (identity at the "
            f"largest k averaged releases). Of {len(matched)} matched pairs: "
            + "; ".join(counts)
            + "."
        )
    for r in matched:
        parts = []
        for metric in HEADLINE_METRICS:
            label = _headline_label(metric)
            a, b, w = r[f"msr_{metric}"], r[f"baseline_{metric}"], r[f"{metric}_winner"]
            if w is None:
                continue
            verdict = {
                "msr": "msr leaks less",
                "baseline": "the baseline leaks less",
                "tie": "a tie",
            }[w]
            parts.append(f"{label} {_fmt(a)} vs {_fmt(b)} ({verdict})")
        if parts:
            lines.append(
                f"- `{r['msr']}` (relative scene accuracy {_fmt(r['msr_scene_rel'])}) vs "
                f"`{r['baseline']}` ({_fmt(r['baseline_scene_rel'])}): " + "; ".join(parts) + "."
            )
    unmatched = [r for r in rows if not r["matched"]]
    if unmatched:
        pairs = ", ".join(
            f"`{r['msr']}`/`{r['baseline']}` ({r['utility_gap']:+.2f})" for r in unmatched
        )
        lines.append(
            f"- No baseline setting within {MATCH_TOLERANCE:.2f} of utility (gap): {pairs}."
        )
    return lines


# ------------------------------------------------------------------------------ figures


def _figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def privacy_utility_plot(
    agg: dict[str, dict[str, Any]],
    pp: dict[str, Any],
    x_metric: str,
    chance: float | None,
    xlabel: str,
) -> bytes | None:
    """One curve per family across its parameter: x = leakage, y = (relative) scene accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_metric = "scene_rel" if pp["relative_to_raw"] else "scene_acc"
    curves: dict[str, list[tuple[float, float, str]]] = {}
    for mid, m in agg.items():
        p = pp["points"][mid]
        if _is_number(p[x_metric]) and _is_number(p[y_metric]):
            label = curve_family(mid, m["family"], m["params"])
            curves.setdefault(label, []).append((p[x_metric], p[y_metric], _point_label(m)))
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    for label, pts in sorted(curves.items()):
        pts.sort()
        xs, ys = [q[0] for q in pts], [q[1] for q in pts]
        marker = "*" if label == "raw-teacher" else "o"
        size = 14 if label == "raw-teacher" else 6
        ax.plot(xs, ys, marker=marker, markersize=size, label=label, linewidth=1.5)
        for x, y, name in pts:
            ax.annotate(
                name, (x, y), fontsize=6, alpha=0.7, xytext=(3, 3), textcoords="offset points"
            )
    if _is_number(chance):
        ax.axvline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xlabel(xlabel + " (lower = more private)")
    ax.set_ylabel(
        "scene accuracy relative to raw-teacher" if y_metric == "scene_rel" else "scene accuracy"
    )
    ax.set_title("Privacy-utility trade-off")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _figure_png(fig)


def accumulation_plot(agg: dict[str, dict[str, Any]]) -> bytes | None:
    """Identity under accumulation against k (log axis), one line per method, per face set.

    k = inf (the noise-free encoding) sits right of the largest k, joined by a dotted segment;
    chance is the dashed grey line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {
        name: {mid: c for mid, m in agg.items() if (c := accumulation_curve(m, prefix))}
        for name, prefix in ACCUMULATION_SETS
    }
    shown = [name for name in curves if curves[name]]
    if not shown:
        return None
    fig, axes = plt.subplots(1, len(shown), figsize=(6.5 * len(shown), 5.0), squeeze=False)
    prefixes = dict(ACCUMULATION_SETS)
    for ax, name in zip(axes[0], shown, strict=True):
        ks_all: set[int] = set()
        for i, (mid, (ks, ident, inf)) in enumerate(sorted(curves[name].items())):
            colour = f"C{i % 10}"
            ax.plot(ks, ident, marker="o", color=colour, label=_short(mid), linewidth=1.2)
            if _is_number(inf):
                inf_x = 4 * max(ks)
                ax.plot([ks[-1], inf_x], [ident[-1], inf], ":", color=colour, linewidth=1.0)
                ax.plot([inf_x], [inf], marker="s", color=colour)
            ks_all.update(ks)
        ticks = sorted(ks_all)
        ax.set_xscale("log", base=2)
        ax.set_xticks([*ticks, 4 * ticks[-1]], [*(str(k) for k in ticks), "inf"])
        chance = _first(agg, f"{prefixes[name]}.chance")
        if _is_number(chance):
            ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("releases of a person averaged by the attacker (k)")
        ax.set_ylabel("identity (best of linear, MLP probe and 1-shot re-ID)")
        ax.set_title(f"Accumulation attack on {name}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    return _figure_png(fig)


def _point_label(m: dict[str, Any]) -> str:
    """The setting's parameters without the family (the curve says the family)."""
    params = {k: v for k, v in m["params"].items() if k not in ("path", "mode")}
    if m["family"] == "msr":
        params = {"ckpt": params.get("ckpt", "default")}
    return ",".join(f"{k}={v}" for k, v in sorted(params.items()))


def _short(mid: str) -> str:
    return mid.replace("msr[ckpt=", "msr[").replace(",mode=", ",")


# ------------------------------------------------------------------------------ tables


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10000 else str(v)
    if isinstance(v, float):
        if v.is_integer() and abs(v) >= 100:
            return _fmt(int(v))
        if abs(v) >= 1e5:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:.1f}"
        return f"{v:.3f}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v[:8]) + (", …" if len(v) > 8 else "") + "]"
    return str(v)


def _cell(mean: Any, std: Any, n_seeds: int, key: str = "") -> str:
    if _is_number(mean) and key.endswith(("params", "bytes")):
        return f"{mean:,.0f}"  # counts of parameters and bytes: whole numbers
    if n_seeds > 1 and _is_number(std) and _is_number(mean):
        return f"{_fmt(mean)} ± {_fmt(std)}"
    return _fmt(mean)


@dataclass
class AxisTable:
    """One axis's table: a header, one row per method id, and the columns equal for all methods."""

    header: list[str]
    rows: list[list[str]]
    constant: list[tuple[str, str]]  # (column, value) shown once below the table


def axis_tables(agg: dict[str, dict[str, Any]]) -> dict[str, AxisTable]:
    """Per axis, the table of every metric, one row per method id.

    Columns with one value for every method (chance levels, counts, fixed budgets) are listed
    once below the table instead (when there are two or more methods).
    """
    keys = sorted({k for m in agg.values() for k in m["mean"]})
    tables: dict[str, AxisTable] = {}
    for axis in AXES:
        if axis == "SE":
            cols = [
                f"se.{c}" for c in _SE_COLUMNS if any(f"se.{c}" in m["mean"] for m in agg.values())
            ]
        else:  # accumulation results have their own tables (headline_tables)
            cols = [
                k
                for k in keys
                if axis_of(k) == axis
                and not k.startswith("se.")
                and not k.startswith(tuple(prefix for _, prefix in ACCUMULATION_SETS))
            ]
        cells = {
            c: [_cell(m["mean"].get(c), m["std"].get(c), len(m["seeds"]), c) for m in agg.values()]
            for c in cols
        }
        constant = [c for c in cols if axis != "SE" and len(agg) > 1 and len(set(cells[c])) == 1]
        shown = [c for c in cols if c not in constant]
        rows = [[mid] + [cells[c][i] for c in shown] for i, mid in enumerate(agg)]
        tables[axis] = AxisTable(
            ["method"] + [_column_label(c, axis) for c in shown],
            rows,
            [(_column_label(c, axis), cells[c][0]) for c in constant],
        )
    return tables


def headline_tables(agg: dict[str, dict[str, Any]], pp: dict[str, Any]) -> list[AxisTable]:
    """The headline table (identity under accumulation at k = 1, 16, the largest k and inf per
    face set, beside relative scene accuracy) and the per-attacker detail table."""
    present = [(n, p) for n, p in ACCUMULATION_SETS if _first(agg, f"{p}.k") is not None]
    if not present:
        return []
    header, details_header = ["method", "scene (rel. to raw)"], ["method", "fresh draws"]
    rows: list[list[str]] = [[mid, _fmt(pp["points"][mid]["scene_rel"])] for mid in agg]
    details: list[list[str]] = [[mid] for mid in agg]
    for i, m in enumerate(agg.values()):
        fresh = next(
            (f for _, p in present if _is_number(f := m["mean"].get(f"{p}.fresh_draws"))), None
        )
        details[i].append(_fmt(None if fresh is None else round(fresh)))
    constant = []
    for name, prefix in present:
        ks = [int(round(k)) for k in _first(agg, f"{prefix}.k")]
        side = [k for k in SIDE_KS if k in ks and k != ks[-1]]
        header += [f"{name} k={k}" for k in side] + [f"{name} k={ks[-1]} (headline)", f"{name} inf"]
        details_header += [f"{name} {a}" for a in ("linear", "MLP", "1-shot re-ID")]
        for i, m in enumerate(agg.values()):
            curve = accumulation_curve(m, prefix)
            if curve is None:
                rows[i] += ["–"] * (len(side) + 2)
                details[i] += ["–"] * 3
                continue
            got = dict(zip(curve[0], curve[1], strict=True))
            rows[i] += [_fmt(got.get(k)) for k in side] + [_fmt(curve[1][-1]), _fmt(curve[2])]
            for attacker in ("linear_acc", "mlp_acc", "reid_top1"):
                per_k = m["mean"].get(f"{prefix}.{attacker}")
                inf = m["mean"].get(f"{prefix}.{attacker}_inf")
                values = " / ".join(_fmt(v) for v in per_k) if isinstance(per_k, list) else "–"
                details[i].append(f"{values}; inf {_fmt(inf)}")
        n_ids = _first(agg, f"{prefix}.n_identities")
        people = f" ({int(n_ids)} people)" if _is_number(n_ids) else ""
        constant.append((f"{name} chance", _fmt(_first(agg, f"{prefix}.chance")) + people))
        constant.append((f"{name} k", ", ".join(str(k) for k in ks)))
    return [AxisTable(header, rows, constant), AxisTable(details_header, details, [])]


HEADLINE_TEXT = (
    "Identity under accumulation: the attacker owns the public model and averages k releases "
    "of a person (k = inf: the noise-free encoding of each image); the number is the best of "
    "a linear probe and an MLP probe trained on k-averaged releases and 1-shot re-ID against "
    "one enrolment photo. The largest k is the headline privacy number (lower = more private)."
)


def _column_label(key: str, axis: str) -> str:
    head = key.split(".")[0].lower()
    return ".".join(key.split(".")[1:]) if head == axis.lower() else key


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    esc = [[c.replace("|", "\\|") for c in r] for r in [header, *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(lines)


def html_table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table (cells escaped)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ------------------------------------------------------------------------------ writing


def job_images(out: Path, jobs: Sequence[dict[str, Any]]) -> list[tuple[str, Path]]:
    """(caption, path) of the PNGs each job wrote into its folder (first seed of each method)."""
    seen: set[str] = set()
    images = []
    for job in sorted(jobs, key=lambda j: (j["method_id"], j["seed"])):
        if job["method_id"] in seen:
            continue
        seen.add(job["method_id"])
        folder = out / "jobs" / job["job"]
        for png in sorted(folder.rglob("*.png")) if folder.is_dir() else []:
            images.append((f"{job['method_id']} (seed {job['seed']}): {png.stem}", png))
    return images


def write_reports(
    out: Path,
    jobs: Sequence[dict[str, Any]],
    failed: Sequence[dict[str, Any]],
    run_info: dict[str, Any],
) -> dict[str, Any]:
    """Write results.json, summary.md, report.html and figures/*.png; return the results dict."""
    agg = aggregate(jobs)
    pp = plot_points(agg)
    matched = matched_utility(agg, pp)
    figures = _write_figures(out, agg, pp)
    results = {
        "format": "lifeveil-bench",
        "version": 1,
        "config": run_info["preset"],
        "options": run_info["options"],
        "seeds": run_info["seeds"],
        "versions": run_info["versions"],
        "timings": {
            "wall_s": run_info["wall_s"],
            "skipped_finished": run_info["skipped_finished"],
            "jobs": {
                j["job"]: {
                    **j.get("timings", {}),
                    "evaluate": j.get("metrics", {}).get("timings", {}),
                }
                for j in jobs
            },
        },
        "started": run_info["started"],
        "jobs": list(jobs),
        "failed": [{k: v for k, v in f.items() if k != "_artifacts"} for f in failed],
        "methods": agg,
        "privacy_utility": pp,
        "matched_utility": matched,
        "figures": [str(p.relative_to(out)) for _, p in figures],
    }
    write_json(out / "results.json", _jsonable(results))
    tables = axis_tables(agg)
    headline = headline_tables(agg, pp)
    images = figures + job_images(out, jobs)
    with atomic_open(out / "summary.md") as fh:
        fh.write(_summary_md(results, headline, tables, matched, images, out))
    with atomic_open(out / "report.html") as fh:
        fh.write(_report_html(results, headline, tables, matched, images))
    return results


def _jsonable(obj: Any) -> Any:
    from lifeveil.bench.runner import to_jsonable

    return to_jsonable(obj)


def _write_figures(
    out: Path, agg: dict[str, dict[str, Any]], pp: dict[str, Any]
) -> list[tuple[str, Path]]:
    k = pp["headline_k"] or "the largest k"
    made = {
        f"privacy_utility_{metric.removeprefix('headline_')}": (
            f"Privacy-utility: {name} identity under accumulation (k={k}, best of linear and "
            "MLP probes and 1-shot re-ID) vs relative scene accuracy",
            privacy_utility_plot(
                agg,
                pp,
                metric,
                pp["headline_chance"][metric],
                f"{name} identity under accumulation, k={k}",
            ),
        )
        for metric, (name, _) in zip(HEADLINE_METRICS, ACCUMULATION_SETS, strict=True)
    }
    made["accumulation"] = (
        "Accumulation attack: identity vs releases averaged (k), inf = noise-free encoding",
        accumulation_plot(agg),
    )
    figures = []
    for name, (caption, png) in made.items():
        if png is None:
            continue
        path = out / "figures" / f"{name}.png"
        with atomic_path(path) as tmp:
            tmp.write_bytes(png)
        figures.append((caption, path))
    return figures


def _summary_md(
    results: dict[str, Any],
    headline: list[AxisTable],
    tables: dict[str, AxisTable],
    matched: list[dict[str, Any]],
    figures: list[tuple[str, Path]],
    out: Path,
) -> str:
    cfg = results["config"]
    lines = [
        f"# LifeVeil benchmark — preset `{cfg['name']}`",
        "",
        f"Seeds {results['seeds']}; {len(results['jobs'])} jobs finished, {len(results['failed'])} failed; "
        f"wall time {results['timings']['wall_s']:.0f} s. Values are means over seeds (± std when "
        "there are several). Accuracies are in [0, 1].",
        "",
    ]
    if headline:
        main, details = headline
        lines += [
            "## Headline privacy: identity under accumulation",
            "",
            HEADLINE_TEXT,
            "",
            markdown_table(main.header, main.rows),
            "",
            "Same for every method: " + "; ".join(f"{c} = {v}" for c, v in main.constant) + ".",
            "",
            "Per attacker, at each k (in the order above) and at inf:",
            "",
            markdown_table(details.header, details.rows),
            "",
        ]
    for axis in AXES:
        t = tables[axis]
        lines += [f"## {axis}: {AXIS_TITLES[axis]}", "", markdown_table(t.header, t.rows), ""]
        if t.constant:
            same = "; ".join(f"{c} = {v}" for c, v in t.constant)
            lines += [f"Same for every method: {same}.", ""]
    lines += ["## Where msr wins / loses at matched utility", ""]
    sentences = matched_sentences(matched)
    lines += sentences or [
        "No comparison possible (needs msr, baselines and the scene and identity metrics)."
    ]
    lines += ["", "## Figures", ""]
    lines += [f"![{cap}]({p.relative_to(out)})" for cap, p in figures]
    lines += [
        "",
        "Per-job figures (reconstruction grids, optimisation curves) are in `jobs/<job>/`.",
    ]
    if results["failed"]:
        lines += ["", "## Failed jobs", ""]
        lines += [f"- `{f['job']}`: {f['error']}" for f in results["failed"]]
    lines += ["", _DATA_CREDITS, ""]
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:12px}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
td:first-child,th:first-child{text-align:left;font-family:monospace}
th{background:#f3f3f3}
figure{display:inline-block;margin:1em;vertical-align:top}
figcaption{font-size:12px;max-width:600px}
img{max-width:700px}
"""


def _report_html(
    results: dict[str, Any],
    headline: list[AxisTable],
    tables: dict[str, AxisTable],
    matched: list[dict[str, Any]],
    images: list[tuple[str, Path]],
) -> str:
    cfg = results["config"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>LifeVeil benchmark ({html.escape(cfg['name'])})</title><style>{_CSS}</style></head><body>",
        f"<h1>LifeVeil benchmark — preset {html.escape(cfg['name'])}</h1>",
        f"<p>Seeds {results['seeds']}; {len(results['jobs'])} jobs, {len(results['failed'])} failed; "
        f"wall time {results['timings']['wall_s']:.0f} s. Means over seeds (± std).</p>",
    ]
    if headline:
        main, details = headline
        same = "; ".join(f"{c} = {v}" for c, v in main.constant)
        parts += [
            "<h2>Headline privacy: identity under accumulation</h2>",
            f"<p>{html.escape(HEADLINE_TEXT)}</p>",
            html_table(main.header, main.rows),
            f"<p><small>Same for every method: {html.escape(same)}.</small></p>",
            "<p>Per attacker, at each k (in the order above) and at inf:</p>",
            html_table(details.header, details.rows),
        ]
    for axis in AXES:
        t = tables[axis]
        parts += [
            f"<h2>{axis}: {html.escape(AXIS_TITLES[axis])}</h2>",
            html_table(t.header, t.rows),
        ]
        if t.constant:
            same = "; ".join(f"{c} = {v}" for c, v in t.constant)
            parts.append(f"<p><small>Same for every method: {html.escape(same)}.</small></p>")
    parts.append("<h2>Where msr wins / loses at matched utility</h2><ul>")
    sentences = matched_sentences(matched) or ["No comparison possible."]
    parts += [f"<li>{html.escape(s.lstrip('- ').replace('`', ''))}</li>" for s in sentences]
    parts.append("</ul><h2>Figures</h2>")
    for caption, path in images:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(
            f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    if results["failed"]:
        parts.append("<h2>Failed jobs</h2><ul>")
        parts += [
            f"<li><code>{html.escape(f['job'])}</code>: {html.escape(f['error'])}</li>"
            for f in results["failed"]
        ]
        parts.append("</ul>")
    versions = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    parts += [
        f"<p><small>{html.escape(versions)}</small></p>",
        f"<p><small>{html.escape(_DATA_CREDITS)}</small></p>",
    ]
    parts.append("</body></html>")
    return "\n".join(parts)
