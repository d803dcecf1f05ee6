"""Condense a benchmark's results.json into the README's one-table view (Markdown on stdout).

Usage: python scripts/bench_table.py OUT/results.json
"""

from __future__ import annotations

import json
import sys


def _get(metrics: dict, dotted: str) -> float | None:
    node = metrics
    for part in dotted.split("."):
        if isinstance(node, list) and part.lstrip("-").isdigit():
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, list):
        return str(round(value[-1], 3))
    return f"{value:.3f}" if isinstance(value, float) else str(value)


COLUMNS = (
    ("SUN8 scene acc", "dtp.scene_probe.linear_acc"),
    ("ORL identity k=1", "pl.accumulation_orl.identity.0"),
    ("ORL k=16", "pl.accumulation_orl.identity.-2"),
    ("ORL k=256 (headline)", "pl.accumulation_orl.headline"),
    ("ORL noise-free", "pl.accumulation_orl.identity_inf"),
    ("LFW k=1", "pl.accumulation_lfw.identity.0"),
    ("LFW k=256 (headline)", "pl.accumulation_lfw.headline"),
    ("LFW noise-free", "pl.accumulation_lfw.identity_inf"),
    ("ORL 1-shot re-ID (single release)", "pl.reid.top1"),
    ("recon. recognised (decoder)", "rr.recon_decoder.id_match"),
    ("clip agreement", "dtp.clip_agreement.top1"),
)


def main(path: str) -> None:
    with open(path) as fh:
        results = json.load(fh)
    jobs = [j for j in results["jobs"] if j.get("metrics")]
    raw = next(j for j in jobs if j["method_id"] == "raw-teacher")
    raw_scene = _get(raw["metrics"], "dtp.scene_probe.linear_acc")
    head = ["method", COLUMNS[0][0], "relative to raw", *(c for c, _ in COLUMNS[1:]), "bits/frame"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for j in jobs:
        m = j["metrics"]
        scene = _get(m, COLUMNS[0][1])
        cells = [j["method_id"], _fmt(scene), _fmt(scene / raw_scene if scene else None)]
        cells += [_fmt(_get(m, key)) for _, key in COLUMNS[1:]]
        cells.append(_bits(j))
        print("| " + " | ".join(cells) + " |")
    orl = _get(raw["metrics"], "pl.accumulation_orl")
    lfw = _get(raw["metrics"], "pl.accumulation_lfw")
    print(
        f"\nChance: ORL identity {orl['chance']:.3f} ({orl['n_identities']} people, k = "
        f"{', '.join(map(str, orl['k']))}), LFW {lfw['chance']:.3f} ({lfw['n_identities']} people "
        "never used in training), SUN8 scenes 0.125 (8 classes)."
    )


def _bits(job: dict) -> str:
    """Bits per frame on the wire: the exact code size of an fsq code, else the wire size x 8."""
    method = job.get("method") or {}
    if method.get("bottleneck") == "fsq":
        return f"{method['code_bits']:.0f} (exact)"
    wire = (job.get("se") or {}).get("vector_bytes")
    return f"{wire * 8:.0f} (fp16 vector)" if wire else "–"


if __name__ == "__main__":
    main(sys.argv[1])
