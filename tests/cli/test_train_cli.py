"""`lifeveil train` end to end on a small real image folder."""

import json

from lifeveil.cli.main import main

SMALL = [
    "--input-size",
    "64",
    "--z-dim",
    "8",
    "--epochs",
    "1",
    "--views",
    "1",
    "--quiet",
    "--threads",
    "2",
]


def test_lambda_sweep_writes_one_checkpoint_per_lambda_and_reuses_cache(orl_root, tmp_path, capsys):
    out, cache = tmp_path / "sweep", tmp_path / "cache.safetensors"
    argv = [
        "train",
        str(orl_root / "s1"),
        "--lambdas",
        "0.001,0.1",
        "--out",
        str(out),
        "--cache",
        str(cache),
        *SMALL,
    ]
    assert main(argv) == 0
    assert sorted(p.name for p in out.glob("*.safetensors") if "resume" not in p.name) == [
        "lambda_0.001.safetensors",
        "lambda_0.1.safetensors",
    ]
    sweep = json.loads((out / "sweep.json").read_text())
    assert [c["lambda"] for c in sweep["checkpoints"]] == [0.001, 0.1]
    meta = json.loads((out / "lambda_0.1.json").read_text())
    assert meta["privatizer"]["lam"] == 0.1 and "folder:" in meta["training"]["sources"][0]
    assert cache.is_file()
    capsys.readouterr()
    assert main(argv) == 0
    assert "reusing teacher targets" in capsys.readouterr().out


def test_bad_training_input_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", str(empty), "--out", str(tmp_path / "m.safetensors"), *SMALL]) == 2
    err = capsys.readouterr().err
    assert "no images found" in err and "Traceback" not in err
    assert not (tmp_path / "m.safetensors").exists()


def test_sweep_needs_a_folder(orl_root, tmp_path, capsys):
    argv = [
        "train",
        str(orl_root / "s1"),
        "--lambdas",
        "0.1",
        "--out",
        str(tmp_path / "x.safetensors"),
        *SMALL,
    ]
    assert main(argv) == 2
    assert "folder" in capsys.readouterr().err
