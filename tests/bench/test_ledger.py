"""The ledger bound in the benchmark: known ceilings, each method's charge, and that no
attacker measured beats the ceiling of a method with a small, exact charge."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from lifeveil.bench.attacks.accumulation import accumulation_attack
from lifeveil.bench.attacks.ledger import UNBOUNDED, ledger_ceilings
from lifeveil.bench.methods import create_method
from lifeveil.bench.methods.base import LedgerCharge, Method
from lifeveil.bench.report.ledger import ledger_table
from lifeveil.data import load_orl
from lifeveil.paths import SHIPPED_PRIVATIZERS
from lifeveil.privatizer.checkpoint import save_checkpoint
from lifeveil.privatizer.config import PrivatizerConfig
from lifeveil.privatizer.guarantees import binary_entropy, gaussian_channel_capacity_bits
from lifeveil.privatizer.model import PrivatizerModel


def _fano_equality(accuracy: float, info: float, people: int) -> float:
    """h(Pe) + Pe log2(M - 1) - (log2 M - I): zero at the ceiling when it is below 1."""
    pe = 1.0 - accuracy
    return binary_entropy(pe) + pe * math.log2(people - 1) - (math.log2(people) - info)


def test_ceilings_are_fanos_closed_form_at_k_times_the_bits() -> None:
    out = ledger_ceilings(LedgerCharge(1.0, "fsq-code"), [1, 2, 4, 8], 30)
    h = math.log2(30)
    assert out["identity_bits"] == pytest.approx(h)
    assert out["composed_bits"] == pytest.approx([1.0, 2.0, 4.0, h])  # capped at H(identity)
    ceilings = out["fano_ceiling"]
    # docs/GUARANTEES.md section 5's table for 30 people: 1 bit 0.395, 2 bits 0.601, 4 bits 0.906
    assert [round(c, 3) for c in ceilings[:3]] == [0.395, 0.601, 0.906]
    assert ceilings[3] == pytest.approx(1.0)
    for c, info in zip(ceilings[:3], out["composed_bits"][:3], strict=True):
        assert _fano_equality(c, info, 30) == pytest.approx(0.0, abs=1e-6)
    assert ceilings == sorted(ceilings)  # more releases never lower the ceiling


def test_no_bound_files_no_ceiling() -> None:
    out = ledger_ceilings(None, [1, 16], 5)
    assert out["bound"] == UNBOUNDED and out["bits_per_frame"] is None
    assert out["fano_ceiling"] is None and out["k"] == [1, 16] and out["n_identities"] == 5


@pytest.fixture(scope="module")
def faces(orl_root: Path):  # noqa: ANN201
    return load_orl(orl_root, [f"s{i}" for i in range(11, 21)])


def test_each_method_is_charged_what_the_ledger_charges(tmp_path: Path, faces) -> None:  # noqa: ANN001
    fsq = create_method("msr", {"path": str(SHIPPED_PRIVATIZERS / "fsq_invariant.safetensors")})
    assert fsq.ledger_charge(faces.images[:2]) == LedgerCharge(
        pytest.approx(64 * math.log2(5)), "fsq-code"
    )
    cfg = PrivatizerConfig(input_size=64, z_dim=16, decoder_hidden=32, student_init="random")
    ckpt = save_checkpoint(tmp_path / "vib.safetensors", PrivatizerModel(cfg).state_dict(), cfg, {})
    mean = create_method("msr", {"mode": "mean", "path": str(ckpt)})
    assert mean.ledger_charge(faces.images[:2]) == LedgerCharge(16 * 16.0, "float-width")
    sample = create_method("msr", {"mode": "sample", "path": str(ckpt)})
    charge = sample.ledger_charge(faces.images[:4])
    kl = sample.privatizer.privatize(faces.images[:4], mode="sample").kl_bits
    assert charge.bound == "vib-kl" and charge.bits == pytest.approx(float(np.mean(kl)))
    dp = create_method("dp-embedding", {"epsilon": 256.0})
    bits = gaussian_channel_capacity_bits(dp.clip_norm, dp.sigma, 1280)
    assert dp.ledger_charge(faces.images[:2]) == LedgerCharge(
        pytest.approx(bits), "gaussian-capacity"
    )
    assert create_method("blur", {"sigma": 4.0}).ledger_charge(faces.images[:2]) is None


class OneBitCode(Method):
    """A deterministic 1-bit code per face (is the face brighter than the median face?), charged
    exactly 1 bit per release like an FSQ code of one 2-level coordinate."""

    family = "test-one-bit"

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        brightness = np.array([img.mean() for img in images])
        return (brightness > 100.0).astype(np.float32)[:, None]

    def ledger_charge(self, images: Sequence[np.ndarray]) -> LedgerCharge:
        return LedgerCharge(1.0, "fsq-code")


def test_measured_accumulation_stays_under_the_ceiling_and_the_table_says_so(faces) -> None:  # noqa: ANN001
    method, ks = OneBitCode(), (1, 2)
    labels = np.asarray(faces.labels)
    measured = accumulation_attack(
        method, faces.images, labels, faces.images[:20], ks=ks, n_draws=4
    )
    bound = ledger_ceilings(method.ledger_charge(faces.images), ks, 10)
    assert all(m <= c for m, c in zip(measured["identity"], bound["fano_ceiling"], strict=True))
    assert bound["fano_ceiling"][0] < 0.6  # 1 bit about one of 10 people: a real ceiling (0.577)
    agg = {
        "one-bit": {"mean": _flat("pl.ledger_orl", bound) | _flat("pl.accumulation_orl", measured)},
        "too-good": {
            "mean": _flat("pl.ledger_orl", bound)
            | _flat("pl.accumulation_orl", {"k": list(ks), "identity": [0.9, 0.9]})
        },
    }
    table = ledger_table(agg)
    assert table is not None and table.header[-1] == "bound holds"
    assert [row[-1] for row in table.rows] == ["yes", "NO"]
    assert table.header[:4] == ["method", "bound", "ORL bits per release", "ORL k=1"]
    assert table.rows[0][1:3] == ["fsq-code", "1.000"]
    ceiling, measured = table.rows[1][4].split(" / ")  # k = 2 for "too-good"
    assert float(ceiling) == pytest.approx(bound["fano_ceiling"][1], abs=5e-4)
    assert measured == "0.900"


def _flat(prefix: str, metrics: dict) -> dict:
    return {f"{prefix}.{k}": v for k, v in metrics.items()}
