"""Server-side migration of stored z by an adapter, on every backend (issue 14 item 2):
batches, resumption after an interruption without duplicates, and the refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lifeveil.errors import InputError, ShapeError, UnknownNameError
from lifeveil.privatizer.adapt import Adapter
from lifeveil.server.migrate import AdapterFile, migrate, read_adapter, resume_all, unfinished
from lifeveil.server.store import ZStore
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import ZRecord

from .test_server_spaces import T1, T2, V1, V2
from .test_server_store import D, _device, _z

N = 23  # rows in the old space: 3 batches of 10


def adapter_file(
    tmp_path: Path, old: str = V1, new: str = V2, d_old: int = D, d_new: int = D
) -> AdapterFile:
    """An adapter saved by the device-side code and read back as the server reads it."""
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((d_new, d_old)).astype(np.float32)
    bias = rng.standard_normal(d_new).astype(np.float32)
    path = Adapter(weight, bias, old, new, 100, 10.0).save(tmp_path / f"{old}-{d_new}.safetensors")
    return read_adapter(path.read_bytes())


def _tenant_with_old_z(store: ZStore) -> int:
    dev = _device(store, "a")
    assert dev.tenant_id is not None
    store.register_space(dev.tenant_id, V1, D)
    records = [ZRecord(i, 1000 + i, _z(i), space=T1) for i in range(N)]
    assert store.put_records(dev, records) == [AckStatus.STORED] * N
    _device(store, "b")  # another tenant's z are never touched
    return dev.tenant_id


def test_migration_writes_adapted_copies_beside_the_originals(store: ZStore, tmp_path: Path):
    tenant = _tenant_with_old_z(store)
    adapter = adapter_file(tmp_path)
    seen: list[int] = []
    info = migrate(store, tenant, adapter, batch=10, progress=lambda m, done, n: seen.append(done))
    assert (info.status, info.done, info.old_tag, info.new_tag) == ("done", N, T1, T2)
    assert seen == [10, 20, N] and info.finished_us is not None
    new = store.load_records(tenant, space=T2)
    old = store.load_records(tenant, space=T1)
    assert new.seqs.tolist() == old.seqs.tolist() and len(old) == N
    np.testing.assert_array_equal(new.timestamps_us, old.timestamps_us)
    np.testing.assert_allclose(new.z, adapter.apply(old.z), rtol=1e-5, atol=1e-5)
    assert [s.version for s in store.list_spaces(tenant)] == [V1, V2]
    assert store.list_devices(tenant)[0].n_records == N  # migrated copies are not uploads
    again = migrate(store, tenant, adapter, batch=10)  # the same file: already done
    assert again.id == info.id and store.count_records(tenant, space=T2) == N


def test_an_interrupted_migration_resumes_without_duplicates(store: ZStore, tmp_path: Path):
    tenant = _tenant_with_old_z(store)
    adapter = adapter_file(tmp_path)
    real_write = store.write_migrated
    calls = []

    def dies_after_one_batch(*args):  # type: ignore[no-untyped-def]
        if calls:
            raise KeyboardInterrupt("killed")  # not an Exception: nothing marks it failed
        calls.append(1)
        return real_write(*args)

    store.write_migrated = dies_after_one_batch  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        migrate(store, tenant, adapter, batch=10)
    del store.write_migrated
    [stuck] = unfinished(store)
    assert (stuck.status, stuck.done) == ("running", 10)
    assert store.count_records(tenant, space=T2) == 10
    assert resume_all(store, batch=10) == 1  # what a server does when it starts
    [info] = store.list_migrations(tenant)
    assert (info.status, info.done) == ("done", N) and not unfinished(store)
    assert store.count_records(tenant, space=T2) == N
    assert sorted(store.load_records(tenant, space=T2).seqs.tolist()) == list(range(N))


def test_a_failed_migration_is_marked_and_rerun(store: ZStore, tmp_path: Path):
    tenant = _tenant_with_old_z(store)
    adapter = adapter_file(tmp_path)
    real_write = store.write_migrated
    store.write_migrated = lambda *a: (_ for _ in ()).throw(OSError("disk full"))  # type: ignore[method-assign]
    with pytest.raises(OSError):
        migrate(store, tenant, adapter, batch=10)
    [failed] = store.list_migrations(tenant)
    assert failed.status == "failed" and "disk full" in failed.message
    store.write_migrated = real_write  # type: ignore[method-assign]
    assert migrate(store, tenant, adapter, batch=10).status == "done"


def test_refusals(store: ZStore, tmp_path: Path):
    tenant = _tenant_with_old_z(store)
    with pytest.raises(ShapeError, match="takes z of dimension 4"):
        migrate(store, tenant, adapter_file(tmp_path, d_old=4))
    with pytest.raises(ShapeError, match="a server stores one z_dim: use a new data dir"):
        migrate(store, tenant, adapter_file(tmp_path, d_new=D * 2))
    with pytest.raises(UnknownNameError, match="'3333aaaabbbbcccc' is not registered"):
        migrate(store, tenant, adapter_file(tmp_path, old="3333aaaabbbbcccc"))
    assert store.list_migrations() == [] and store.count_records(tenant, space=T2) == 0


def test_read_adapter_refuses_other_files(tmp_path: Path):
    with pytest.raises(InputError, match="not a LifeVeil adapter"):
        read_adapter(b"\x00" * 64)
    with pytest.raises(InputError, match="not a LifeVeil adapter"):
        read_adapter(b"")
    from safetensors.numpy import save

    other = save({"weight": np.zeros((2, 2), np.float32)}, metadata={"format": "x"})
    with pytest.raises(InputError, match="not a LifeVeil adapter"):
        read_adapter(other)


def test_a_network_snapping_adapter_is_applied_as_the_device_fitted_it(
    store: ZStore, tmp_path: Path
):
    from safetensors.numpy import load, save

    from lifeveil.privatizer.adapt import code_levels, fit_mlp_adapter, fit_snap

    rng = np.random.default_rng(3)
    old_z = rng.standard_normal((300, D)).astype(np.float32)
    grid = code_levels(np.zeros((1, 1)), 5)
    assert grid is not None
    new_z = grid[np.clip(np.round(old_z + 2), 0, 4).astype(int)]
    mlp = fit_mlp_adapter(old_z, new_z, V1, V2, hidden=8, max_epochs=5)
    device_side = fit_snap(mlp, old_z, new_z, grid)
    data = device_side.save(tmp_path / "snap.safetensors").read_bytes()
    server_side = read_adapter(data)
    np.testing.assert_array_equal(server_side.apply(old_z), device_side.apply(old_z))
    tenant = _tenant_with_old_z(store)
    migrate(store, tenant, server_side)
    assert np.isin(store.load_records(tenant, space=T2).z, grid).all()
    tensors = load(data)
    tensors["thresholds"] = tensors["thresholds"][:, :2]  # does not fit the 5 levels
    meta = {"format": "lifeveil-adapter", "old_version": V1, "new_version": V2}
    with pytest.raises(ShapeError, match="do not fit"):
        read_adapter(save(tensors, metadata=meta))
    tensors = load(data)
    tensors["hidden_bias"] = tensors["hidden_bias"][:3]
    with pytest.raises(ShapeError, match="hidden layer does not fit"):
        read_adapter(save(tensors, metadata=meta))
