"""Condense a benchmark's results.json into the README's one-table view (Markdown on stdout).

Usage: python scripts/bench_table.py OUT/results.json
"""

from __future__ import annotations

import json
import sys


def _get(metrics: dict, dotted: str) -> float | None:
    node = metrics
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, list):
        return str(round(value[-1], 3))
    return f"{value:.3f}" if isinstance(value, float) else str(value)


COLUMNS = (
    ("scene acc (linear)", "dtp.scene_probe.linear_acc"),
    ("identity acc (linear)", "pl.identity_probe.linear_acc"),
    ("re-ID top-1", "pl.reid.top1"),
    ("identity, 8 frames averaged", "pl.temporal.linear_acc"),
    ("recon. recognised (decoder)", "rr.recon_decoder.id_match"),
    ("membership AUC (MLP head)", "pl.membership.mlp_auc"),
)


def main(path: str) -> None:
    with open(path) as fh:
        results = json.load(fh)
    jobs = [j for j in results["jobs"] if j.get("metrics")]
    raw = next(j for j in jobs if j["method_id"] == "raw-teacher")
    raw_scene = _get(raw["metrics"], "dtp.scene_probe.linear_acc")
    head = [
        "method",
        COLUMNS[0][0],
        "relative to raw",
        *(c for c, _ in COLUMNS[1:]),
        "wire B/frame",
        "latency ms",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for j in jobs:
        m = j["metrics"]
        scene = _get(m, COLUMNS[0][1])
        cells = [
            j["method_id"],
            _fmt(scene),
            _fmt(scene / raw_scene if scene is not None else None),
        ]
        cells += [_fmt(_get(m, key)) for _, key in COLUMNS[1:]]
        se = j.get("se") or {}
        cells += [_fmt(se.get("wire_bytes")), _fmt(se.get("latency_ms"))]
        print("| " + " | ".join(cells) + " |")
    chance = _get(raw["metrics"], "pl.identity_probe.chance")
    print(f"\nChance: identity {chance:.3f} (30 people), scenes 0.125 (8 classes).")


if __name__ == "__main__":
    main(sys.argv[1])
