"""``lifeveil server init --store postgresql://...`` and the admin commands on PostgreSQL;
``lifeveil server bench`` on a tiny setting."""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

import pytest

from lifeveil.cli.main import main
from lifeveil.errors import InputError
from lifeveil.server.cli import store_overrides


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_store_option_is_a_name_or_a_postgresql_url():
    assert store_overrides(None) == {}
    assert store_overrides("sqlite") == {"store": "sqlite"}
    assert store_overrides("postgres://h/db")["store"] == "postgresql"
    with pytest.raises(InputError, match="only postgresql"):
        store_overrides("mysql://h/db")


def test_init_on_postgresql_then_manage_it(embedded_postgres, tmp_path: Path, capsys):
    dsn, d = embedded_postgres.new_database(), str(tmp_path / "srv")
    init = _json(capsys, "server", "init", "--data-dir", d, "--z-dim", "8", "--store", dsn)
    assert init["admin_token"].startswith("lva_")
    saved = tomllib.loads((tmp_path / "srv" / "server.toml").read_text())
    assert saved["store"] == "postgresql" and saved["store_dsn"] == dsn
    assert not (tmp_path / "srv" / "lifeveil.db").exists()  # nothing went to SQLite
    tenant = _json(capsys, "server", "add-tenant", "home", "--data-dir", d)
    assert tenant["token"].startswith("lvu_")
    _json(capsys, "server", "register-device", "--tenant", "home", "--name", "cam", "--data-dir", d)
    status = _json(capsys, "server", "status", "--data-dir", d)
    assert status["tenants"][0]["devices"][0]["name"] == "cam"


def test_bench_runs_and_reports_recall(tmp_path: Path, capsys):
    pytest.importorskip("usearch")
    out = tmp_path / "bench.json"
    argv = ["server", "bench", "--n", "600", "--queries", "10", "--extra", "200", "--z-dim", "16"]
    assert main([*argv, "--out", str(out)]) == 0
    [report] = json.loads(out.read_text())
    summary = report["summary"]
    assert summary["n"] == 600 and summary["recall_at_10"] >= 0.9
    assert summary["query_p50_ms"] > 0 and summary["preload_z_per_s"] > 0
    assert summary["ingest_alone_z_per_s"] > 0 and summary["ingest_while_querying_z_per_s"] > 0
    assert summary["query_rate_during_ingest"] == "back to back"
    assert len(summary["ingest_drops_per_round"]) == 5  # the default --rounds
    assert main([*argv, "--query-rate", "-1"]) == 2
    assert main([*argv, "--rounds", "0"]) == 2


def test_a_steady_slowdown_is_not_counted_as_a_drop():
    from lifeveil.server.store_bench_stretches import Stretches

    drifting = Stretches(alone=[100.0, 90.0, 80.0], querying=[95.0, 85.0])  # no query effect
    assert drifting.drops == pytest.approx([0.0, 0.0])
    assert drifting.alone_spread == pytest.approx(0.105, abs=0.001)  # 10 % then 11.1 %
    slowed = Stretches(alone=[100.0, 100.0], querying=[75.0])
    assert slowed.summary()["ingest_drop_while_querying"] == 0.25
    assert slowed.summary()["ingest_stretches_querying_z_per_s"] == [75]
    assert Stretches([], []).summary() == {}


def test_bench_paces_its_queries_and_alternates_ingest_stretches(tmp_path: Path):
    from lifeveil.server import store_bench, store_bench_stretches
    from lifeveil.server.sqlite_store import SQLiteStore

    class Counting(SQLiteStore):
        querying: list[bool] = []

        def put_records_many(self, batches):  # noqa: ANN001, ANN202
            self.querying.append(loop.active.is_set())
            return super().put_records_many(batches)

    store = Counting(tmp_path / "z.db", 8, synchronous="NORMAL")
    tenant = store.create_tenant("t")
    devices = [store.add_principal("device", "cam", "h", tenant.id)]
    queries = store_bench.query_like(store_bench.synthetic_z(50, 8, 0), 5, 0)
    loop = store_bench_stretches.QueryThread(store, tenant.id, queries, 3, rate=20.0)
    loop.start()
    feeder = store_bench._Feeder(store, devices, batch=10)
    z = store_bench.synthetic_z(500, 8, 1)
    stretches = store_bench_stretches.alternate(feeder, loop, z, rounds=2)
    loop.active.set()
    time.sleep(0.5)
    loop.stop()
    assert len(stretches.alone) == 3 and len(stretches.querying) == 2
    assert min(stretches.alone + stretches.querying) > 0
    assert (
        Counting.querying == [False] * 10 + [True] * 10 + [False] * 10 + [True] * 10 + [False] * 10
    )  # 5 stretches of 100 z, 10 calls each: alone first and last, queries on between
    assert 5 <= len(loop.latencies) <= 16  # paced at 20/s: about 10 in 0.5 s plus the stretches


def test_init_with_an_unreachable_database_says_so_and_saves_nothing(
    tmp_path: Path, capsys, monkeypatch
):
    pytest.importorskip("psycopg")
    from lifeveil.server import pg_store_pool

    monkeypatch.setattr(pg_store_pool, "RETRY_DELAYS_S", (0.01,))
    dsn = f"postgresql://nobody@/lifeveil?host={tmp_path}"  # nothing listens there
    code = main(["server", "init", "--data-dir", str(tmp_path / "srv"), "--store", dsn])
    err = capsys.readouterr().err
    assert code != 0 and "is unavailable" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "srv" / "server.toml").exists()
