"""Ledger bound (PL): the most any attacker could identify, by the bits the releases carry.

The privacy ledger charges each release the bits that bound what it discloses about its frame
(:meth:`Method.ledger_charge`; the derivations are in docs/GUARANTEES.md). k releases of one
person carry at most ``min(H(identity), k x bits)`` about who it is (composition and the data
processing inequality), and Fano's inequality turns that into a ceiling on the accuracy of any
attacker among the attacked people. This attack files those ceilings at the accumulation
attack's k, per face set, so the report can put the bound next to what the accumulation
attacker measured (:mod:`lifeveil.bench.attacks.accumulation`). A method with no bound (raw
features, processed pixels) files ``bound = "unbounded"`` and no ceilings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lifeveil.bench.contracts import EvalInputs, Result, Stopwatch
from lifeveil.bench.methods.base import LedgerCharge, Method
from lifeveil.bench.schema import (
    BITS_PER_FRAME,
    BOUND,
    COMPOSED_BITS,
    FANO_CEILING,
    IDENTITY_BITS,
    LEDGER_LFW,
    LEDGER_ORL,
    N_IDENTITIES,
    Axis,
    K,
)
from lifeveil.data.datasets import LabelledImages
from lifeveil.privatizer.guarantees import (
    composed_bits,
    identity_bits,
    max_identification_accuracy,
)

UNBOUNDED = "unbounded"


def ledger_ceilings(
    charge: LedgerCharge | None, ks: Sequence[int], n_people: int
) -> dict[str, object]:
    """The ledger's bound for k releases of each of ``n_people`` (uniform), for each k in ``ks``.

    Returns ``bound``, ``bits_per_frame``, ``k``, ``identity_bits``, ``n_identities``,
    ``composed_bits`` (min(H, k x bits) per k) and ``fano_ceiling`` (the most often any attacker
    can name the person, per k); the last three are None when ``charge`` is None.

    >>> out = ledger_ceilings(LedgerCharge(0.5, "vib-kl"), [1, 2], 30)
    >>> out["composed_bits"], [round(c, 3) for c in out["fano_ceiling"]]
    ([0.5, 1.0], [0.264, 0.395])
    """
    h = identity_bits(n_people)
    out: dict[str, object] = {
        BOUND: UNBOUNDED if charge is None else charge.bound,
        BITS_PER_FRAME: None if charge is None else float(charge.bits),
        K: [int(k) for k in ks],
        IDENTITY_BITS: h,
        N_IDENTITIES: int(n_people),
        COMPOSED_BITS: None,
        FANO_CEILING: None,
    }
    if charge is not None:
        info = [composed_bits([charge.bits] * int(k), h) for k in ks]
        out[COMPOSED_BITS] = info
        out[FANO_CEILING] = [max_identification_accuracy(i, n_people) for i in info]
    return out


def ledger_entries(
    method: Method,
    faces: Mapping[str, LabelledImages],
    ks: Sequence[int],
    clock: Stopwatch | None = None,
) -> dict[str, dict[str, object]]:
    """:func:`ledger_ceilings` of ``method`` per face set (result key -> the attacked faces):
    the charge is averaged over that set's images, M is its number of people."""
    clock = clock or Stopwatch()
    entries = {}
    for key, face_set in faces.items():
        with clock(key):
            charge = method.ledger_charge(face_set.images)
            n_people = len(np.unique(np.asarray(face_set.labels)))
            entries[key] = ledger_ceilings(charge, ks, n_people)
    return entries


def measure_ledger(inputs: EvalInputs) -> Result:
    """The registered ``ledger`` attack: the bound at the preset's accumulation k, on the ORL
    victims and the LFW held-out identities (a VIB's KL is averaged over that face set)."""
    data = inputs.data
    faces = {LEDGER_ORL: data.faces_victims, LEDGER_LFW: data.faces_lfw_heldout}
    clock = Stopwatch()
    entries = ledger_entries(inputs.method, faces, inputs.preset.accumulation_k, clock)
    return Result(Axis.PL, entries, clock.seconds)
