"""The report's figures: privacy-utility trade-off per face set, and the accumulation curves.

Each function returns PNG bytes (None when there is nothing to plot); matplotlib is imported
inside them, with the Agg backend. Every method family has its own colour and marker
(:func:`family_styles`), the same in every figure; point labels are placed where they overlap
neither another label nor a marker (:func:`place_labels`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lifeveil.bench.report.aggregate import (
    ACCUMULATION_SETS,
    HEADLINE_METRICS,
    accumulation_curve,
    curve_family,
    first_value,
    is_number,
)
from lifeveil.io import atomic_path

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
RAW_STYLE = ("#000000", "*")  # the no-privacy reference
# Label offsets tried around a point, in points: nearest first, 16 directions, growing radii.
_DIRECTIONS = tuple(
    (round(math.cos(a * math.pi / 8), 3), round(math.sin(a * math.pi / 8), 3))
    for a in (1, -1, 7, 9, 4, 12, 0, 8, 2, -2, 6, 10, 3, 5, 11, 13)
)
_OFFSETS = tuple(
    (dx * r, dy * r - 3)
    for r in (7, 13, 20, 28, 38, 50, 64, 80, 100, 125, 150, 180)
    for dx, dy in _DIRECTIONS
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def family_styles(labels: Sequence[str]) -> dict[str, tuple[str, str]]:
    """A distinct (colour, marker) per curve label; raw-teacher is a black star."""
    others = sorted(set(labels) - {"raw-teacher"})
    styles = {
        label: (PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)])
        for i, label in enumerate(others)
    }
    return {**styles, "raw-teacher": RAW_STYLE}


def place_labels(
    ax: Any,
    points: list[tuple[float, float, str]],
    fontsize: float = 6.5,
    colours: Sequence[str] | None = None,
) -> None:
    """Annotate each (x, y, text) where it overlaps no other label, marker or the axes edge.

    Greedy, in order: the nearest free offset of :data:`_OFFSETS` wins (when none is free, the
    one inside the axes with the fewest overlaps); a label away from its point gets a thin
    leader line. Call it after the figure's layout is final (offsets are in points).
    """
    renderer = ax.figure.canvas.get_renderer()
    pad = 4.0
    taken = [
        (px - pad, py - pad, px + pad, py + pad)
        for px, py in (ax.transData.transform((x, y)) for x, y, _ in points)
    ]
    frame = ax.get_window_extent(renderer)
    for i, (x, y, text) in enumerate(points):
        if not text:
            continue
        best: tuple[int, tuple[float, float], tuple[float, ...]] | None = None
        for offset in _OFFSETS:
            extent = _label_extent(ax, renderer, x, y, text, offset, fontsize)
            inside = frame.x0 <= extent[0] and extent[2] <= frame.x1
            inside = inside and frame.y0 <= extent[1] and extent[3] <= frame.y1
            score = (0 if inside else 1000) + sum(_overlap(extent, t) for t in taken)
            if best is None or score < best[0]:
                best = (score, offset, extent)
            if score == 0:
                break
        assert best is not None
        _, (dx, dy), extent = best
        far = abs(dx) + abs(dy) > 18
        ax.annotate(
            text,
            (x, y),
            xytext=(dx, dy),
            textcoords="offset points",
            fontsize=fontsize,
            ha="left" if dx >= 0 else "right",
            color=colours[i] if colours else "#333333",
            arrowprops={"arrowstyle": "-", "color": "#aaaaaa", "linewidth": 0.5} if far else None,
        )
        taken.append(extent)


def _label_extent(
    ax: Any,
    renderer: Any,
    x: float,
    y: float,
    text: str,
    offset: tuple[float, float],
    fontsize: float,
) -> tuple[float, float, float, float]:
    """The pixel box (x0, y0, x1, y1) a label would take at ``offset`` from its point."""
    note = ax.annotate(
        text,
        (x, y),
        xytext=offset,
        textcoords="offset points",
        fontsize=fontsize,
        ha="left" if offset[0] >= 0 else "right",
    )
    box = note.get_window_extent(renderer)
    note.remove()
    return (box.x0, box.y0, box.x1, box.y1)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _trade_off_curves(
    agg: dict[str, dict[str, Any]], pp: dict[str, Any], x_metric: str, y_metric: str
) -> dict[str, list[tuple[float, float, str]]]:
    """Per curve label: (leakage, utility, setting label) of each method setting."""
    curves: dict[str, list[tuple[float, float, str]]] = {}
    for mid, m in agg.items():
        p = pp["points"][mid]
        if is_number(p[x_metric]) and is_number(p[y_metric]):
            label = curve_family(mid, m["family"], m["params"])
            curves.setdefault(label, []).append((p[x_metric], p[y_metric], _point_label(m)))
    return {label: sorted(pts) for label, pts in curves.items()}


def _trade_off_panel(
    ax: Any,
    curves: dict[str, list[tuple[float, float, str]]],
    styles: dict[str, tuple[str, str]],
    chance: float | None,
    xlabel: str,
) -> None:
    for label, pts in sorted(curves.items()):
        colour, marker = styles[label]
        raw = label == "raw-teacher"
        ax.plot(
            [q[0] for q in pts],
            [q[1] for q in pts],
            marker=marker,
            markersize=13 if raw else 6.5,
            color=colour,
            label=label,
            linewidth=1.4,
            markeredgecolor="white" if not raw else colour,
            markeredgewidth=0.6,
        )
    if is_number(chance):
        ax.axvline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xlabel(xlabel + "\n(lower = more private)")
    ax.grid(alpha=0.3)
    ax.set_xlim(left=0)


def privacy_utility_plot(
    agg: dict[str, dict[str, Any]],
    pp: dict[str, Any],
    x_metric: str | Sequence[str],
    chance: float | None | Sequence[float | None],
    xlabel: str | Sequence[str],
) -> bytes | None:
    """One curve per family across its parameter: x = leakage, y = (relative) scene accuracy.

    With sequences of ``x_metric``, ``chance`` and ``xlabel``: one panel per entry, side by
    side, sharing the y axis and one legend below.
    """
    panels = (
        [(x_metric, chance, xlabel)]
        if isinstance(x_metric, str)
        else list(zip(x_metric, chance, xlabel, strict=True))  # type: ignore[arg-type]
    )
    y_metric = "scene_rel" if pp["relative_to_raw"] else "scene_acc"
    curves = [_trade_off_curves(agg, pp, x, y_metric) for x, _, _ in panels]
    if not any(curves):
        return None
    styles = family_styles([label for c in curves for label in c])
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(panels), figsize=(6.4 * len(panels), 5.4), squeeze=False, sharey=True
    )
    for ax, panel_curves, (_, ch, xl) in zip(axes[0], curves, panels, strict=True):
        _trade_off_panel(ax, panel_curves, styles, ch, xl)
    axes[0][0].set_ylabel(
        "scene accuracy relative to raw-teacher\n(higher = more useful)"
        if y_metric == "scene_rel"
        else "scene accuracy (higher = more useful)"
    )
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=min(6, len(labels)),
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, -0.02),
    )
    fig.suptitle("Privacy-utility trade-off (one curve per method family; labels: setting)")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    for ax, panel_curves in zip(axes[0], curves, strict=True):  # after layout: final pixels
        ax.set_xlim(ax.get_xlim())
        ax.set_ylim(ax.get_ylim())
        ordered = sorted(panel_curves.items())
        points = [q for _, pts in ordered for q in pts]
        colours = [styles[label][0] for label, pts in ordered for _ in pts]
        place_labels(
            ax, points, colours=colours
        )  # raw-teacher has no label, but its star is kept clear
    return _figure_png(fig)


def accumulation_plot(agg: dict[str, dict[str, Any]]) -> bytes | None:
    """Identity under accumulation against k (log axis): one row of panels per method family
    (its settings in distinct colours and markers), one column per face set.

    raw-teacher is the grey reference in every panel; k = inf (the noise-free encoding) sits
    right of the largest k, joined by a dotted segment; chance is the dashed grey line.
    """
    sets = [
        (name, prefix, {mid: c for mid, m in agg.items() if (c := accumulation_curve(m, prefix))})
        for name, prefix in ACCUMULATION_SETS
    ]
    sets = [s for s in sets if s[2]]
    if not sets:
        return None
    families = sorted(
        {curve_family(mid, m["family"], m["params"]) for mid, m in agg.items()} - {"raw-teacher"}
    ) or ["raw-teacher"]
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(families),
        len(sets),
        figsize=(5.2 * len(sets) + 2.2, 2.6 * len(families) + 0.6),
        squeeze=False,
        sharex=True,
        sharey=True,
    )
    for row, family in enumerate(families):
        members = [
            mid for mid, m in agg.items() if curve_family(mid, m["family"], m["params"]) == family
        ]
        for col, (name, prefix, curves) in enumerate(sets):
            ax = axes[row][col]
            _accumulation_panel(ax, curves, members, first_value(agg, f"{prefix}.chance"), agg)
            ax.set_title(f"{family} on {name}", fontsize=9)
            if col == 0:
                ax.set_ylabel("identity", fontsize=8)
        axes[row][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    for ax in axes[-1]:
        ax.set_xlabel("releases of a person averaged by the attacker (k)", fontsize=8)
    fig.suptitle(
        "Accumulation attack: identity (best of linear probe, MLP probe, 1-shot re-ID) "
        "against releases averaged",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))  # room for the title
    return _figure_png(fig)


def _accumulation_panel(
    ax: Any,
    curves: dict[str, tuple[list[int], list[float], Any]],
    members: list[str],
    chance: Any,
    agg: dict[str, dict[str, Any]],
) -> None:
    ks_all = sorted({k for ks, _, _ in curves.values() for k in ks})
    inf_x = 4 * ks_all[-1]
    raw = next((mid for mid, m in agg.items() if m["family"] == "raw-teacher"), None)
    lines = [(raw, "#9a9a9a", "*", "raw-teacher")] if raw in curves and raw not in members else []
    lines += [
        (mid, PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)], _point_label(agg[mid]) or mid)
        for i, mid in enumerate(m for m in members if m in curves)
    ]
    for mid, colour, marker, label in lines:
        ks, ident, inf = curves[mid]
        style = "--" if mid == raw and mid not in members else "-"
        ax.plot(ks, ident, style, marker=marker, color=colour, label=label, linewidth=1.2, ms=5)
        if is_number(inf):
            ax.plot([ks[-1], inf_x], [ident[-1], inf], ":", color=colour, linewidth=1.0)
            ax.plot([inf_x], [inf], marker=marker, color=colour, ms=5)
    if is_number(chance):
        ax.axhline(chance, color="#555555", linestyle=":", linewidth=1.0, label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xticks([*ks_all, inf_x], [*(str(k) for k in ks_all), "inf"])
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)


def _point_label(m: dict[str, Any]) -> str:
    """The setting's parameters without the family (the curve says the family)."""
    params = {k: v for k, v in m["params"].items() if k not in ("path", "mode")}
    if m["family"] == "msr":
        return str(params.get("ckpt", "default"))
    return ",".join(f"{k}={v}" for k, v in sorted(params.items()))


def write_figures(
    out: Path, agg: dict[str, dict[str, Any]], pp: dict[str, Any]
) -> list[tuple[str, Path]]:
    """Write figures/*.png; return (caption, path) of each, the main trade-off plot first."""
    k = pp["headline_k"] or "the largest k"
    names = [name for _, (name, _) in zip(HEADLINE_METRICS, ACCUMULATION_SETS, strict=True)]
    xlabels = [f"{name} identity after averaging k={k} releases" for name in names]
    chances = [pp["headline_chance"][metric] for metric in HEADLINE_METRICS]
    made = {
        "privacy_utility": (
            f"Privacy-utility trade-off on ORL and LFW: identity after an attacker averages "
            f"k={k} releases of a person (best of linear and MLP probes and 1-shot re-ID) vs "
            "scene accuracy relative to raw-teacher",
            privacy_utility_plot(agg, pp, list(HEADLINE_METRICS), chances, xlabels),
        ),
        **{
            f"privacy_utility_{metric.removeprefix('headline_')}": (
                f"Privacy-utility: {name} identity under accumulation (k={k}, best of linear "
                "and MLP probes and 1-shot re-ID) vs relative scene accuracy",
                privacy_utility_plot(agg, pp, metric, chance, xlabel),
            )
            for metric, name, chance, xlabel in zip(
                HEADLINE_METRICS, names, chances, xlabels, strict=True
            )
        },
        "accumulation": (
            "Accumulation attack: identity vs releases averaged (k), inf = noise-free encoding",
            accumulation_plot(agg),
        ),
    }
    figures = []
    for name, (caption, png) in made.items():
        if png is None:
            continue
        path = out / "figures" / f"{name}.png"
        with atomic_path(path) as tmp:
            tmp.write_bytes(png)
        figures.append((caption, path))
    return figures
