"""Matched utility: msr against the baseline setting closest in utility, by the headline.

Utility is scene accuracy relative to raw-teacher; the verdict uses the headline privacy number
(identity under accumulation at the largest k, per face set; lower is better).
"""

from __future__ import annotations

from typing import Any

from lifeveil.bench.report.aggregate import (
    ACCUMULATION_SETS,
    HEADLINE_METRICS,
    first_value,
    is_number,
)
from lifeveil.bench.report.tables import fmt

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
    if not (is_number(msr) and is_number(baseline)):
        return None
    if abs(msr - baseline) <= tol:
        return "tie"
    return "msr" if msr < baseline else "baseline"


def headline_label(metric: str) -> str:
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
                f"by {headline_label(metric)}, msr leaks less in {wins}, the baseline in "
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
            label = headline_label(metric)
            a, b, w = r[f"msr_{metric}"], r[f"baseline_{metric}"], r[f"{metric}_winner"]
            if w is None:
                continue
            verdict = {
                "msr": "msr leaks less",
                "baseline": "the baseline leaks less",
                "tie": "a tie",
            }[w]
            parts.append(f"{label} {fmt(a)} vs {fmt(b)} ({verdict})")
        if parts:
            lines.append(
                f"- `{r['msr']}` (relative scene accuracy {fmt(r['msr_scene_rel'])}) vs "
                f"`{r['baseline']}` ({fmt(r['baseline_scene_rel'])}): " + "; ".join(parts) + "."
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


KEEP_UTILITY = 0.9  # "keeps utility": at least this share of raw-teacher's scene accuracy


def verdict_sentences(
    agg: dict[str, dict[str, Any]], pp: dict[str, Any], rows: list[dict[str, Any]]
) -> list[str]:
    """The privacy-utility verdict in three plain sentences (utility, privacy, matched pairs).

    The setting quoted is the msr setting with the lowest mean headline leakage among those
    that keep :data:`KEEP_UTILITY` of raw-teacher's scene accuracy (the most useful one when
    none does). Empty when there is no msr result or no raw-teacher reference.
    """
    pts = pp["points"]
    raw = next((mid for mid, m in agg.items() if m["family"] == "raw-teacher"), None)
    msr = [
        mid for mid, m in agg.items() if m["family"] == "msr" and is_number(pts[mid]["scene_rel"])
    ]
    if raw is None or not msr:
        return []
    useful = [mid for mid in msr if pts[mid]["scene_rel"] >= KEEP_UTILITY]
    pick = min(useful, key=lambda mid: _mean_leak(pts[mid])) if useful else None
    pick = pick or max(msr, key=lambda mid: pts[mid]["scene_rel"])
    k = pp.get("headline_k")
    leaks = []
    for metric, (name, prefix) in zip(HEADLINE_METRICS, ACCUMULATION_SETS, strict=True):
        mine, base = pts[pick][metric], pts[raw][metric]
        if is_number(mine) and is_number(base):
            people = first_value(agg, f"{prefix}.n_identities")
            chance = pp["headline_chance"].get(metric)
            who = f"{int(people)} {name} people" if is_number(people) else f"{name} people"
            leaks.append(f"{_pct(mine)} of {who} (raw-teacher {_pct(base)}, chance {_pct(chance)})")
    which = (
        f"the msr setting that leaks least while keeping at least {100 * KEEP_UTILITY:.0f} % of "
        "raw-teacher's scene accuracy"
        if useful
        else f"the most useful msr setting (none keeps {100 * KEEP_UTILITY:.0f} % of raw-teacher's "
        "scene accuracy)"
    )
    first = (
        f"Utility: {pick}, {which}, keeps {_pct(pts[pick]['scene_rel'])} of raw-teacher's "
        "scene accuracy on SUN8."
    )
    second = (
        f"Privacy: an attacker who averages k={k} of its releases of a person identifies "
        + " and ".join(leaks)
        + "."
        if leaks
        else "Privacy: no identity-under-accumulation result to compare."
    )
    return [first, second, _matched_sentence(rows)]


def _matched_sentence(rows: list[dict[str, Any]]) -> str:
    matched = [r for r in rows if r["matched"]]
    if not matched:
        return (
            "At matched utility: no baseline setting comes within "
            f"{MATCH_TOLERANCE:.2f} of an msr setting's scene accuracy, so no pair is compared."
        )
    parts = []
    for metric, (name, _) in zip(HEADLINE_METRICS, ACCUMULATION_SETS, strict=True):
        wins = sum(r.get(f"{metric}_winner") == "msr" for r in matched)
        losses = sum(r.get(f"{metric}_winner") == "baseline" for r in matched)
        ties = sum(r.get(f"{metric}_winner") == "tie" for r in matched)
        if wins + losses + ties:
            parts.append(
                f"by {name} identity msr leaks less in {wins}, more in {losses}, ties {ties}"
            )
    return (
        f"At matched utility (scene accuracy within {MATCH_TOLERANCE:.2f} of the baseline "
        f"setting closest to it), of {len(matched)} msr-baseline pairs: " + "; ".join(parts) + "."
    )


def _mean_leak(point: dict[str, Any]) -> float:
    values = [point[m] for m in HEADLINE_METRICS if is_number(point[m])]
    return sum(values) / len(values) if values else float("inf")


def _pct(v: Any) -> str:
    return f"{100 * v:.1f} %" if is_number(v) else "–"
