"""Bystanders in context (PL vs DTP on the same frames).

Victim faces are pasted into SUN8 test scenes at realistic sizes (8-20 % of the frame height).
On exactly these frames we measure what the server is meant to learn (the scene) and what it
must not (who is in it): the joint trade-off of a method.
"""

from __future__ import annotations

import numpy as np

from lifeveil.bench.attacks.identity import split_per_identity
from lifeveil.bench.contracts import EvalInputs, Result
from lifeveil.bench.metrics import (
    chance_level,
    cosine_similarity,
    nearest_label,
    top1_accuracy,
    uniform_chance,
)
from lifeveil.bench.schema import BYSTANDER, Axis
from lifeveil.bench.tasks.probes import fit_linear_probe, probe_accuracy


def bystander_attack(
    frame_features: np.ndarray,
    frame_identities: np.ndarray,
    frame_scenes: np.ndarray,
    scene_train_features: np.ndarray,
    scene_train_labels: np.ndarray,
    face_features: np.ndarray,
    seed: int = 0,
) -> dict[str, float]:
    """Identity attacks and scene utility on frames with a pasted bystander face.

    ``frame_*`` describe the bystander frames; frame i shows the same face image as row i of
    ``face_features`` (the clean, cropped victim faces). Three identity attacks, all scored on
    the frames of the held-out split (:func:`split_per_identity`):

    * ``id_linear_acc``: a linear probe trained on the training split's bystander frames;
    * ``id_from_faces_acc``: a linear probe trained on the training split's clean face photos
      (an attacker with portraits of the people, looking for them in scenes);
    * ``id_1shot_top1``: nearest enrolment photo (one clean face per person) by cosine.

    ``scene_acc``: a linear scene probe trained on clean SUN8 train scenes, tested on the frames.
    """
    ids = np.asarray(frame_identities)
    train, test = split_per_identity(ids, seed=seed)
    in_frames = fit_linear_probe(frame_features[train], ids[train], seed)
    from_faces = fit_linear_probe(face_features[train], ids[train], seed)
    scene = fit_linear_probe(scene_train_features, scene_train_labels, seed)
    enrol = np.array([train[ids[train] == i][0] for i in sorted(set(ids[train].tolist()))])
    sim = cosine_similarity(
        _centred(frame_features[test], face_features), _centred(face_features[enrol], face_features)
    )
    n_ids = len(set(ids.tolist()))
    return {
        "id_linear_acc": probe_accuracy(in_frames, frame_features[test], ids[test]),
        "id_from_faces_acc": probe_accuracy(from_faces, frame_features[test], ids[test]),
        "id_1shot_top1": top1_accuracy(nearest_label(sim, ids[enrol]), ids[test]),
        "id_chance": uniform_chance(n_ids),
        "scene_acc": probe_accuracy(scene, frame_features, frame_scenes),
        "scene_chance": chance_level(frame_scenes),
    }


def _centred(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``x`` standardised with the mean and std of ``reference``."""
    mean, std = reference.mean(axis=0), reference.std(axis=0) + 1e-8
    return (x - mean) / std


def measure_bystander(inputs: EvalInputs) -> Result:
    """The registered ``bystander`` attack: :func:`bystander_attack` on the pasted-face frames."""
    r, data = inputs.released, inputs.data
    metrics = bystander_attack(
        r.bystanders,
        data.bystanders.labels,
        data.bystander_scenes,
        r.scenes_train,
        data.scenes_train.labels,
        r.victims,
        inputs.seed,
    )
    return Result.single(Axis.PL, BYSTANDER, metrics)
