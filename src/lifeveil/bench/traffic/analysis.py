"""The whole traffic-analysis check over the action clips: traces, attack, results, figure."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from lifeveil.bench.traffic.capture import LifeVeilTracer, h264_trace
from lifeveil.bench.traffic.traces import (
    FEATURE_NAMES,
    Trace,
    TrafficConfig,
    constancy,
    loo_attack,
    model_trace,
    motion_labels,
    trace_features,
)
from lifeveil.data import ClipInfo, load_action_clips
from lifeveil.errors import InputError
from lifeveil.io import write_json

Progress = Callable[[str], None]


def run_traffic_analysis(
    root: str | Path,
    out_dir: str | Path,
    config: TrafficConfig | None = None,
    progress: Progress | None = None,
    files: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Record both traces for every clip, attack both, write ``results.json`` and ``traces.png``.

    ``files`` restricts the check to clips whose file name (as in ``labels.csv``) is listed.
    Returns the results dict (also written to ``out_dir/results.json``).
    """
    config = config or TrafficConfig()
    say = progress or (lambda _line: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clips = load_action_clips(root)
    if files is not None:
        clips = [c for c in clips if c.path.name in set(files)]
    clips = clips[: config.max_clips]
    if len(clips) < 4:
        raise InputError(f"{root}: need at least 4 clips for a cross-validated attack")
    rng = np.random.default_rng(config.seed)
    h264, facts = [], []
    for clip in clips:
        trace, fact = h264_trace(clip.path, config)
        h264.append(trace)
        facts.append(fact)
    say(f"H.264 traces of {len(clips)} clips recorded (re-encoded at {config.h264_width} px wide)")
    up, down = _lifeveil_traces(clips, facts, config, rng, say)
    labels = motion_labels([f["motion"] for f in facts])
    result = {
        "config": asdict(config),
        "label": "motion (mean abs frame difference above the median) vs still",
        "activity_note": _activity_note(clips),
        "features": list(FEATURE_NAMES),
        "clips": [
            _clip_row(c, f, int(y), t, u)
            for c, f, y, t, u in zip(clips, facts, labels, h264, up, strict=True)
        ],
        "attack": {
            "h264": loo_attack(_features(h264, config), labels),
            "lifeveil": loo_attack(_features(up, config), labels),
        },
        "lifeveil_constancy": {
            "upstream": _pooled_constancy(up),
            "downstream": _pooled_constancy(down),
        },
    }
    write_json(out / "results.json", result)
    plot_traces(out / "traces.png", clips, facts, h264, up, config.bin_s)
    return result


def _lifeveil_traces(
    clips: list[ClipInfo],
    facts: list[dict[str, Any]],
    config: TrafficConfig,
    rng: np.random.Generator,
    say: Progress,
) -> tuple[list[Trace], list[Trace]]:
    with (
        tempfile.TemporaryDirectory(prefix="lifeveil-traffic-") as tmp,
        LifeVeilTracer(config, Path(tmp)) as tracer,
    ):
        if config.lifeveil_trace == "socket":
            pairs = []
            for clip, fact in zip(clips, facts, strict=True):
                pairs.append(tracer.trace(clip.path, fact["seconds"]))
                say(f"LifeVeil uplink measured on the socket for {clip.path.name}")
            return [p[0] for p in pairs], [p[1] for p in pairs]
        up, down = tracer.trace(clips[0].path, min(3.0, facts[0]["seconds"]))  # calibration
    say(f"LifeVeil uplink calibrated on the socket: {int(up.sizes[0])} B records up")
    period = 1.0 / config.rate_hz
    ups = [
        model_trace(f["seconds"], config.rate_hz, up.sizes[0], rng.uniform(0, period))
        for f in facts
    ]
    downs = [
        model_trace(f["seconds"], config.rate_hz, down.sizes[0], rng.uniform(0, period))
        for f in facts
    ]
    return ups, downs


def _features(traces: list[Trace], config: TrafficConfig) -> np.ndarray:
    return np.stack([trace_features(t, config.bin_s) for t in traces])


def _pooled_constancy(traces: list[Trace]) -> dict[str, Any]:
    per_clip = [constancy(t) for t in traces]
    sizes = sorted({s for t in traces for s in np.unique(t.sizes).tolist()})
    return {
        "distinct_sizes_all_clips": sizes,
        "max_interarrival_std_ms": max(c["interarrival_std_ms"] for c in per_clip),
        "max_interarrival_dev_ms": max(c["interarrival_max_dev_ms"] for c in per_clip),
    }


def _clip_row(
    clip: ClipInfo, fact: dict[str, Any], label: int, h264: Trace, up: Trace
) -> dict[str, Any]:
    return {
        "file": clip.path.name,
        "activity": clip.label,
        "motion_score": round(fact["motion"], 3),
        "motion": bool(label),
        "seconds": round(fact["seconds"], 3),
        "h264_bytes": fact["h264_bytes"],
        "h264_bytes_per_s": round(float(h264.sizes.sum() / h264.duration), 1),
        "lifeveil_bytes_per_s": round(float(up.sizes.sum() / up.duration), 1),
        "lifeveil_record_sizes": sorted(set(up.sizes.astype(int).tolist())),
    }


def _activity_note(clips: list[ClipInfo]) -> str:
    distinct = len({c.label for c in clips})
    return (
        f"{len(clips)} clips carry {distinct} distinct activity labels; with about one clip per "
        "activity a cross-validated activity attack is not defined, so the label is motion vs still"
    )


def plot_traces(
    path: Path,
    clips: list[ClipInfo],
    facts: list[dict[str, Any]],
    h264: list[Trace],
    lifeveil: list[Trace],
    bin_s: float,
) -> Path:
    """Bitrate over time of the stillest and the most moving clip, H.264 above LifeVeil."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    motion = [f["motion"] for f in facts]
    pick = {"still": int(np.argmin(motion)), "moving": int(np.argmax(motion))}
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for ax, traces, title in (
        (axes[0], h264, "H.264 upload"),
        (axes[1], lifeveil, "LifeVeil uplink"),
    ):
        for kind, i in pick.items():
            rate = traces[i].bitrate(bin_s) / bin_s / 1000
            t = np.arange(len(rate)) * bin_s
            ax.step(
                t,
                rate,
                where="post",
                label=f"{kind}: {clips[i].path.name[:40]} (motion {motion[i]:.1f})",
            )
        ax.set_title(
            f"{title}: upstream kB/s in {bin_s * 1000:.0f} ms bins, as an eavesdropper sees it"
        )
        ax.set_ylabel("kB/s")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    axes[1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
