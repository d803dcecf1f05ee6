"""The report: committed results still render (`lifeveil bench --report-only`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lifeveil.bench.report import read_results
from lifeveil.cli.main import main
from lifeveil.errors import InputError

DOCS = Path(__file__).resolve().parents[2] / "docs"
COMMITTED = sorted(p.parent for p in DOCS.glob("bench-*/results.json"))


@pytest.mark.parametrize("folder", COMMITTED, ids=[p.name for p in COMMITTED])
def test_committed_results_render_again(folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / folder.name
    shutil.copytree(folder, out)
    before = (out / "results.json").read_bytes()
    assert main(["bench", "--out", str(out), "--report-only"]) == 0
    assert (out / "results.json").read_bytes() == before  # results are read, never rewritten
    summary = (out / "summary.md").read_text()
    assert "## Headline privacy: identity under accumulation" in summary
    assert "| raw-teacher |" in summary
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3
    jobs = read_results(out / "results.json")["jobs"]
    if any("ledger_orl" in job["metrics"].get("pl", {}) for job in jobs):
        assert "## Ledger bound vs accumulation attack" in summary
        assert "| msr[ckpt=default,mode=mean] | fsq-code | 148.6 | 1.000 / " in summary
        assert "<h2 id='ledger'>" in html
    else:  # results from before the ledger attack render without its table
        assert "Ledger bound" not in summary
    assert "report.html" in capsys.readouterr().out


def test_report_only_explains_a_folder_without_results(tmp_path: Path, capsys) -> None:
    assert main(["bench", "--out", str(tmp_path), "--report-only"]) == 2
    assert "cannot read benchmark results" in capsys.readouterr().err
    (tmp_path / "results.json").write_text('{"format": "lifeveil-bench", "version": 99}')
    with pytest.raises(InputError, match="newer than this LifeVeil reads"):
        read_results(tmp_path / "results.json")


def test_trade_off_labels_never_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    """The committed full run's 23 settings crowd one corner of the ORL panel."""
    import json

    from matplotlib.text import Text

    from lifeveil.bench.report import figures
    from lifeveil.bench.report.aggregate import aggregate, plot_points

    overlaps: list[tuple[str, str]] = []
    place = figures.place_labels

    def checked(ax, points, fontsize=6.5, colours=None):
        place(ax, points, fontsize, colours)
        renderer = ax.figure.canvas.get_renderer()
        boxes = []
        for text in ax.texts:
            text.get_window_extent(renderer)  # positions the annotation
            boxes.append((text.get_text(), Text.get_window_extent(text, renderer)))
        overlaps.extend(
            (a, c) for i, (a, b) in enumerate(boxes) for c, d in boxes[i + 1 :] if b.overlaps(d)
        )
        assert len(boxes) == sum(1 for p in points if p[2])

    monkeypatch.setattr(figures, "place_labels", checked)
    results = json.loads((DOCS / "bench-full" / "results.json").read_text())
    agg = aggregate(results["jobs"])
    pp = plot_points(agg)
    png = figures.privacy_utility_plot(
        agg, pp, ["headline_orl", "headline_lfw"], [None, None], ["ORL", "LFW"]
    )
    assert png[:4] == b"\x89PNG" and not overlaps
