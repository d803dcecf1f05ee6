"""``lifeveil server migrate`` and ``lifeveil server spaces``, through the real CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lifeveil.privatizer.adapt import Adapter
from lifeveil.server import admin
from lifeveil.server.config import ServerConfig
from lifeveil.transport.record import ZRecord, space_tag

from .test_server_cli import run, run_json

V1, V2 = "1111aaaabbbbcccc", "2222aaaabbbbcccc"


@pytest.fixture
def data_dir(tmp_path: Path, capsys) -> str:
    """A data dir (d = 8) whose tenant ``home`` holds 25 z of version V1."""
    d = str(tmp_path / "srv")
    run_json(capsys, "server", "init", "--data-dir", d, "--z-dim", "8")
    run_json(capsys, "server", "add-tenant", "home", "--data-dir", d)
    run_json(
        capsys, "server", "register-device", "--tenant", "home", "--name", "cam", "--data-dir", d
    )
    store = admin.open_store(ServerConfig.load(d))
    home = store.get_tenant("home")
    assert home is not None
    store.register_space(home.id, V1, 8)
    cam = store.get_device(home.id, "cam")
    assert cam is not None
    rng = np.random.default_rng(0)
    records = [
        ZRecord(i, i, rng.standard_normal(8).astype(np.float32), space_tag(V1)) for i in range(25)
    ]
    store.put_records(cam, records)
    store.close()
    return d


def _adapter(tmp_path: Path, d_new: int = 8) -> str:
    weight = np.eye(d_new, 8, dtype=np.float32)
    path = tmp_path / f"a{d_new}.safetensors"
    Adapter(weight, np.zeros(d_new, np.float32), V1, V2, 10, 1.0).save(path)
    return str(path)


def test_migrate_prints_progress_and_is_resumable(data_dir: str, tmp_path: Path, capsys):
    adapter = _adapter(tmp_path)
    argv = ("server", "migrate", "--tenant", "home", "--adapter", adapter, "--data-dir", data_dir)
    code, out, err = run(capsys, *argv, "--batch", "10")
    assert code == 0, err
    assert "10 of 25 z (40 %)" in out and "migration 1 done: 25 z in space 2222aaaabbbbcccc" in out
    again = run_json(capsys, *argv)  # rerun: nothing left to do, nothing written twice
    assert (again["status"], again["done"]) == ("done", 25)
    listed = run_json(capsys, "server", "spaces", "--tenant", "home", "--data-dir", data_dir)
    assert [(s["version"], s["n_records"]) for s in listed["spaces"]] == [(V1, 25), (V2, 25)]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: str(t / "missing.safetensors"), "cannot read the adapter file"),
        (lambda t: _adapter(t, d_new=16), "a server stores one z_dim"),
        (lambda t: (t / "junk").write_bytes(b"junk" * 10) and str(t / "junk"), "not a LifeVeil"),
    ],
)
def test_migrate_refusals_are_one_line(data_dir: str, tmp_path: Path, capsys, make, message):
    argv = ("server", "migrate", "--tenant", "home", "--adapter", make(tmp_path))
    code, out, err = run(capsys, *argv, "--data-dir", data_dir)
    assert code != 0 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
