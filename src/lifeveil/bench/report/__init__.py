"""Aggregate job results into results.json, summary.md and a self-contained report.html.

The headline privacy number is identity under accumulation at the largest k (256): the best
of a linear probe, an MLP probe and 1-shot re-ID on the mean of k releases of a person
(:mod:`lifeveil.bench.attacks.accumulation`), on ORL and on LFW. It leads the summary, is the
privacy axis of the trade-off plots and decides the matched-utility verdicts.

Modules: :mod:`.aggregate` (per-method means, plot points), :mod:`.verdict` (matched utility,
the three-sentence verdict), :mod:`.names` (human metric names, units, glossary),
:mod:`.tables`, :mod:`.figures`, :mod:`.page` (report.html), :mod:`.documents` (summary.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lifeveil.bench.report.aggregate import (
    ACCUMULATION_SETS,
    HEADLINE_METRICS,
    aggregate,
    axis_of,
    find_key,
    flatten,
    metric_dict,
    plot_points,
)
from lifeveil.bench.report.documents import DATA_CREDITS, job_images, summary_md
from lifeveil.bench.report.figures import accumulation_plot, privacy_utility_plot, write_figures
from lifeveil.bench.report.ledger import ledger_table
from lifeveil.bench.report.page import PageParts, report_html
from lifeveil.bench.report.tables import axis_tables, group_tables, headline_tables
from lifeveil.bench.report.verdict import matched_sentences, matched_utility, verdict_sentences
from lifeveil.bench.schema import RESULTS_FORMAT, RESULTS_VERSION, to_jsonable
from lifeveil.errors import InputError
from lifeveil.io import atomic_open, write_json


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
    figures = write_figures(out, agg, pp)
    results = {
        "format": RESULTS_FORMAT,
        "version": RESULTS_VERSION,
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
    write_json(out / "results.json", to_jsonable(results))
    _write_documents(out, results, agg, pp, matched, figures)
    return results


def render_reports(out: str | Path) -> dict[str, Any]:
    """Rewrite summary.md, report.html and figures/ of ``out`` from its results.json.

    No job runs and results.json is left as it is: use it after a change to the report, or
    to render results written by an earlier version. Returns the results read. InputError when
    ``out`` holds no readable results.json of this format.
    """
    out = Path(out)
    results = read_results(out / "results.json")
    agg = aggregate(results["jobs"])
    pp = plot_points(agg)
    matched = matched_utility(agg, pp)
    figures = write_figures(out, agg, pp)
    _write_documents(out, results, agg, pp, matched, figures)
    return results


def read_results(path: Path) -> dict[str, Any]:
    """A results.json written by :func:`write_reports` (any version up to this one)."""
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read benchmark results ({exc})") from None
    version = results.get("version") if isinstance(results, dict) else None
    if results.get("format") != RESULTS_FORMAT or not isinstance(version, int):
        raise InputError(
            f"{path}: not a LifeVeil benchmark results file (format {RESULTS_FORMAT!r})"
        )
    if version > RESULTS_VERSION:
        raise InputError(
            f"{path}: results version {version} is newer than this LifeVeil reads "
            f"({RESULTS_VERSION}); upgrade lifeveil to render it"
        )
    return results


def _write_documents(
    out: Path,
    results: dict[str, Any],
    agg: dict[str, dict[str, Any]],
    pp: dict[str, Any],
    matched: list[dict[str, Any]],
    figures: list[tuple[str, Path]],
) -> None:
    """summary.md and report.html (figures and one reconstruction grid per method embedded)."""
    headline = headline_tables(agg, pp)
    ledger = ledger_table(agg)
    verdict = verdict_sentences(agg, pp, matched)
    grids = job_images(out, results["jobs"])
    captioned = [(f"{mid}: reconstruction by decoder", path) for mid, path in grids]
    with atomic_open(out / "summary.md") as fh:
        fh.write(
            summary_md(
                results,
                headline,
                axis_tables(agg),
                matched,
                figures + captioned,
                out,
                verdict,
                ledger=ledger,
            )
        )
    parts = PageParts(
        results=results,
        verdict=verdict,
        headline=headline,
        groups=group_tables(agg),
        matched=matched,
        figures={path.stem: (caption, path) for caption, path in figures},
        grids=grids,
        credits=DATA_CREDITS,
        ledger=ledger,
    )
    with atomic_open(out / "report.html") as fh:
        fh.write(report_html(parts))


__all__ = [
    "ACCUMULATION_SETS",
    "HEADLINE_METRICS",
    "accumulation_plot",
    "aggregate",
    "axis_of",
    "axis_tables",
    "find_key",
    "flatten",
    "headline_tables",
    "job_images",
    "ledger_table",
    "matched_sentences",
    "matched_utility",
    "metric_dict",
    "plot_points",
    "privacy_utility_plot",
    "read_results",
    "render_reports",
    "write_reports",
]
