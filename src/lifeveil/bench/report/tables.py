"""The report's tables: the headline (identity under accumulation) and one table per axis.

Cells are formatted text; :func:`markdown_table` and :func:`html_table` render a table for
summary.md and report.html.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from lifeveil.bench.report.aggregate import (
    ACCUMULATION_SETS,
    LEDGER_SETS,
    accumulation_curve,
    axis_of,
    first_value,
    is_number,
)
from lifeveil.bench.report.names import GROUPS, METRICS, Group, group_of, header, metric

AXES = ("DTP", "PL", "RR", "SE")


AXIS_TITLES = {
    "DTP": "Downstream task performance (utility)",
    "PL": "Privacy leakage (attacks on the released features)",
    "RR": "Reconstruction risk",
    "SE": "System efficiency (on-device cost, bytes per frame on the wire)",
}


# Keys with their own tables (headline_tables, report.ledger.ledger_table), not the axis ones.
OWN_TABLE_PREFIXES = tuple(prefix + "." for _, prefix in (*ACCUMULATION_SETS, *LEDGER_SETS))

SIDE_KS = (1, 16)  # k columns shown beside the headline (the largest k) and inf


SE_COLUMNS = (
    "params",
    "mflops",
    "latency_ms",
    "wire_bytes",
    "vector_bytes",
    "wire_frame_bytes",
    "jpeg_bytes",
    "h264_bytes",
    "upload",
)


HEADLINE_TEXT = (
    "Identity under accumulation: the attacker owns the public model and averages k releases "
    "of a person (k = inf: the noise-free encoding of each image); the number is the best of "
    "a linear probe and an MLP probe trained on k-averaged releases and 1-shot re-ID against "
    "one enrolment photo. The largest k is the headline privacy number (lower = more private)."
)


def fmt(v: Any) -> str:
    """A value as table text: 3 decimals, thousands separators, lists shortened, None as -."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10000 else str(v)
    if isinstance(v, float):
        if v.is_integer() and abs(v) >= 100:
            return fmt(int(v))
        if abs(v) >= 1e5:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:.1f}"
        return f"{v:.3f}"
    if isinstance(v, list):
        return "[" + ", ".join(fmt(x) for x in v[:8]) + (", …" if len(v) > 8 else "") + "]"
    return str(v)


def cell(mean: Any, std: Any, n_seeds: int, key: str = "") -> str:
    """A table cell: mean (± std over seeds when there are several); counts as integers."""
    if is_number(mean) and key.endswith(("params", "bytes")):
        return f"{mean:,.0f}"  # counts of parameters and bytes: whole numbers
    if n_seeds > 1 and is_number(std) and is_number(mean):
        return f"{fmt(mean)} ± {fmt(std)}"
    return fmt(mean)


@dataclass
class AxisTable:
    """One axis's table: a header, one row per method id, and the columns equal for all methods."""

    header: list[str]
    rows: list[list[str]]
    constant: list[tuple[str, str]]  # (column, value) shown once below the table


def axis_tables(agg: dict[str, dict[str, Any]]) -> dict[str, AxisTable]:
    """Per axis, the table of every metric, one row per method id.

    Columns with one value for every method (chance levels, counts, fixed budgets) are listed
    once below the table instead (when there are two or more methods).
    """
    keys = sorted({k for m in agg.values() for k in m["mean"]})
    tables: dict[str, AxisTable] = {}
    for axis in AXES:
        if axis == "SE":
            cols = [
                f"se.{c}" for c in SE_COLUMNS if any(f"se.{c}" in m["mean"] for m in agg.values())
            ]
        else:  # accumulation and ledger results have their own tables
            cols = [
                k
                for k in keys
                if axis_of(k) == axis
                and not k.startswith("se.")
                and not k.startswith(OWN_TABLE_PREFIXES)
            ]
        cells = {
            c: [cell(m["mean"].get(c), m["std"].get(c), len(m["seeds"]), c) for m in agg.values()]
            for c in cols
        }
        constant = [c for c in cols if axis != "SE" and len(agg) > 1 and len(set(cells[c])) == 1]
        shown = [c for c in cols if c not in constant]
        rows = [[mid] + [cells[c][i] for c in shown] for i, mid in enumerate(agg)]
        tables[axis] = AxisTable(
            ["method"] + [_column_label(c, axis) for c in shown],
            rows,
            [(_column_label(c, axis), cells[c][0]) for c in constant],
        )
    return tables


def headline_tables(agg: dict[str, dict[str, Any]], pp: dict[str, Any]) -> list[AxisTable]:
    """The headline table (identity under accumulation at k = 1, 16, the largest k and inf per
    face set, beside relative scene accuracy) and the per-attacker detail table."""
    present = [(n, p) for n, p in ACCUMULATION_SETS if first_value(agg, f"{p}.k") is not None]
    if not present:
        return []
    header, details_header = ["method", "scene (rel. to raw)"], ["method", "fresh draws"]
    rows: list[list[str]] = [[mid, fmt(pp["points"][mid]["scene_rel"])] for mid in agg]
    details: list[list[str]] = [[mid] for mid in agg]
    for i, m in enumerate(agg.values()):
        fresh = next(
            (f for _, p in present if is_number(f := m["mean"].get(f"{p}.fresh_draws"))), None
        )
        details[i].append(fmt(None if fresh is None else round(fresh)))
    constant = []
    for name, prefix in present:
        ks = [int(round(k)) for k in first_value(agg, f"{prefix}.k")]
        side = [k for k in SIDE_KS if k in ks and k != ks[-1]]
        header += [f"{name} k={k}" for k in side] + [f"{name} k={ks[-1]} (headline)", f"{name} inf"]
        details_header += [f"{name} {a}" for a in ("linear", "MLP", "1-shot re-ID")]
        for i, m in enumerate(agg.values()):
            curve = accumulation_curve(m, prefix)
            if curve is None:
                rows[i] += ["–"] * (len(side) + 2)
                details[i] += ["–"] * 3
                continue
            got = dict(zip(curve[0], curve[1], strict=True))
            rows[i] += [fmt(got.get(k)) for k in side] + [fmt(curve[1][-1]), fmt(curve[2])]
            for attacker in ("linear_acc", "mlp_acc", "reid_top1"):
                per_k = m["mean"].get(f"{prefix}.{attacker}")
                inf = m["mean"].get(f"{prefix}.{attacker}_inf")
                values = " / ".join(fmt(v) for v in per_k) if isinstance(per_k, list) else "–"
                details[i].append(f"{values}; inf {fmt(inf)}")
        n_ids = first_value(agg, f"{prefix}.n_identities")
        people = f" ({int(n_ids)} people)" if is_number(n_ids) else ""
        constant.append((f"{name} chance", fmt(first_value(agg, f"{prefix}.chance")) + people))
        constant.append((f"{name} k", ", ".join(str(k) for k in ks)))
    return [AxisTable(header, rows, constant), AxisTable(details_header, details, [])]


def _column_label(key: str, axis: str) -> str:
    head = key.split(".")[0].lower()
    return ".".join(key.split(".")[1:]) if head == axis.lower() else key


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    esc = [[c.replace("|", "\\|") for c in r] for r in [header, *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(lines)


def html_table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table (cells escaped)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class GroupTable:
    """One small table of report.html: the metrics of one task or attack, human-named."""

    group: Group
    table: AxisTable  # the main metrics; constant ones listed below it
    details: AxisTable | None  # bookkeeping and tuning numbers, shown folded


def group_tables(agg: dict[str, dict[str, Any]]) -> list[GroupTable]:
    """One table per :class:`~lifeveil.bench.report.names.Group` with any metric, in the
    catalogue's order (unknown result keys after, by axis); accumulation and ledger keys are
    left to :func:`headline_tables` and :func:`lifeveil.bench.report.ledger.ledger_table`.
    """
    keys = sorted({k for m in agg.values() for k in m["mean"]})
    skip = OWN_TABLE_PREFIXES
    grouped: dict[Group, list[str]] = {}
    for key in keys:
        if not key.startswith(skip):
            grouped.setdefault(group_of(key), []).append(key)
    order = {k: i for i, k in enumerate(METRICS)}
    groups = sorted(
        grouped,
        key=lambda g: (AXES.index(g.axis) if g.axis in AXES else len(AXES), _group_rank(g)),
    )
    out = []
    for group in groups:
        cols = sorted(grouped[group], key=lambda k: (order.get(k, len(order)), k))
        main = _human_table(agg, [k for k in cols if not metric(k).detail])
        extra = [k for k in cols if metric(k).detail]
        out.append(GroupTable(group, main, _human_table(agg, extra) if extra else None))
    return out


def _group_rank(group: Group) -> int:
    return GROUPS.index(group) if group in GROUPS else len(GROUPS)


def _human_table(agg: dict[str, dict[str, Any]], cols: list[str]) -> AxisTable:
    """Rows per method id; columns equal for every method (two or more) listed once below."""
    cells = {
        c: [cell(m["mean"].get(c), m["std"].get(c), len(m["seeds"]), c) for m in agg.values()]
        for c in cols
    }
    constant = [c for c in cols if len(agg) > 1 and len(set(cells[c])) == 1]
    shown = [c for c in cols if c not in constant]
    rows = [[mid] + [cells[c][i] for c in shown] for i, mid in enumerate(agg)]
    return AxisTable(
        ["method"] + [header(c) for c in shown],
        rows if shown else [],
        [(header(c), cells[c][0]) for c in constant],
    )
