"""`lifeveil query` against a real server over TLS, and its one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from lifeveil.cli.main import main
from lifeveil.server import admin
from lifeveil.transport.client import QueryClient
from lifeveil.transport.frame import encode_frame
from lifeveil.transport.record import ZRecord

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from server.server_helpers import ServerProcess, free_port, server_config  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    """A running server with tenant home, 6 stored z from device cam, and a user token file."""
    root = tmp_path_factory.mktemp("query")
    config = server_config(root / "srv")
    admin.init_data_dir(config)
    store = admin.open_store(config)
    _, user = admin.create_tenant(store, "home")
    store.close()
    server = ServerProcess(config, free_port(), root / "server.log")
    server.start()
    assert user is not None
    token_file = root / "user.token"
    token_file.write_text(user.token + "\n")
    zs = np.random.default_rng(0).standard_normal((6, config.z_dim)).astype(np.float32)
    cafile = str(config.cert_path)
    with QueryClient(server.base_url, user.token, wire=config.wire, cafile=cafile) as client:
        creds = client.register_device("cam")
    import httpx

    body = b"".join(
        encode_frame(ZRecord(i, 1_000_000 * i, z), config.wire) for i, z in enumerate(zs)
    )
    r = httpx.post(
        server.base_url + "/v1/frames",
        content=body,
        headers={
            "Authorization": f"Bearer {creds.token}",
            "Content-Type": "application/octet-stream",
        },
        verify=cafile,
    )
    assert r.status_code == 200
    np.save(root / "z.npy", zs)
    try:
        yield server, token_file, root
    finally:
        server.stop()


def _args(server: ServerProcess, token_file: Path) -> list[str]:
    return [
        "--server",
        server.base_url,
        "--token-file",
        str(token_file),
        "--cafile",
        str(server.config.cert_path),
    ]


def test_count_list_and_knn(live, capsys):
    server, token_file, root = live
    assert main(["query", "count", *_args(server, token_file), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"device": "cam", "records": 6}, {"device": "(total)", "records": 6}]
    assert (
        main(
            [
                "query",
                "knn",
                *_args(server, token_file),
                "--z",
                str(root / "z.npy"),
                "--row",
                "2",
                "-k",
                "3",
                "--json",
            ]
        )
        == 0
    )
    hits = json.loads(capsys.readouterr().out)
    assert (
        hits[0]["seq"] == 2 and hits[0]["score"] == pytest.approx(1.0, abs=1e-3) and len(hits) == 3
    )
    assert main(["query", "list", *_args(server, token_file)]) == 0
    out = capsys.readouterr().out
    assert "cam" in out and "n_records" in out


def test_errors_are_one_line(live, capsys, tmp_path: Path):
    server, token_file, root = live
    assert (
        main(["query", "count", "--server", server.base_url, "--token-file", str(token_file)]) != 0
    )
    err = capsys.readouterr().err
    assert "--cafile" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    down = ["--server", f"https://127.0.0.1:{free_port()}", "--token-file", str(token_file)]
    assert main(["query", "count", *down]) != 0
    assert "cannot reach the server" in capsys.readouterr().err
    bad = tmp_path / "bad.token"
    bad.write_text("lvu_not-a-real-token-at-all\n")
    assert main(["query", "count", *_args(server, bad)]) != 0
    assert "401" in capsys.readouterr().err
    assert (
        main(
            ["query", "knn", *_args(server, token_file), "--z", str(root / "z.npy"), "--row", "99"]
        )
        != 0
    )
    assert "--row" in capsys.readouterr().err


# Runs last in this module: registering a space changes the tenant's default space.
def test_spaces_migrate_and_space_option(live, capsys, tmp_path: Path):
    import time

    from lifeveil.privatizer.adapt import Adapter

    server, token_file, root = live
    v1, v2 = "1111aaaabbbbcccc", "2222aaaabbbbcccc"
    token = token_file.read_text().strip()
    cafile = str(server.config.cert_path)
    with QueryClient(server.base_url, token, wire=server.config.wire, cafile=cafile) as client:
        assert client.register_space(v1, server.config.z_dim)["tag"] == 0x1111
    knn = ["query", "knn", *_args(server, token_file), "--z", str(root / "z.npy"), "--json"]
    assert main([*knn, "--space", "undeclared"]) == 0  # the 6 z uploaded with no version
    assert len(json.loads(capsys.readouterr().out)) == 6
    assert main(knn) == 0  # the default is now v1, which holds none
    assert json.loads(capsys.readouterr().out) == []
    assert main(["query", "count", *_args(server, token_file), "--space", v1, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"space": v1, "records": 0}]

    d = server.config.z_dim
    adapter = Adapter(np.eye(d, dtype=np.float32), np.zeros(d, np.float32), v1, v2, 5, 1.0)
    path = adapter.save(tmp_path / "a.safetensors")
    assert main(["query", "migrate", *_args(server, token_file), "--adapter", str(path)]) == 0
    assert "migration 1 running" in capsys.readouterr().out
    for _ in range(100):
        assert main(["query", "spaces", *_args(server, token_file), "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        if listed["migrations"][0]["status"] == "done":
            break
        time.sleep(0.1)
    assert [s["version"] for s in listed["spaces"]] == [None, v1, v2]
    assert main(["query", "spaces", *_args(server, token_file)]) == 0
    assert "(undeclared)" in capsys.readouterr().out

    for argv, message in (
        ([*knn, "--space", "ffffaaaabbbbcccc"], "not registered"),
        (["query", "count", *_args(server, token_file), "--space", "nope"], "not a space"),
        (["query", "migrate", *_args(server, token_file), "--adapter", "gone"], "no such adapter"),
    ):
        assert main(argv) != 0
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
