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
