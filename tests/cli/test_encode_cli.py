"""`lifeveil encode` end to end on real media, and its error handling."""

import csv
import shutil

import numpy as np
import pytest

from lifeveil.cli.main import main


def _encode(*argv):
    return main(["encode", "--quiet", "--threads", "2", *map(str, argv)])


def test_encode_video_and_images(tiny_checkpoint, talking_face_clip, orl_root, tmp_path, capsys):
    out = tmp_path / "z"
    rc = _encode(
        "--model",
        tiny_checkpoint,
        "--fps",
        4,
        "--dtype",
        "float32",
        talking_face_clip,
        orl_root / "s1",
        "--out",
        out,
    )
    assert rc == 0
    z = np.load(out / "z.npy")
    rows = list(csv.DictReader((out / "index.csv").read_text().splitlines()))
    video_rows = [r for r in rows if r["source"].endswith(".mp4")]
    assert len(z) == len(rows) and z.shape[1] == 16 and z.dtype == np.float32
    assert len([r for r in rows if r["source"].endswith(".pgm")]) == 10
    times = [float(r["timestamp_s"]) for r in video_rows]
    assert times == sorted(times) and len(times) >= 4
    assert np.allclose(np.diff(times), 0.25, atol=0.05)  # sampled at 4 fps
    assert "wrote" in capsys.readouterr().out


def test_float16_output_is_default(tiny_checkpoint, orl_root, tmp_path):
    assert _encode("--model", tiny_checkpoint, orl_root / "s2" / "1.pgm", "--out", tmp_path) == 0
    assert np.load(tmp_path / "z.npy").dtype == np.float16


@pytest.mark.parametrize(
    "kind", ["missing", "empty", "corrupt_video", "corrupt_image", "empty_folder", "bad_suffix"]
)
def test_bad_input_is_one_line_and_writes_nothing(
    kind, tiny_checkpoint, orl_root, tmp_path, capsys
):
    bad = {
        "missing": tmp_path / "nope.mp4",
        "empty": tmp_path / "empty.mp4",
        "corrupt_video": tmp_path / "corrupt.mp4",
        "corrupt_image": tmp_path / "corrupt.jpg",
        "empty_folder": tmp_path / "empty_dir",
        "bad_suffix": tmp_path / "notes.txt",
    }[kind]
    if kind == "empty":
        bad.write_bytes(b"")
    elif kind in ("corrupt_video", "corrupt_image"):
        bad.write_bytes(b"this is not media" * 100)
    elif kind == "empty_folder":
        bad.mkdir()
    elif kind == "bad_suffix":
        bad.write_text("hello")
    out = tmp_path / "out"
    rc = _encode("--model", tiny_checkpoint, orl_root / "s1" / "1.pgm", bad, "--out", out)
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert bad.name in err
    assert not out.exists() or not any(out.iterdir())


def test_wrong_checkpoint_is_a_clear_error(tmp_path, orl_root, capsys):
    ckpt = tmp_path / "x.safetensors"
    ckpt.write_bytes(b"nonsense")
    assert _encode("--model", ckpt, orl_root / "s1" / "1.pgm", "--out", tmp_path / "o") != 0
    err = capsys.readouterr().err
    assert "x.json" in err and "Traceback" not in err


def test_truncated_video_keeps_decodable_frames(tiny_checkpoint, talking_face_clip, tmp_path):
    cut = tmp_path / "cut.mp4"
    data = talking_face_clip.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    # A truncated MP4 may lose its index: either it decodes some frames or it is a clear error.
    rc = _encode("--model", tiny_checkpoint, cut, "--out", tmp_path / "o")
    assert rc in (0, 2)


def test_export_cli(tiny_checkpoint, tmp_path, capsys):
    ckpt = tmp_path / "m.safetensors"
    shutil.copy(tiny_checkpoint, ckpt)
    shutil.copy(tiny_checkpoint.with_suffix(".json"), ckpt.with_suffix(".json"))
    assert main(["export", "--model", str(ckpt)]) == 0
    assert ckpt.with_suffix(".onnx").is_file()
    assert "onnxruntime check" in capsys.readouterr().out
    # The old flag name works for one more release, with a warning.
    assert main(["export", "--onnx", str(ckpt), "--out", str(tmp_path / "old.onnx")]) == 0
    out, err = capsys.readouterr()
    assert (
        "--onnx is deprecated" in err and "use --model" in err and (tmp_path / "old.onnx").is_file()
    )
