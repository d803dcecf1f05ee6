"""Adapters between privatizer versions (issue 14 item 2): the math, the file, the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lifeveil.cli.main import main
from lifeveil.errors import CheckpointError, ShapeError
from lifeveil.paths import shared_data_root
from lifeveil.privatizer.adapt import (
    Adapter,
    code_levels,
    fit_adapter,
    fit_mlp_adapter,
    fit_report,
    fit_snap,
)


def test_fit_recovers_a_linear_map_and_survives_a_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    old = rng.standard_normal((500, 8))
    true_w, true_b = rng.standard_normal((5, 8)), rng.standard_normal(5)
    new = old @ true_w.T + true_b
    adapter = fit_adapter(old, new, "old1", "new2", ridge=1e-6)
    np.testing.assert_allclose(adapter.weight, true_w, atol=1e-4)
    np.testing.assert_allclose(adapter.bias, true_b, atol=1e-4)
    assert fit_report(adapter, old, new)["r2"] > 0.999999
    loaded = Adapter.load(adapter.save(tmp_path / "a.safetensors"))
    assert (loaded.old_version, loaded.new_version, loaded.fitted_on) == ("old1", "new2", 500)
    np.testing.assert_array_equal(loaded.apply(old[:3]), adapter.apply(old[:3]))


def test_ridge_shrinks_towards_the_mean() -> None:
    rng = np.random.default_rng(1)
    old, new = rng.standard_normal((50, 4)), rng.standard_normal((50, 3))
    heavy = fit_adapter(old, new, "a", "b", ridge=1e9)
    np.testing.assert_allclose(heavy.apply(old), np.broadcast_to(new.mean(0), (50, 3)), atol=1e-3)


def test_snapping_lands_on_the_code_grid_with_the_new_codes_level_shares(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    old = rng.standard_normal((2000, 6))
    grid = code_levels(np.array([[-1.0, -0.5, 0.0, 0.5, 1.0]]), 5)
    assert grid is not None and code_levels(np.array([[0.3]]), 5) is None  # off-grid: no code
    # a new code that is a coarse function of the old z, with skewed level shares
    new = grid[np.clip(np.round(old[:, :3] * 0.8 + 1.2), 0, 4).astype(int)]
    linear = fit_adapter(old, new, "old1", "new2")
    snapped = fit_snap(linear, old, new, grid)
    out = snapped.apply(old)
    assert np.isin(out, grid).all() and snapped.snaps and not linear.snaps
    for j in range(3):  # each level as often as the new code takes it (quantile matching)
        for level in grid:
            assert abs((out[:, j] == level).mean() - (new[:, j] == level).mean()) < 0.01
    assert fit_report(snapped, old, new)["code_agreement"] > 0.8
    loaded = Adapter.load(snapped.save(tmp_path / "s.safetensors"))
    np.testing.assert_array_equal(loaded.apply(old[:50]), out[:50])
    assert "snapped to 5 levels" in loaded.describe()
    plain = Adapter.load(linear.save(tmp_path / "p.safetensors"))  # a linear file: no snapping
    assert not plain.snaps and not np.isin(plain.apply(old[:5]), grid).all()


def test_a_hidden_layer_fits_what_a_linear_map_cannot(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    old = rng.standard_normal((1500, 4)).astype(np.float32)
    new = np.abs(old[:, :2]) - 0.8  # not linear in old z
    linear = fit_report(fit_adapter(old, new, "a", "b"), old, new)["r2"]
    mlp = fit_mlp_adapter(old, new, "a", "b", hidden=32, max_epochs=80)
    assert fit_report(mlp, old, new)["r2"] > 0.9 > 0.1 > linear
    assert (mlp.old_dim, mlp.new_dim) == (4, 2) and "32 hidden ReLU units" in mlp.describe()
    loaded = Adapter.load(mlp.save(tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(loaded.apply(old[:20]), mlp.apply(old[:20]))


def test_bad_input_is_refused(tmp_path: Path) -> None:
    z = np.zeros((4, 3))
    with pytest.raises(ShapeError):
        fit_adapter(z, np.zeros((5, 3)), "a", "b")
    with pytest.raises(CheckpointError, match="same version"):
        fit_adapter(z, z, "a", "a")
    adapter = fit_adapter(np.eye(3), np.eye(3), "a", "b")
    with pytest.raises(ShapeError, match=r"\(N, 3\)"):
        adapter.apply(np.zeros((2, 4)))
    not_adapter = tmp_path / "x.safetensors"
    not_adapter.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable adapter"):
        Adapter.load(not_adapter)


def test_adapt_command_between_two_shipped_privatizers(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    frames = shared_data_root() / "scenes-intel6"
    folder = sorted(p for p in frames.iterdir() if p.is_dir())[0]
    out = tmp_path / "plain_to_invariant.safetensors"
    argv = ["adapt", "fsq_plain", "fsq_invariant", "--frames", str(folder), "--out", str(out)]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    adapter = Adapter.load(out)
    assert adapter.old_dim == adapter.new_dim == 64 and adapter.fitted_on >= 100
    assert adapter.old_version != adapter.new_version
    assert result["fit"]["mean_cosine"] > 0.8 and result["fit"]["code_agreement"] > 0.5
    assert adapter.snaps and np.isin(adapter.apply(np.zeros((1, 64))), adapter.levels).all()
    assert main(argv) == 2 and "already exists" in capsys.readouterr().err
    assert main(["adapt", "no_such_model", "fsq_invariant", "--frames", str(folder),
                 "--out", str(tmp_path / "o.safetensors")]) == 2  # fmt: skip
    assert "no shipped privatizer of that name" in capsys.readouterr().err


def test_public_faces_are_lfw_training_people_the_benchmark_never_attacks() -> None:
    from lifeveil.bench.presets import get_preset
    from lifeveil.cli.adapt import PUBLIC_FACES_FROM, public_faces
    from lifeveil.data.datasets import lfw_identity_split

    root = shared_data_root() / "faces-lfw"
    split = lfw_identity_split(root)
    used = split["train"][PUBLIC_FACES_FROM:]
    assert not set(used) & set(split["heldout"])  # never the evaluated people
    assert get_preset("full").lfw_aux_identities <= PUBLIC_FACES_FROM  # nor the attacker's aux
    rows = (root / "labels.csv").read_text().splitlines()[1:]
    expected = sum(1 for row in rows if row.split(",")[1] in set(used))
    assert len(public_faces()) == expected > 1000
