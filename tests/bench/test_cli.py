"""`lifeveil bench`: listing, error messages, and the quick preset end to end (real attacks)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

from lifeveil.bench.presets import get_preset
from lifeveil.cli.main import main
from lifeveil.paths import DEFAULT_CHECKPOINT
from lifeveil.privatizer import PrivatizerConfig
from lifeveil.privatizer.checkpoint import save_checkpoint
from lifeveil.privatizer.model import PrivatizerModel

QUICK_BUDGET_S = 300


def test_list_shows_methods_presets_attacks_and_tasks(capsys):
    assert main(["bench", "--list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {"methods", "presets", "attacks", "tasks"} <= set(listing)
    assert {
        "raw-teacher",
        "blur",
        "pixelate",
        "noise",
        "face-blur",
        "deface",
        "dp-embedding",
        "msr",
    } == set(listing["methods"])
    assert set(listing["presets"]) == {"quick", "full"}
    assert main(["bench", "--list"]) == 0
    assert "dp-embedding" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preset", "medium"], "unknown preset 'medium'; available: full, quick"),
        (["--methods", "blur,swirl"], "unknown method 'swirl'; available: blur, deface"),
        (["--seeds", "a,b"], "--seeds expects comma-separated integers"),
    ],
)
def test_bad_names_exit_2_with_the_choices(argv, message, tmp_path, capsys):
    assert main(["bench", "--out", str(tmp_path / "o"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_bad_data_root_says_what_is_expected(tmp_path, capsys):
    rc = main(["bench", "--out", str(tmp_path / "o"), "--data", str(tmp_path), "--methods", "blur"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "lacks scenes-sun8, faces-orl, action-clips" in err and "sX/Y.pgm" in err


def test_out_is_required(capsys):
    assert main(["bench"]) == 2
    assert "needs --out" in capsys.readouterr().err


def _msr_args(tmp_path: Path) -> list[str]:
    """The shipped default privatizer if present, else an untrained tiny one (plumbing only)."""
    if DEFAULT_CHECKPOINT.is_file():
        return []
    torch.manual_seed(0)
    cfg = PrivatizerConfig(input_size=64, z_dim=16, decoder_hidden=32, student_init="random")
    save_checkpoint(
        tmp_path / "ckpts" / "tiny.safetensors", PrivatizerModel(cfg).state_dict(), cfg, {}
    )
    return ["--msr-checkpoints", str(tmp_path / "ckpts")]


@pytest.mark.slow
def test_quick_preset_end_to_end(tmp_path, orl_root, capsys):
    pytest.importorskip("lifeveil.bench.evaluate")
    out = tmp_path / "quick"
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    rc = main(["bench", "--preset", "quick", "--out", str(out), *_msr_args(tmp_path)])
    elapsed = time.perf_counter() - t0
    assert rc == 0, capsys.readouterr().err
    # The budget is for 2 otherwise idle cores. On a shared machine our 2 workers get about
    # cores / (others' load + 2) of the CPU, so the budget stretches by the inverse.
    cores = max(2, os.cpu_count() or 1)
    budget = QUICK_BUDGET_S * max(1.0, (load0 + 2) / cores)
    assert elapsed < budget, f"quick preset took {elapsed:.0f} s (budget {budget:.0f} s)"
    results = json.loads((out / "results.json").read_text())
    families = {m["family"] for m in results["methods"].values()}
    assert families == {
        "raw-teacher",
        "blur",
        "pixelate",
        "noise",
        "face-blur",
        "deface",
        "dp-embedding",
        "msr",
    }
    assert not results["failed"]
    assert (
        results["privacy_utility"]["keys"]["scene_acc"]
        and results["privacy_utility"]["keys"]["identity_acc"]
    )
    # The headline privacy number: identity under accumulation, on ORL and LFW, every method.
    quick = get_preset("quick")
    for mid, m in results["methods"].items():
        for face_set, people in (("orl", 5), ("lfw", quick.lfw_heldout_identities)):
            prefix = f"pl.accumulation_{face_set}"
            assert m["mean"][f"{prefix}.k"] == [1, 16, 256], mid
            assert m["mean"][f"{prefix}.n_identities"] == people, mid
            assert m["mean"][f"{prefix}.headline"] == m["mean"][f"{prefix}.identity"][-1], mid
            assert 0 <= m["mean"][f"{prefix}.identity_inf"] <= 1, mid
            point = results["privacy_utility"]["points"][mid][f"headline_{face_set}"]
            assert point == m["mean"][f"{prefix}.headline"], mid
    fresh = {
        m["family"]: m["mean"]["pl.accumulation_lfw.fresh_draws"]
        for m in results["methods"].values()
    }
    assert fresh["noise"] == 4 and fresh["dp-embedding"] == 64 and fresh["blur"] == 1
    # Reconstruction: every decoder learns from the LFW portraits plus the ORL auxiliary faces,
    # and G depends on its latent (a collapsed G gave every method the same reconstructions).
    n_aux = {m["mean"]["rr.recon_decoder.n_aux"] for m in results["methods"].values()}
    assert n_aux == {101 + 10 * len(quick.aux_identities)}
    optim_psnr = [
        m["mean"]["rr.recon_optim.psnr"]
        for m in results["methods"].values()
        if m["mean"].get("rr.recon_optim.available")
    ]
    assert len(optim_psnr) >= 3 and len(set(optim_psnr)) > 1
    summary = (out / "summary.md").read_text()
    for heading in (
        "## DTP",
        "## PL",
        "## RR",
        "## SE",
        "## Where msr wins / loses at matched utility",
        "## Headline privacy: identity under accumulation",
    ):
        assert heading in summary
    assert "| raw-teacher |" in summary and "| msr[" in summary
    assert "ORL k=256 (headline)" in summary and "LFW k=256 (headline)" in summary
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 4  # main, accumulation, per-set plots
    for heading in ("Summary", "Headline privacy", "Utility", "Privacy leakage", "Glossary"):
        assert f"{heading}" in report
    assert "identity, linear probe (0-1)" in report and "PSNR (dB)" in report
    for name in ("privacy_utility_orl", "privacy_utility_lfw", "accumulation"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 5000


def test_a_rerun_into_a_used_folder_needs_resume_or_force(tmp_path, capsys):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "raw-s0.json").write_text("{}")
    base = ["bench", "--preset", "quick", "--out", str(tmp_path), "--data", str(tmp_path / "none")]
    assert main(base) == 2
    assert "already holds a benchmark run (1 job result(s)" in capsys.readouterr().err
    assert main([*base, "--resume", "--force"]) == 2
    assert "pick one" in capsys.readouterr().err
    # --force clears the earlier jobs, then the bad data root stops the run before any job
    assert main([*base, "--force"]) == 2
    assert not list((tmp_path / "jobs").glob("*.json"))
