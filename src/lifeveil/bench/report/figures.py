"""The report's figures: privacy-utility trade-off per face set, and the accumulation curves.

Each function returns PNG bytes (None when there is nothing to plot); matplotlib is imported
inside them, with the Agg backend.
"""

from __future__ import annotations

import io
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
        if is_number(p[x_metric]) and is_number(p[y_metric]):
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
    if is_number(chance):
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
            if is_number(inf):
                inf_x = 4 * max(ks)
                ax.plot([ks[-1], inf_x], [ident[-1], inf], ":", color=colour, linewidth=1.0)
                ax.plot([inf_x], [inf], marker="s", color=colour)
            ks_all.update(ks)
        ticks = sorted(ks_all)
        ax.set_xscale("log", base=2)
        ax.set_xticks([*ticks, 4 * ticks[-1]], [*(str(k) for k in ticks), "inf"])
        chance = first_value(agg, f"{prefixes[name]}.chance")
        if is_number(chance):
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


def write_figures(
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
