"""The sweep runner: jobs, resume after a crash, failures, local processes, Ray, reports.

A stand-in ``evaluate`` (nearest-centroid probes on the real features) replaces the attack
suite here so the runner is tested on its own; the CLI test runs the real one.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lifeveil.bench.presets import get_preset
from lifeveil.bench.runner import expand_methods, msr_checkpoints, plan_jobs, run_bench
from lifeveil.errors import CheckpointError, DatasetError, UnknownNameError
from lifeveil.privatizer import PrivatizerConfig
from lifeveil.privatizer.checkpoint import save_checkpoint
from lifeveil.privatizer.model import PrivatizerModel

TINY = dataclasses.replace(
    get_preset("quick"),
    name="tiny",
    sun8_train_per_class=2,
    sun8_test_per_class=1,
    victim_identities=("s11", "s12"),
    aux_identities=("s1",),
    clips_max=1,
    clip_max_frames=3,
    se_repeats=1,
    se_frames=3,
    recon_aux_identities=2,
    methods=(("raw-teacher", {}), ("blur", {"sigma": 8.0}), ("msr", {"mode": "mean"})),
)
CALLS: list[str] = []


def write_tiny_checkpoint(path: Path) -> Path:
    """An untrained tiny privatizer (random weights): enough to exercise the msr plumbing."""
    torch.manual_seed(0)
    cfg = PrivatizerConfig(input_size=64, z_dim=16, decoder_hidden=32, student_init="random")
    return save_checkpoint(path, PrivatizerModel(cfg).state_dict(), cfg, {"note": "test"})


def _centroid_acc(
    train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray
) -> float:
    classes = sorted(set(y_train.tolist()))
    centroids = np.stack([train[y_train == c].mean(axis=0) for c in classes])
    pred = np.array(classes)[np.argmin(((test[:, None] - centroids[None]) ** 2).sum(-1), axis=1)]
    return float(np.mean(pred == y_test))


def fake_evaluate(method, data, preset, seed, out_dir: Path) -> dict:
    """Stand-in for evaluate_method: same signature, tiny real measurements, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    CALLS.append(method.id)
    if method.family == "blur" and (out_dir.parent.parent / "FAIL_BLUR").exists():
        raise RuntimeError("simulated crash")
    s_tr, s_te = data.scenes_train, data.scenes_test
    scene = _centroid_acc(
        method.features(s_tr.images), s_tr.labels, method.features(s_te.images), s_te.labels
    )
    faces = method.features(data.faces_victims.images)
    y = data.faces_victims.labels
    half = np.arange(len(y)) % 2 == 0
    ident = _centroid_acc(faces[half], y[half], faces[~half], y[~half])
    fig, ax = plt.subplots()
    ax.imshow(np.zeros((4, 4)))
    fig.savefig(out_dir / "reconstruction_grid.png")
    plt.close(fig)
    return {
        "dtp": {"scene_probe": {"linear_acc": scene, "chance": 0.125}},
        "pl": {
            "identity": {"linear_acc": ident, "chance": 0.5},
            "reid": {"top1": ident, "chance": 0.5},
            "accumulation_orl": fake_accumulation(ident, 0.5),
            "accumulation_lfw": fake_accumulation(ident / 2, 0.25),
        },
        "rr": {"recon": {"ssim": 0.1 + seed}},
    }


def fake_accumulation(single: float, chance: float) -> dict:
    """An accumulation result whose identity grows from ``single`` at k=1 to 1 at k=256."""
    ident = [single, (single + 1) / 2, 1.0]
    return {
        "k": [1, 16, 256],
        "linear_acc": ident,
        "mlp_acc": ident,
        "reid_top1": ident,
        "identity": ident,
        "identity_inf": 0.9,
        "headline": 1.0,
        "headline_inf": 0.9,
        "worst": 1.0,
        "chance": chance,
        "n_identities": round(1 / chance),
        "fresh_draws": 1,
    }


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sweep")
    write_tiny_checkpoint(folder / "lambda_0.01.safetensors")
    return folder


@pytest.fixture(autouse=True)
def _no_default_checkpoint(monkeypatch, tmp_path):
    """Only the checkpoints a test passes count, whether or not a default privatizer ships."""
    monkeypatch.setattr("lifeveil.paths.DEFAULT_CHECKPOINT", tmp_path / "absent.safetensors")
    torch.set_num_threads(2)


def _run(out: Path, ckpt_dir: Path, data_root: Path, **kw) -> object:
    kw.setdefault("workers", 0)
    return run_bench(
        preset=TINY,
        out=out,
        data_root=data_root,
        msr_checkpoints_dir=ckpt_dir,
        evaluate=fake_evaluate,
        progress=False,
        **kw,
    )


@pytest.mark.slow
def test_sweep_writes_jobs_results_summary_and_report(tmp_path, ckpt_dir, orl_root):
    out = tmp_path / "out"
    res = _run(out, ckpt_dir, orl_root.parent, seeds=[0, 1])
    ids = ["raw-teacher", "blur[sigma=8.0]", "msr[ckpt=lambda_0.01,mode=mean]"]
    assert [j["method_id"] for j in res.jobs] == [i for i in ids for _ in (0, 1)]
    assert not res.failed
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["name"] == "tiny" and results["seeds"] == [0, 1]
    assert {"lifeveil", "torch", "numpy", "sklearn", "cv2", "onnxruntime", "av"} <= set(
        results["versions"]
    )
    assert set(results["timings"]["jobs"]) == {j["job"] for j in res.jobs}
    blur = results["methods"]["blur[sigma=8.0]"]
    assert blur["seeds"] == [0, 1] and blur["std"]["rr.recon.ssim"] == pytest.approx(0.5)
    assert (
        blur["mean"]["se.wire_bytes"] > 0
        and results["methods"]["raw-teacher"]["mean"]["se.vector_bytes"] == 2560
    )
    assert results["privacy_utility"]["points"]["raw-teacher"]["scene_rel"] == pytest.approx(1.0)
    assert results["privacy_utility"]["points"]["raw-teacher"]["headline_lfw"] == 1.0
    assert results["privacy_utility"]["headline_k"] == 256
    assert {r["baseline"] for r in results["matched_utility"]} == {"blur[sigma=8.0]"}
    assert {"msr_headline_orl", "baseline_headline_lfw"} <= set(results["matched_utility"][0])
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
    assert "| msr[ckpt=lambda_0.01,mode=mean] |" in summary and " ± " in summary
    assert "| LFW k=256 (headline) |" in summary and "LFW chance = 0.250 (4 people)" in summary
    assert "accumulation_orl" not in summary.split("## PL")[1].split("## RR")[0]
    report = (out / "report.html").read_text()
    # main plot, accumulation, the two per-set plots, then one grid per method (3 methods)
    assert report.count("data:image/png;base64,") == 4 + 3
    assert (
        report.index("id='summary'") < report.index("id='headline'") < report.index("id='glossary'")
    )
    assert "<p class='verdict'>Utility: msr[ckpt=lambda_0.01,mode=mean]" in report
    assert "scene accuracy, linear probe (0-1)" in report  # human names, units
    assert "dtp.scene_probe.linear_acc" not in report  # no raw keys as column names
    assert "## Summary" in summary and "Privacy: an attacker who averages k=256" in summary
    for name in ("privacy_utility_orl", "privacy_utility_lfw", "accumulation"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    assert len(list((out / "jobs").glob("*.json"))) == 6


def test_resume_skips_finished_jobs_and_retries_failed_ones(tmp_path, ckpt_dir, orl_root):
    out = tmp_path / "out"
    out.mkdir()
    (out / "FAIL_BLUR").touch()
    first = _run(out, ckpt_dir, orl_root.parent, methods=["raw-teacher", "blur"])
    assert [f["job"] for f in first.failed] == ["blur_sigma=8.0___seed0"]
    failed_file = out / "jobs" / "blur_sigma=8.0___seed0.failed.json"
    assert "simulated crash" in json.loads(failed_file.read_text())["traceback"]
    assert "## Failed jobs" in (out / "summary.md").read_text()
    (out / "FAIL_BLUR").unlink()
    CALLS.clear()
    second = _run(out, ckpt_dir, orl_root.parent, methods=["raw-teacher", "blur"], resume=True)
    assert CALLS == ["blur[sigma=8.0]"]  # raw-teacher was finished: skipped
    assert not second.failed and len(second.jobs) == 2 and not failed_file.exists()
    CALLS.clear()
    _run(out, ckpt_dir, orl_root.parent, methods=["raw-teacher"], resume=True, seeds=[0])
    assert CALLS == []
    changed = dataclasses.replace(TINY, accumulation_k=(1, 3))  # another config: stale results
    run_bench(
        preset=changed,
        out=out,
        data_root=orl_root.parent,
        methods=["raw-teacher"],
        resume=True,
        evaluate=fake_evaluate,
        workers=0,
        progress=False,
    )
    assert CALLS == ["raw-teacher"]


@pytest.mark.slow
def test_local_worker_processes_run_the_same_jobs(tmp_path, ckpt_dir, orl_root):
    out = tmp_path / "out"
    res = _run(
        out, ckpt_dir, orl_root.parent, methods=["raw-teacher", "blur"], workers=1, threads=2
    )
    assert not res.failed and len(res.jobs) == 2
    assert all(j["threads"] == 2 for j in res.jobs)
    import os

    assert all(j["pid"] != os.getpid() for j in res.jobs)


@pytest.mark.slow
def test_ray_runs_the_same_job_function(tmp_path, ckpt_dir, orl_root):
    ray = pytest.importorskip("ray")

    def evaluate(method, data, preset, seed, out_dir):  # by value: Ray workers cannot import tests
        feats = method.features(data.scenes_test.images)
        (out_dir / "grid.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        return {"dtp": {"scene_probe": {"linear_acc": float(feats.shape[1] > 0)}}}

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        res = run_bench(
            preset=dataclasses.replace(
                TINY, methods=(("raw-teacher", {}), ("blur", {"sigma": 4.0}))
            ),
            out=tmp_path / "out",
            data_root=orl_root.parent,
            ray="local",
            evaluate=evaluate,
            progress=False,
            threads=1,
        )
    finally:
        ray.shutdown()
    assert not res.failed and len(res.jobs) == 2
    assert (tmp_path / "out" / "jobs" / "raw-teacher__seed0" / "grid.png").is_file()
    assert (tmp_path / "out" / "report.html").is_file()


def test_bad_names_and_paths_are_explained(tmp_path, ckpt_dir, orl_root):
    with pytest.raises(UnknownNameError, match="unknown method 'blurr'; available: blur"):
        _run(tmp_path / "o", ckpt_dir, orl_root.parent, methods=["blurr"])
    with pytest.raises(UnknownNameError, match="no setting in preset 'tiny'"):
        _run(tmp_path / "o", ckpt_dir, orl_root.parent, methods=["noise"])
    with pytest.raises(UnknownNameError, match="unknown preset 'huge'"):
        run_bench(preset="huge", out=tmp_path / "o")
    with pytest.raises(DatasetError, match="benchmark data root lacks scenes-sun8"):
        _run(tmp_path / "o", ckpt_dir, orl_root)
    with pytest.raises(CheckpointError, match="pass --msr-checkpoints DIR"):
        msr_checkpoints(None)
    with pytest.raises(CheckpointError, match="no NAME.safetensors"):
        msr_checkpoints(tmp_path)


def test_msr_settings_expand_per_checkpoint(ckpt_dir, tmp_path):
    ckpts = msr_checkpoints(ckpt_dir)
    assert [label for label, _ in ckpts] == ["lambda_0.01"]
    two = [("default", Path("/a.safetensors")), *ckpts]
    settings = expand_methods((("blur", {"sigma": 1}), ("msr", {"mode": "sample"})), two)
    assert [p.get("ckpt") for f, p in settings] == [None, "default", "lambda_0.01"]
    jobs = plan_jobs(
        dataclasses.replace(TINY, seeds=(0, 1)),
        tmp_path,
        checkpoints=ckpts,
        data_root=None,
        threads=1,
    )
    assert len({j.job_id for j in jobs}) == len(jobs) == 6


def test_detector_coverage_counts_faces_the_baseline_found(orl_root, skimage_images):
    from types import SimpleNamespace

    from lifeveil.bench.methods import create_method
    from lifeveil.bench.runner import detector_coverage
    from lifeveil.data import load_orl

    faces = load_orl(orl_root, ["s11"]).images[:2]
    data = SimpleNamespace(
        faces_victims=SimpleNamespace(images=faces),
        bystanders=SimpleNamespace(images=[skimage_images[1], *faces]),  # coffee cup: no face
    )
    cover = detector_coverage(create_method("face-blur", {"sigma": 4.0}, 0), data)
    assert cover == {"found_victims": 1.0, "found_bystanders": pytest.approx(2 / 3)}


def _agg(family: str, scene: float, single: float, headline: float) -> dict:
    prefix = "pl.accumulation_lfw"
    mean = {
        "dtp.scene_probe.linear_acc": scene,
        "pl.identity_probe.linear_acc": single,
        f"{prefix}.k": [1.0, 16.0, 256.0],
        f"{prefix}.identity": [single, headline, headline],
        f"{prefix}.identity_inf": headline,
        f"{prefix}.headline": headline,
        f"{prefix}.chance": 0.1,
    }
    return {"family": family, "params": {}, "method": {}, "seeds": [0], "mean": mean, "std": {}}


def test_matched_utility_verdicts_and_plots_use_the_accumulation_headline():
    from lifeveil.bench.report import (
        accumulation_plot,
        headline_tables,
        matched_sentences,
        matched_utility,
        plot_points,
    )

    # Single-release identity says msr leaks less; the accumulation headline says the opposite.
    agg = {
        "raw-teacher": _agg("raw-teacher", 0.8, 0.9, 1.0),
        "msr[ckpt=a,mode=sample]": _agg("msr", 0.6, 0.1, 0.8),
        "blur[sigma=8]": _agg("blur", 0.6, 0.5, 0.3),
    }
    pp = plot_points(agg)
    assert pp["points"]["msr[ckpt=a,mode=sample]"]["headline_lfw"] == 0.8
    assert pp["headline_chance"]["headline_lfw"] == 0.1 and pp["headline_k"] == 256
    (row,) = matched_utility(agg, pp)
    assert row["matched"] and row["headline_lfw_winner"] == "baseline"
    assert row["headline_orl_winner"] is None  # no ORL result: no verdict
    text = " ".join(matched_sentences([row]))
    assert "LFW identity under accumulation 0.800 vs 0.300 (the baseline leaks less)" in text
    main, details = headline_tables(agg, pp)
    assert main.header == ["method", "scene (rel. to raw)", "LFW k=1", "LFW k=16"] + [
        "LFW k=256 (headline)",
        "LFW inf",
    ]
    assert main.rows[1] == ["msr[ckpt=a,mode=sample]", "0.750", "0.100", "0.800", "0.800", "0.800"]
    assert ("LFW chance", "0.100") in main.constant
    assert details.header[:2] == ["method", "fresh draws"] and len(details.rows) == 3
    assert details.rows[0][1] == "–"  # not reported: no number invented
    assert accumulation_plot(agg)[:4] == b"\x89PNG"
