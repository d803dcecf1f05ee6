"""report.html: a self-contained page a person can read top to bottom.

Order: the verdict in three sentences and the main plot; the headline table; one small table
per task or attack, grouped by axis, with human metric names and units (bookkeeping numbers
folded away); the matched-utility pairs; the accumulation figure; one reconstruction grid per
method; a glossary; versions and data credits. Images are embedded as base64 PNG.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifeveil.bench.report.ledger import LEDGER_TEXT
from lifeveil.bench.report.names import GROUPS, METRICS, header
from lifeveil.bench.report.tables import (
    HEADLINE_TEXT,
    AxisTable,
    GroupTable,
    html_table,
)
from lifeveil.bench.report.verdict import MATCH_TOLERANCE, matched_sentences

AXIS_HEADINGS = {  # axis -> (anchor, link text, heading)
    "DTP": ("utility", "Utility", "Utility: what the server can still do (higher is better)"),
    "PL": (
        "privacy",
        "Privacy leakage",
        "Privacy leakage: attacks on the released features (lower is better)",
    ),
    "RR": (
        "reconstruction",
        "Reconstruction",
        "Reconstruction: can a face be rebuilt? (lower is better)",
    ),
    "SE": ("cost", "Cost", "Cost on the device and on the wire (lower is cheaper)"),
}
TERMS = (
    (
        "release",
        "what leaves the device for one frame: a vector (feature methods, msr) or a "
        "processed frame that the server embeds with the teacher (pixel baselines).",
    ),
    (
        "k",
        "how many releases of the same person an attacker averages before attacking; "
        "k = inf is the noise-free encoding of each image, which an attacker who owns the public "
        "model can compute directly.",
    ),
    (
        "headline",
        "identity under accumulation at the largest k: the best of a linear probe, an "
        "MLP probe and 1-shot re-ID. The privacy number of this report (lower is more private).",
    ),
    (
        "scene accuracy relative to raw-teacher",
        "a method's linear-probe scene accuracy divided "
        "by that of the unprotected teacher embedding (1.0 = no utility lost).",
    ),
    (
        "chance",
        "the accuracy of guessing (1 / people for identity); an attack at chance learned nothing.",
    ),
    (
        "matched utility",
        f"an msr setting and a baseline setting whose relative scene accuracy "
        f"differs by at most {MATCH_TOLERANCE:.2f}: their leakage can be compared fairly.",
    ),
    ("0-1", "a fraction: 0.25 means 25 %."),
)
_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;
line-height:1.45;padding:0 1em}
h1{margin-bottom:.2em}.meta{color:#666;margin-top:0}
.verdict{font-size:1.08em;background:#f4f7fb;border-left:4px solid #1f77b4;padding:.6em 1em}
nav{font-size:.95em;margin:1em 0}nav a{margin-right:1em}
table{border-collapse:collapse;margin:.6em 0;font-size:12.5px}
td,th{border:1px solid #d5d5d5;padding:3px 7px;text-align:right}td{white-space:nowrap}
td:first-child,th:first-child{text-align:left;font-family:ui-monospace,monospace;
white-space:nowrap}
th{background:#f3f3f3;vertical-align:bottom}
.same,.note{color:#555;font-size:.9em}
details{margin:.4em 0 1em}summary{cursor:pointer;color:#1f5f99}
figure{margin:1em 0}figcaption{font-size:.9em;color:#444;max-width:900px}
.main img{max-width:100%}.wide img{max-width:100%}
.grids{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:1em}
.grids img{width:100%}dt{font-weight:600;margin-top:.5em}dd{margin-left:1.2em}
"""


@dataclass
class PageParts:
    """What report.html shows, prepared by :func:`lifeveil.bench.report.write_reports`."""

    results: dict[str, Any]
    verdict: list[str]
    headline: list[AxisTable]
    groups: list[GroupTable]
    matched: list[dict[str, Any]]
    figures: dict[str, tuple[str, Path]]  # figure name -> (caption, PNG)
    grids: list[tuple[str, Path]]  # (method id, reconstruction grid PNG)
    credits: str
    ledger: AxisTable | None = None  # the ledger bound beside the accumulation attack


def report_html(parts: PageParts) -> str:
    """The whole page as one HTML string."""
    cfg = parts.results["config"]
    title = f"LifeVeil benchmark, preset {cfg['name']}"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='meta'>{html.escape(_meta(parts.results))}</p>",
        *_summary(parts),
        _nav(parts),
        *_headline(parts.headline),
        *_ledger(parts.ledger),
        *_axes(parts.groups),
        *_matched(parts.matched),
        *_figures(parts.figures),
        *_grids(parts.grids),
        *_glossary(parts.groups),
        *_failed(parts.results),
        *_footer(parts),
    ]
    return "\n".join(
        [
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
            *body,
            "</body></html>",
        ]
    )


def _meta(results: dict[str, Any]) -> str:
    seeds = results["seeds"]
    return (
        f"{len(results['jobs'])} jobs (method setting x seed), {len(results['failed'])} failed; "
        f"seeds {seeds}; wall time {results['timings']['wall_s'] / 60:.0f} min; "
        f"started {results.get('started', '?')}. Numbers are means over seeds"
        + (" (± std)." if len(seeds) > 1 else ".")
    )


def _summary(parts: PageParts) -> list[str]:
    out = ["<h2 id='summary'>Summary</h2>"]
    if parts.verdict:
        out.append(f"<p class='verdict'>{html.escape(' '.join(parts.verdict))}</p>")
    else:
        out.append("<p class='verdict'>No verdict: it needs raw-teacher and an msr result.</p>")
    if "privacy_utility" in parts.figures:
        out.append(_figure(*parts.figures["privacy_utility"], css="main"))
    return out


def _nav(parts: PageParts) -> str:
    links = [("headline", "Headline privacy")]
    axes = [g.group.axis for g in parts.groups]
    links += [
        (AXIS_HEADINGS[a][0], AXIS_HEADINGS[a][1].split(":")[0]) for a in AXIS_HEADINGS if a in axes
    ]
    links += [("matched", "Matched utility"), ("figures", "Accumulation figure")]
    links += [("reconstructions", "Reconstructions"), ("glossary", "Glossary")]
    return "<nav>" + "".join(f"<a href='#{a}'>{html.escape(t)}</a>" for a, t in links) + "</nav>"


def _headline(headline: list[AxisTable]) -> list[str]:
    if not headline:
        return []
    main, details = headline
    return [
        "<h2 id='headline'>Headline privacy: identity under accumulation</h2>",
        f"<p>{html.escape(HEADLINE_TEXT)}</p>",
        html_table(main.header, main.rows),
        _same(main.constant),
        "<details><summary>Each attacker at each k (linear probe, MLP probe, 1-shot re-ID)"
        "</summary>",
        html_table(details.header, details.rows),
        "</details>",
    ]


def _ledger(table: AxisTable | None) -> list[str]:
    if table is None:
        return []
    return [
        "<h2 id='ledger'>Ledger bound vs accumulation attack</h2>",
        f"<p>{html.escape(LEDGER_TEXT)}</p>",
        html_table(table.header, table.rows),
        _same(table.constant),
    ]


def _axes(groups: list[GroupTable]) -> list[str]:
    out: list[str] = []
    for axis, (anchor, _, heading) in AXIS_HEADINGS.items():
        mine = [g for g in groups if g.group.axis == axis]
        if not mine:
            continue
        out.append(f"<h2 id='{anchor}'>{html.escape(heading)}</h2>")
        for g in mine:
            out.append(f"<h3>{html.escape(g.group.title)}</h3>")
            if g.group.glossary:
                out.append(f"<p class='note'>{html.escape(g.group.glossary)}</p>")
            if g.table.rows:
                out.append(html_table(g.table.header, g.table.rows))
            out.append(_same(g.table.constant))
            if g.details is not None and (g.details.rows or g.details.constant):
                out.append("<details><summary>Bookkeeping and tuning numbers</summary>")
                if g.details.rows:
                    out.append(html_table(g.details.header, g.details.rows))
                out.append(_same(g.details.constant))
                out.append("</details>")
    return out


def _same(constant: list[tuple[str, str]]) -> str:
    if not constant:
        return ""
    same = "; ".join(f"{c} = {v}" for c, v in constant)
    return f"<p class='same'>Same for every method: {html.escape(same)}.</p>"


def _matched(matched: list[dict[str, Any]]) -> list[str]:
    sentences = [s.lstrip("- ").replace("`", "") for s in matched_sentences(matched)]
    out = ["<h2 id='matched'>Where msr wins or loses at matched utility</h2>"]
    if not sentences:
        return [*out, "<p>No comparison possible (needs msr, baselines and both metrics).</p>"]
    out.append(f"<p>{html.escape(sentences[0])}</p>")
    if len(sentences) > 1:
        out.append(f"<details><summary>All {len(sentences) - 1} pairs</summary><ul>")
        out += [f"<li>{html.escape(s)}</li>" for s in sentences[1:]]
        out.append("</ul></details>")
    return out


def _figures(figures: dict[str, tuple[str, Path]]) -> list[str]:
    out = ["<h2 id='figures'>Accumulation: identity as an attacker averages more releases</h2>"]
    if "accumulation" in figures:
        out.append(_figure(*figures["accumulation"], css="wide"))
    singles = [figures[n] for n in sorted(figures) if n.startswith("privacy_utility_")]
    if singles:
        out.append("<details><summary>The trade-off per face set, one figure each</summary>")
        out += [_figure(caption, path, css="wide") for caption, path in singles]
        out.append("</details>")
    return out


def _grids(grids: list[tuple[str, Path]]) -> list[str]:
    out = [
        "<h2 id='reconstructions'>Reconstructions: one grid per method</h2>",
        "<p class='note'>The decoder attack on held-out ORL victims: originals above, the "
        "attacker's reconstructions below. The optimisation attack's grids and curves are in "
        "each job's folder (<code>jobs/&lt;job&gt;/</code>).</p>",
    ]
    if not grids:
        return [*out, "<p>No reconstruction grids in this run.</p>"]
    out.append("<div class='grids'>")
    out += [_figure(mid, path) for mid, path in grids]
    out.append("</div>")
    return out


def _glossary(groups: list[GroupTable]) -> list[str]:
    out = ["<h2 id='glossary'>Glossary</h2><dl>"]
    for term, text in TERMS:
        out.append(f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>")
    families = _method_families()
    if families:
        listed = "; ".join(f"{name}: {text}" for name, text in families.items())
        out.append(f"<dt>method families</dt><dd>{html.escape(listed)}.</dd>")
    shown = {g.group for g in groups}
    for group in GROUPS:
        if group not in shown:
            continue
        names = [
            header(k) for k in METRICS if k.startswith(group.prefixes) and not METRICS[k].detail
        ]
        out.append(
            f"<dt>{html.escape(group.title)}</dt><dd>{html.escape(group.glossary)} "
            f"<span class='note'>Columns: {html.escape('; '.join(names))}.</span></dd>"
        )
    out.append("</dl>")
    return out


def _method_families() -> dict[str, str]:
    """Family -> one-line help from the methods registry ({} when it cannot be imported)."""
    try:
        from lifeveil.bench.methods import METHODS
    except ImportError:
        return {}
    return METHODS.describe()


def _failed(results: dict[str, Any]) -> list[str]:
    if not results["failed"]:
        return []
    return [
        "<h2>Failed jobs</h2><ul>",
        *(
            f"<li><code>{html.escape(f['job'])}</code>: {html.escape(f['error'])}</li>"
            for f in results["failed"]
        ),
        "</ul>",
    ]


def _footer(parts: PageParts) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in parts.results["versions"].items())
    return [
        f"<p class='same'>Software: {html.escape(versions)}.</p>",
        f"<p class='same'>{html.escape(parts.credits)}</p>",
    ]


def _figure(caption: str, path: Path, css: str = "") -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    cls = f" class='{css}'" if css else ""
    return (
        f"<figure{cls}><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )
