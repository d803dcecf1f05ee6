"""Benchmark presets: how much data, which method settings and seeds one sweep uses.

A preset is typed, frozen data. It is saved in ``results.json`` beside every result so a run
can be reproduced (``Preset.to_dict`` / ``Preset.from_dict``).

>>> get_preset("quick").name
'quick'
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from lifeveil.errors import InputError, UnknownNameError

MethodSpec = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Preset:
    """One benchmark configuration (data-use policy: :mod:`lifeveil.data.datasets`)."""

    name: str
    # SUN8 images per class from the fixed train / test split (None = all of the split).
    sun8_train_per_class: int | None
    sun8_test_per_class: int | None
    # ORL identities attacked (never seen by the default privatizer: s11-s40).
    victim_identities: tuple[str, ...]
    # ORL identities the attacker may use as auxiliary data (s1-s10, disjoint from victims).
    aux_identities: tuple[str, ...]
    # Action clips used (None = all 23) and the rate frames are sampled at (frames/s).
    clips_max: int | None
    clip_fps: float
    # Cap on frames per clip after sampling (keeps long clips from dominating run time).
    clip_max_frames: int = 32
    # LFW held-out identities attacked (the first N of 301-423 in sorted-name order; None =
    # all 123) and LFW training identities whose faces give the attacker's statistics.
    lfw_heldout_identities: int | None = None
    lfw_aux_identities: int = 20
    # Accumulation attack: numbers of releases an attacker averages (k = inf is always added).
    accumulation_k: tuple[int, ...] = (1, 4, 16, 64, 256)
    # Reconstruction attacks: LFW training identities (the first N of 1-300 in sorted-name
    # order; None = all 300, 2,056 faces) whose ORL-like portraits the attacker's decoder and
    # generator learn from (plus the ORL auxiliary faces), victims inverted by optimisation, and
    # the optimisation budget.
    recon_aux_identities: int | None = None
    recon_victims: int = 8
    opt_restarts: int = 1
    opt_steps: int = 50
    # Method settings swept: (family, params). msr settings are expanded per checkpoint.
    methods: tuple[MethodSpec, ...] = ()
    # Seeds of the jobs (method randomness, attack training); one job per setting and seed.
    seeds: tuple[int, ...] = (0,)
    # Data seed: subsampling and bystander pasting.
    seed: int = 0
    # System efficiency: timed repetitions per method and frames encoded with H.264.
    se_repeats: int = 5
    se_frames: int = 16
    # Attack budget details, read by the attacks from EvalInputs.preset. Augmented queries per
    # LFW auxiliary portrait. 0: measured on raw-teacher features, adding the mirror image of
    # each of 2,056 portraits lowered the decoder's identity match on ORL victims (0.15 ->
    # 0.06) while doubling the queries; new identities help, copies do not.
    recon_aux_copies: int = 0
    # Accumulation attack: releases per image in a person's pool, and random k-averages per
    # person (probe training, queries). Epochs of the attacker's generator G (recon_optim).
    accumulation_draws: int = 64
    accumulation_averages: int = 8
    generator_epochs: int = 8

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preset:
        """Inverse of :meth:`to_dict`."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("victim_identities", "aux_identities", "accumulation_k", "seeds"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        if "methods" in kwargs:
            kwargs["methods"] = tuple((str(f), dict(p)) for f, p in kwargs["methods"])
        return cls(**kwargs)

    def with_methods(self, families: list[str]) -> Preset:
        """Only the method settings of ``families`` (order of the preset kept)."""
        return replace(self, methods=tuple(m for m in self.methods if m[0] in families))

    def __hash__(self) -> int:  # dict params are unhashable; the name identifies a preset
        return hash((self.name, self.seed, self.seeds))


def _identities(first: int, last: int) -> tuple[str, ...]:
    return tuple(f"s{i}" for i in range(first, last + 1))


def _sweep(family: str, key: str, values: tuple[Any, ...]) -> tuple[MethodSpec, ...]:
    return tuple((family, {key: v}) for v in values)


# msr settings name a checkpoint by label; the runner maps labels to files (see runner.py).
_MSR_MODES = (("msr", {"mode": "mean"}), ("msr", {"mode": "sample"}))

QUICK = Preset(
    name="quick",
    sun8_train_per_class=6,
    sun8_test_per_class=4,
    victim_identities=_identities(11, 15),
    aux_identities=_identities(1, 4),
    clips_max=3,
    clip_fps=2.0,
    clip_max_frames=4,
    lfw_heldout_identities=6,
    lfw_aux_identities=4,
    accumulation_k=(1, 16, 256),
    recon_aux_identities=15,  # 101 LFW faces: a smoke test of the attacks, not a strong attacker
    recon_victims=3,
    opt_restarts=1,
    opt_steps=6,
    methods=(
        ("raw-teacher", {}),
        ("blur", {"sigma": 4.0}),
        ("pixelate", {"block": 8}),
        ("noise", {"sigma": 0.2}),
        ("face-blur", {"sigma": 8.0}),
        ("deface", {"mode": "blur"}),
        ("dp-embedding", {"epsilon": 256.0}),
        *_MSR_MODES,
    ),
    seeds=(0,),
    seed=0,
    se_repeats=3,
    se_frames=4,
    # ~140 Adam steps on the 141 auxiliary faces; with half as many, G ignored its latent
    # (every victim "reconstructed" as one face: measured, pixel std across latents < 0.003)
    generator_epochs=16,
)

FULL = Preset(
    name="full",
    # All of SUN8's fixed split. The README's full run (21 jobs) took 2,270 s on 2 cores.
    sun8_train_per_class=None,
    sun8_test_per_class=None,
    victim_identities=_identities(11, 40),
    aux_identities=_identities(1, 10),
    clips_max=None,
    clip_fps=4.0,
    clip_max_frames=16,
    lfw_heldout_identities=None,
    lfw_aux_identities=20,
    recon_aux_identities=None,  # all 300 LFW training identities: 2,056 faces
    recon_victims=8,
    opt_restarts=1,
    opt_steps=60,
    methods=(
        ("raw-teacher", {}),
        *_sweep("blur", "sigma", (2.0, 4.0, 8.0)),
        *_sweep("pixelate", "block", (4, 8, 16)),
        *_sweep("noise", "sigma", (0.1, 0.2, 0.4)),
        # One setting each for the attack-specific and peer baselines keeps `full` < 60 min on
        # 2 cores; sweep them with --methods face-blur,deface and a custom preset if needed.
        ("face-blur", {"sigma": 8.0}),
        ("deface", {"mode": "blur"}),
        # Per-vector DP needs a very large epsilon before a 1280-d embedding keeps any utility
        # (measured: scene accuracy is at chance up to epsilon ~ 64); the sweep shows where.
        *_sweep("dp-embedding", "epsilon", (256.0, 1024.0, 4096.0)),
        *_MSR_MODES,
    ),
    seeds=(0,),  # one seed fits the 60-minute budget on 2 cores; add --seeds 0,1 for spread
    seed=0,
    se_repeats=10,
    se_frames=16,
    generator_epochs=6,
)

PRESETS: dict[str, Preset] = {"quick": QUICK, "full": FULL}


def load_preset(path: str | Path) -> Preset:
    """A preset from a TOML file: ``base = "quick"`` (optional) plus the fields to change.

    ``methods`` is a list of ``[family, {params}]`` pairs, e.g.
    ``methods = [["raw-teacher", {}], ["blur", {sigma = 4.0}]]``.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: cannot read preset TOML ({exc})") from None
    base = get_preset(str(data.pop("base", "quick"))).to_dict()
    unknown = sorted(set(data) - set(base))
    if unknown:
        raise InputError(
            f"{path}: unknown preset fields {unknown}; known: {', '.join(sorted(base))}"
        )
    return Preset.from_dict({**base, "name": path.stem, **data})


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (or a ``.toml`` preset file); UnknownNameError lists the presets."""
    if name.endswith(".toml"):
        return load_preset(name)
    if name not in PRESETS:
        raise UnknownNameError(
            f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))} (or a preset .toml file)"
        )
    return PRESETS[name]
