"""``lifeveil server ...`` subcommands, run in-process through the real CLI dispatcher."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from lifeveil.cli.main import main
from lifeveil.server import admin
from lifeveil.server.config import ServerConfig
from lifeveil.transport.record import ZRecord


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_init_add_tenant_register_train_status(tmp_path: Path, capsys):
    d = str(tmp_path / "srv")
    init = run_json(capsys, "server", "init", "--data-dir", d, "--z-dim", "8")
    assert init["wire"] == "1;8;fp16" and init["admin_token"].startswith("lva_")
    assert (tmp_path / "srv" / "tls" / "key.pem").stat().st_mode & 0o077 == 0
    assert (tmp_path / "srv").stat().st_mode & 0o077 == 0
    again = run_json(capsys, "server", "init", "--data-dir", d)
    assert "admin_token" not in again and again["cert_sha256"] == init["cert_sha256"]

    tenant = run_json(capsys, "server", "add-tenant", "home", "--data-dir", d)
    assert tenant["token"].startswith("lvu_")
    device = run_json(
        capsys, "server", "register-device", "--tenant", "home", "--name", "cam", "--data-dir", d
    )
    assert device["token"].startswith("lvd_") and device["wire"] == "1;8;fp16"

    # The device uploads 20 records (written straight to the store here).
    store = admin.open_store(ServerConfig.load(d))
    home = store.get_tenant("home")
    cam = store.get_device(home.id, "cam")  # type: ignore[union-attr]
    rng = np.random.default_rng(0)
    labels = ["still" if i % 2 else "moving" for i in range(20)]
    zs = [(np.eye(8)[i % 2] * 3 + rng.normal(0, 0.3, 8)).astype(np.float32) for i in range(20)]
    store.put_records(cam, [ZRecord(i, i, z) for i, z in enumerate(zs)])  # type: ignore[arg-type]
    store.close()

    by_ref = tmp_path / "labels.csv"
    with open(by_ref, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["device", "seq", "label"])
        writer.writerows(["cam", i, labels[i]] for i in range(20))
    head = run_json(
        capsys, "server", "train-head", "--tenant", "home", "--name", "motion",
        "--labels", str(by_ref), "--data-dir", d,
    )  # fmt: skip
    assert head["classes"] == ["moving", "still"] and head["train_accuracy"] == 1.0

    inline = tmp_path / "inline.csv"
    with open(inline, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["label", *[f"z{i}" for i in range(8)]])
        writer.writerows([labels[i], *zs[i].tolist()] for i in range(20))
    head = run_json(
        capsys, "server", "train-head", "--tenant", "home", "--name", "inline",
        "--labels", str(inline), "--data-dir", d,
    )  # fmt: skip
    assert head["n_train"] == 20

    status = run_json(capsys, "server", "status", "--data-dir", d)
    [home_status] = status["tenants"]
    assert home_status["heads"] == ["inline", "motion"]
    assert [(x["name"], x["n_records"]) for x in home_status["devices"]] == [("cam", 20)]

    run_json(
        capsys, "server", "revoke-device", "--tenant", "home", "--name", "cam", "--data-dir", d
    )
    assert run_json(capsys, "server", "status", "--data-dir", d)["tenants"][0]["devices"] == []


def test_errors_are_one_line_and_nonzero(tmp_path: Path, capsys):
    d = str(tmp_path / "srv")
    code, _, err = run(capsys, "server", "add-tenant", "x", "--data-dir", d)
    assert code == 2 and "lifeveil server init" in err and "Traceback" not in err
    run(capsys, "server", "init", "--data-dir", d)
    code, _, err = run(
        capsys, "server", "register-device", "--tenant", "nope", "--name", "c", "--data-dir", d
    )
    assert code == 2 and "unknown tenant 'nope'" in err
    code, _, err = run(capsys, "server", "add-tenant", "bad name!", "--data-dir", d)
    assert code == 2 and "invalid" in err
    code, _, err = run(capsys, "server", "init", "--data-dir", d, "--z-dim", "32")
    assert code == 2 and "dimension" in err


def test_bad_labels_csv(tmp_path: Path, capsys):
    d = str(tmp_path / "srv")
    run(capsys, "server", "init", "--data-dir", d)
    run(capsys, "server", "add-tenant", "home", "--data-dir", d)
    bad = tmp_path / "bad.csv"
    bad.write_text("foo,bar\n1,2\n")
    code, _, err = run(
        capsys, "server", "train-head", "--tenant", "home", "--name", "h",
        "--labels", str(bad), "--data-dir", d,
    )  # fmt: skip
    assert code == 2 and "device,seq,label" in err
    missing = tmp_path / "missing.csv"
    missing.write_text("device,seq,label\ncam,0,a\ncam,1,b\n")
    code, _, err = run(
        capsys, "server", "train-head", "--tenant", "home", "--name", "h",
        "--labels", str(missing), "--data-dir", d,
    )  # fmt: skip
    assert code == 2 and "no stored record" in err
