"""summary.md (the Markdown twin of report.html, with every column under its raw key) and the
per-method images both documents show."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lifeveil.bench.report.ledger import LEDGER_TEXT
from lifeveil.bench.report.tables import (
    AXES,
    AXIS_TITLES,
    HEADLINE_TEXT,
    AxisTable,
    markdown_table,
)
from lifeveil.bench.report.verdict import matched_sentences

DATA_CREDITS = (
    "Data: SUN database scene photos (Xiao et al., SUN8 subset), AT&T Laboratories Cambridge "
    "ORL Database of Faces, Labeled Faces in the Wild (Huang et al.), action clips from HMDB51, "
    "UCF101, Kinetics and NTU RGB+D samples (see each dataset's PROVENANCE.md for terms)."
)


GRID_FILE = "recon_decoder.png"  # the reconstruction grid shown per method


def job_images(out: Path, jobs: Sequence[dict[str, Any]]) -> list[tuple[str, Path]]:
    """(method id, PNG): one reconstruction grid per method, from its first seed's folder.

    The decoder grid when the job wrote one, else the job's first PNG; methods in job order.
    """
    seen: set[str] = set()
    images = []
    for job in sorted(jobs, key=lambda j: j["seed"]):
        folder = out / "jobs" / job["job"]
        if job["method_id"] in seen or not folder.is_dir():
            continue
        pngs = sorted(folder.rglob("*.png"))
        grid = folder / GRID_FILE if (folder / GRID_FILE).is_file() else next(iter(pngs), None)
        if grid is not None:
            seen.add(job["method_id"])
            images.append((job["method_id"], grid))
    order = {j["method_id"]: i for i, j in enumerate(jobs)}
    return sorted(images, key=lambda item: order[item[0]])


def summary_md(
    results: dict[str, Any],
    headline: list[AxisTable],
    tables: dict[str, AxisTable],
    matched: list[dict[str, Any]],
    figures: list[tuple[str, Path]],
    out: Path,
    verdict: Sequence[str] = (),
    ledger: AxisTable | None = None,
) -> str:
    """summary.md: the verdict, the headline table, the ledger bound beside it (when filed),
    one table per axis, the matched pairs."""
    cfg = results["config"]
    lines = [
        f"# LifeVeil benchmark — preset `{cfg['name']}`",
        "",
        f"Seeds {results['seeds']}; {len(results['jobs'])} jobs finished, {len(results['failed'])} failed; "
        f"wall time {results['timings']['wall_s']:.0f} s. Values are means over seeds (± std when "
        "there are several). Accuracies are in [0, 1].",
        "",
    ]
    if verdict:
        lines += ["## Summary", "", " ".join(verdict), ""]
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
    if ledger is not None:
        lines += ["## Ledger bound vs accumulation attack", "", LEDGER_TEXT, ""]
        lines += [markdown_table(ledger.header, ledger.rows), ""]
        if ledger.constant:
            lines += ["Attacked: " + "; ".join(f"{c} {v}" for c, v in ledger.constant) + ".", ""]
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
    lines += [f"![{cap}]({p.relative_to(out).as_posix()})" for cap, p in figures]
    lines += [
        "",
        "One reconstruction grid per method above; every job's figures (decoder and "
        "optimisation grids, optimisation curves) are in `jobs/<job>/`.",
    ]
    if results["failed"]:
        lines += ["", "## Failed jobs", ""]
        lines += [f"- `{f['job']}`: {f['error']}" for f in results["failed"]]
    lines += ["", DATA_CREDITS, ""]
    return "\n".join(lines)
