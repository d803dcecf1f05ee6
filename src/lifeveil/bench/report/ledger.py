"""The report's "Ledger bound vs accumulation attack" table.

Per method: the bits per release the privacy ledger charges (or "unbounded"), and per face set
and accumulation k the Fano ceiling on identification accuracy those bits allow next to what
the accumulation attacker measured, as "ceiling / measured"; "bound holds" says whether every
measured accuracy is at most its ceiling (docs/GUARANTEES.md derives the bound).
"""

from __future__ import annotations

from typing import Any

from lifeveil.bench.report.aggregate import ACCUMULATION_SETS, LEDGER_SETS, first_value, is_number
from lifeveil.bench.report.tables import AxisTable, fmt
from lifeveil.bench.schema import BITS_PER_FRAME, BOUND, FANO_CEILING, IDENTITY, N_IDENTITIES, K

LEDGER_TEXT = (
    "Ledger bound vs accumulation attack: the bits per release the privacy ledger charges "
    "(exact for an FSQ code; the mean KL over the attacked faces for a sampled VIB; the "
    "Gaussian channel's capacity for dp-embedding; none for raw features or pixels), and per "
    "k the most any attacker can identify after k releases by Fano's inequality on "
    "min(H(identity), k x bits), shown as ceiling / measured (the accumulation attacker's best "
    "at the same k). A ceiling of 1.000 says the bound allows everything."
)


def ledger_table(agg: dict[str, dict[str, Any]]) -> AxisTable | None:
    """One row per method id: the bound's name, then per face set the bits per release and
    "ceiling / measured" per k, then whether every measurement is under its ceiling; None when
    no job filed a ledger result."""
    present = [
        (name, ledger, accumulation)
        for (name, ledger), (_, accumulation) in zip(LEDGER_SETS, ACCUMULATION_SETS, strict=True)
        if first_value(agg, f"{ledger}.{K}") is not None
    ]
    if not present:
        return None
    header = ["method", "bound"]
    first = present[0][1]
    rows = [[mid, str(m["mean"].get(f"{first}.{BOUND}", "–"))] for mid, m in agg.items()]
    checks: list[list[bool]] = [[] for _ in rows]
    constant = []
    for name, ledger, accumulation in present:
        ks = [int(round(k)) for k in first_value(agg, f"{ledger}.{K}")]
        header += [f"{name} bits per release", *(f"{name} k={k}" for k in ks)]
        for i, m in enumerate(agg.values()):
            cells, ok = _ceiling_cells(m["mean"], ledger, accumulation, ks)
            rows[i] += [fmt(m["mean"].get(f"{ledger}.{BITS_PER_FRAME}")), *cells]
            checks[i] += ok
        n_ids = first_value(agg, f"{ledger}.{N_IDENTITIES}")
        if is_number(n_ids):
            constant.append((f"{name} people", str(int(n_ids))))
    header.append("bound holds")
    for row, ok in zip(rows, checks, strict=True):
        row.append(("yes" if all(ok) else "NO") if ok else "–")
    return AxisTable(header, rows, constant)


def _ceiling_cells(
    mean: dict[str, Any], ledger: str, accumulation: str, ks: list[int]
) -> tuple[list[str], list[bool]]:
    """ "ceiling / measured" per k, and per k with both numbers whether measured <= ceiling."""
    ceilings = mean.get(f"{ledger}.{FANO_CEILING}")
    measured_k = mean.get(f"{accumulation}.{K}")
    measured = mean.get(f"{accumulation}.{IDENTITY}")
    got = {}
    if isinstance(measured_k, list) and isinstance(measured, list):
        got = {int(round(k)): v for k, v in zip(measured_k, measured, strict=True)}
    ceiling_at = dict(zip(ks, ceilings, strict=True)) if isinstance(ceilings, list) else {}
    cells, checks = [], []
    for k in ks:
        c, v = ceiling_at.get(k), got.get(k)
        cells.append(f"{fmt(c)} / {fmt(v)}")
        if is_number(c) and is_number(v):
            checks.append(v <= c + 1e-9)
    return cells, checks
