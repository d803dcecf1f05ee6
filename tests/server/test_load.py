"""Load generator on a tiny setting: devices stream, queries are timed, nothing is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifeveil.errors import InputError
from lifeveil.server.load import LoadConfig, percentile_ms, run_load, run_local_load_test
from lifeveil.transport.frame import WireSpec


def test_percentiles_in_milliseconds():
    assert percentile_ms([0.001, 0.002, 0.003, 0.004], 50) == 2.5
    assert percentile_ms([], 99) is None


def test_only_loopback_is_targeted():
    with pytest.raises(InputError, match="loopback"):
        run_load(
            "https://example.com:8443",
            "token",
            cafile="cert.pem",
            wire=WireSpec(),
            config=LoadConfig(devices=1, seconds=1),
        )


@pytest.mark.slow
def test_two_devices_two_seconds(tmp_path: Path):
    config = LoadConfig(devices=2, seconds=2.0, rate_hz=100.0, records_per_device=50, z_dim=16)
    report = run_local_load_test(config, workdir=tmp_path)
    s = report["summary"]
    assert s["z_stored"] == s["server_records"] == 100  # every record stored once
    assert s["ingest_records_per_s"] > 0 and s["uplink_errors"] == []
    assert s["queries"] > 0 and s["query_errors"] == 0
    assert 0 < s["query_p50_ms"] <= s["query_p99_ms"]


@pytest.mark.slow
def test_two_devices_on_postgresql(embedded_postgres, tmp_path: Path):
    config = LoadConfig(devices=2, seconds=2.0, rate_hz=100.0, records_per_device=50, z_dim=16)
    dsn = embedded_postgres.new_database()
    report = run_local_load_test(config, workdir=tmp_path, store_dsn=dsn)
    s = report["summary"]
    assert s["store"] == "postgresql"
    assert s["z_stored"] == s["server_records"] == 100  # every record stored once
    assert s["uplink_errors"] == [] and s["queries"] > 0 and s["query_errors"] == 0
    assert not (tmp_path / "server" / "lifeveil.db").exists()  # nothing went to SQLite
