"""Write a privatizer's model card from its checkpoint JSON and a benchmark's results.json.

Usage: python scripts/model_card.py CHECKPOINT.safetensors BENCH_OUT/results.json CKPT_LABEL > CARD.md

Every number in the card is read from those two files: training data and objective from the
checkpoint's JSON, privacy and utility from the benchmark job of ``msr[ckpt=CKPT_LABEL,...]``
next to the raw-teacher job of the same run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _job(results: dict, prefix: str) -> dict:
    for job in results["jobs"]:
        if job["method_id"].startswith(prefix) and job.get("metrics"):
            return job
    raise SystemExit(f"no finished job {prefix}* in the results")


def _acc(m: dict, name: str) -> str:
    a = m["pl"][name]
    ks = ", ".join(f"k={k}: {v:.3f}" for k, v in zip(a["k"], a["identity"], strict=True))
    return (
        f"{ks}; noise-free: {a['identity_inf']:.3f} (chance {a['chance']:.3f}, "
        f"{a['n_identities']} people)"
    )


def main(ckpt: str, results_path: str, label: str) -> None:
    meta = json.loads(Path(ckpt).with_suffix(".json").read_text())
    cfg, train = meta["privatizer"], meta["training"]
    results = json.loads(Path(results_path).read_text())
    job = _job(results, f"msr[ckpt={label},")
    raw = _job(results, "raw-teacher")
    m, r = job["metrics"], raw["metrics"]
    scene, raw_scene = m["dtp"]["scene_probe"]["linear_acc"], r["dtp"]["scene_probe"]["linear_acc"]
    bits = job["method"].get("code_bits")
    print(f"# Model card: `{Path(ckpt).name}`\n")
    print(
        f"* **What it is**: {job['method'].get('label', cfg.get('bottleneck', 'vib'))}; student = first "
        f"{cfg['student_blocks']} MobileNetV2 blocks ({cfg['frozen_blocks']} frozen) + 1x1 conv "
        f"{cfg['student_channels']} + pool, input {cfg['input_size']} px, teacher "
        f"`{cfg['teacher']}`."
    )
    print(
        f"* **Objective**: cosine distillation of the teacher in its standardised space; "
        f"collapse weight {cfg.get('collapse_weight', 0)} (face views -> one shared code), "
        f"invariance weight {cfg.get('invariance_weight', 0)} (pasted faces -> clean scene code); "
        "no identity labels used."
    )
    print(f"* **Bits per frame**: {bits:.1f} exact" if bits else "* **Bits per frame**: KL bound")
    print("* **Training data** (nothing else): " + "; ".join(train.get("sources", [])))
    print(f"* **Made by**: `{train.get('command', '?')}`\n")
    print(
        f"## Measured (`lifeveil bench --preset {results['config']['name']}`, "
        f"{Path(results_path).parent})\n"
    )
    seen = any("sun8" in src for src in train.get("sources", []))
    where = "its TRAIN split was in training: memorisation" if seen else "never trained on"
    print(
        f"* Scene utility on SUN8 ({where}): linear probe {scene:.3f}, "
        f"{scene / raw_scene:.1%} of the raw teacher's {raw_scene:.3f}."
    )
    if "clip_agreement" in m["dtp"]:
        print(
            f"* Per-clip activity agreement: {m['dtp']['clip_agreement']['top1']:.3f} "
            f"(raw teacher {r['dtp']['clip_agreement']['top1']:.3f})."
        )
    print(
        f"* Identity, ORL (never trained on), accumulation attacker: {_acc(m, 'accumulation_orl')}."
    )
    print(f"* Identity, LFW identities 301-423 (never trained on): {_acc(m, 'accumulation_lfw')}.")
    print(
        f"* Raw teacher on the same data: ORL {_acc(r, 'accumulation_orl')}; "
        f"LFW {_acc(r, 'accumulation_lfw')}."
    )
    rec = m["rr"]["recon_decoder"]
    print(
        f"* Reconstruction by decoder: identity recognised in {rec['id_match']:.3f} of "
        f"reconstructions (raw teacher {r['rr']['recon_decoder']['id_match']:.3f})."
    )


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
