"""summary.md and the self-contained report.html, from the results and their tables."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lifeveil.bench.report.tables import (
    AXES,
    AXIS_TITLES,
    HEADLINE_TEXT,
    AxisTable,
    html_table,
    markdown_table,
)
from lifeveil.bench.report.verdict import matched_sentences

DATA_CREDITS = (
    "Data: SUN database scene photos (Xiao et al., SUN8 subset), AT&T Laboratories Cambridge "
    "ORL Database of Faces, Labeled Faces in the Wild (Huang et al.), action clips from HMDB51, "
    "UCF101, Kinetics and NTU RGB+D samples (see each dataset's PROVENANCE.md for terms)."
)


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


def summary_md(
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
    lines += ["", DATA_CREDITS, ""]
    return "\n".join(lines)


def report_html(
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
        f"<p><small>{html.escape(DATA_CREDITS)}</small></p>",
    ]
    parts.append("</body></html>")
    return "\n".join(parts)
