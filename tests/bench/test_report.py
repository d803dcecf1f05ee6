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
    assert "report.html" in capsys.readouterr().out


def test_report_only_explains_a_folder_without_results(tmp_path: Path, capsys) -> None:
    assert main(["bench", "--out", str(tmp_path), "--report-only"]) == 2
    assert "cannot read benchmark results" in capsys.readouterr().err
    (tmp_path / "results.json").write_text('{"format": "lifeveil-bench", "version": 99}')
    with pytest.raises(InputError, match="newer than this LifeVeil reads"):
        read_results(tmp_path / "results.json")
