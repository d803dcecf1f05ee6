"""Accumulation (PL): who is this person, from the mean of k releases of them.

An always-on camera releases the same person many times. Per-release noise (a VIB sample,
DP noise, pixel noise) averages away over k releases, so the single-release accuracy
understates what leaks. Threat model: the attacker owns the public model (the method), holds
labelled photos of each person (the attacker-train half of that person's images), and
collects releases of the person's other images (the test half). For each k it averages k
releases drawn at random from the person's pool of (image, draw) pairs, and for k = "inf" it
uses the noise-free encoding :meth:`Method.noise_free`, the limit of infinitely many releases
of one image. Three attackers per k:

- 1-shot re-ID: gallery = noise-free encodings of one train image per person (every train
  image takes a turn; results average), queries = k-averages of the test half; cosine 1-NN
  after standardising with the statistics of auxiliary people (never the victims).
- linear and MLP probes trained on k-averages of the train half (several random averages per
  person) and tested on k-averages of the test half.

``headline`` is the best of the three at the largest k: the accumulation identity number the
report leads with.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from sklearn.preprocessing import StandardScaler

from lifeveil.bench.attacks.identity import split_per_identity
from lifeveil.bench.contracts import EvalInputs, Result, Stopwatch
from lifeveil.bench.methods.base import Method
from lifeveil.bench.metrics import cosine_similarity, nearest_label, uniform_chance
from lifeveil.bench.schema import ACCUMULATION_LFW, ACCUMULATION_ORL, Axis
from lifeveil.bench.tasks.probes import fit_linear_probe, fit_mlp_probe, probe_accuracy

DEFAULT_KS: tuple[int, ...] = (1, 4, 16, 64, 256)
DRAWS_PER_IMAGE = 64  # releases per image: 4+ images per half give k=256 fresh releases
AVERAGES_PER_IDENTITY = 8  # random k-averages per person, for probe training and for queries
CHUNK_IMAGES = 48  # images per draws() call (bounds memory: CHUNK x draws x D floats)
TRAIN_FRACTION = 0.5  # of each person's images, for the attacker (the rest are attacked)
ATTACKERS = ("linear_acc", "mlp_acc", "reid_top1")

Pair = tuple[np.ndarray, np.ndarray]  # (vectors (M, D), identity labels (M,))


def pool_means(
    draws: np.ndarray, n_draws: int, k: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    """``count`` means of k (image, draw) pairs from one person's pool -> (count, D) float32.

    ``draws`` is (images, stored, D) with ``stored`` equal to ``n_draws`` or 1 (a deterministic
    release stored once); the pool has images x n_draws pairs. Pairs are taken without
    replacement while the pool lasts; a k above the pool size takes whole shuffled passes over
    it plus a random remainder, so every pair is used as evenly as possible.
    """
    pool = draws.shape[0] * n_draws
    passes, rest = divmod(k, pool)
    out = np.empty((count, draws.shape[2]), np.float32)
    for i in range(count):
        pick = np.concatenate(
            [*(rng.permutation(pool) for _ in range(passes)), rng.choice(pool, rest, replace=False)]
        )
        image, draw = np.divmod(pick, n_draws)
        out[i] = draws[image, draw % draws.shape[1]].mean(axis=0)
    return out


def _identity_chunks(labels: np.ndarray, max_images: int) -> Iterator[list[str]]:
    """Consecutive groups of identities holding at most ``max_images`` images (>= 1 identity)."""
    chunk: list[str] = []
    size = 0
    for ident in sorted(set(labels.tolist())):
        n = int(np.sum(labels == ident))
        if chunk and size + n > max_images:
            yield chunk
            chunk, size = [], 0
        chunk.append(ident)
        size += n
    if chunk:
        yield chunk


def k_averages(
    method: Method,
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    noise_free: np.ndarray,
    in_train: np.ndarray,
    ks: Sequence[int],
    n_draws: int,
    averages: int,
    rng: np.random.Generator,
) -> dict[int, tuple[Pair, Pair]]:
    """Per k: (train pair, test pair) of k-averages, ``averages`` of them per person and half.

    ``in_train`` marks the attacker-train images (boolean, per image). A stochastic method is
    asked for ``n_draws`` releases of each image, in chunks of people to bound memory; a
    deterministic one releases its noise-free encoding every time (the Method contract).
    """
    vectors: dict[tuple[int, bool], list[np.ndarray]] = {}
    names: dict[tuple[int, bool], list[np.ndarray]] = {}
    for chunk in _identity_chunks(labels, CHUNK_IMAGES):
        idx = np.flatnonzero(np.isin(labels, chunk))
        if method.stochastic:
            drawn = np.asarray(method.draws([images[i] for i in idx], n_draws), np.float32)
        else:
            drawn = noise_free[idx][:, None, :]
        for ident in chunk:
            for half in (True, False):
                rows = np.flatnonzero((labels[idx] == ident) & (in_train[idx] == half))
                for k in ks:
                    means = pool_means(drawn[rows], n_draws, k, averages, rng)
                    vectors.setdefault((k, half), []).append(means)
                    names.setdefault((k, half), []).append(np.full(averages, ident))
    return {
        k: tuple(
            (np.concatenate(vectors[k, half]), np.concatenate(names[k, half]))
            for half in (True, False)
        )
        for k in ks
    }


def one_shot_top1(
    queries: np.ndarray,
    query_labels: np.ndarray,
    gallery_features: np.ndarray,
    gallery_labels: np.ndarray,
    scaler: StandardScaler,
) -> float:
    """1-shot re-ID top-1, averaged over rounds: in round r each person's r-th gallery image
    is their only enrolment (rounds = the fewest gallery images of any person)."""
    q = scaler.transform(queries)
    ids = sorted(set(np.asarray(gallery_labels).tolist()))
    per_id = [np.flatnonzero(gallery_labels == i) for i in ids]
    rounds = min(len(p) for p in per_id)
    tops = []
    for r in range(rounds):
        gallery = scaler.transform(gallery_features[[p[r] for p in per_id]])
        predicted = nearest_label(cosine_similarity(q, gallery), np.array(ids))
        tops.append(float(np.mean(predicted == query_labels)))
    return float(np.mean(tops))


def _attack(
    train: Pair, test: Pair, gallery: Pair, scaler: StandardScaler, seed: int
) -> dict[str, float]:
    """The three attackers: probes fitted on ``train``, all scored on ``test``."""
    linear = fit_linear_probe(train[0], train[1], seed)
    mlp = fit_mlp_probe(train[0], train[1], seed)
    return {
        "linear_acc": probe_accuracy(linear, *test),
        "mlp_acc": probe_accuracy(mlp, *test),
        "reid_top1": one_shot_top1(test[0], test[1], gallery[0], gallery[1], scaler),
    }


def accumulation_attack(
    method: Method,
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    aux_images: Sequence[np.ndarray],
    ks: Sequence[int] = DEFAULT_KS,
    seed: int = 0,
    n_draws: int = DRAWS_PER_IMAGE,
    averages: int = AVERAGES_PER_IDENTITY,
    *,
    known: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, object]:
    """Identity from k-averaged releases of the same person, for each k and for k = inf.

    Args:
        method: the public model (its ``draws``, ``noise_free`` and ``stochastic``).
        images, labels: the victims' faces and identities (two or more images per person).
        aux_images: other people's faces, for the re-ID standardisation statistics.
        ks: numbers of releases averaged (the pool of a person is its half's images x
            ``n_draws``; larger k reuse pairs evenly).
        n_draws: releases per image (a stochastic method's fresh draws may be fewer: see
            ``fresh_draws`` in the result).
        averages: random k-averages per person, for probe training and as queries.
        known: ``(noise_free(images), noise_free(aux_images))`` when the caller already has
            them (e.g. a deterministic method's releases), to save a pass of the method.

    Returns a JSON-ready dict: ``k`` (ints), ``linear_acc``, ``mlp_acc``, ``reid_top1`` and
    ``identity`` (their maximum) per k; the same at k = inf with suffix ``_inf``;
    ``headline`` (``identity`` at the largest k), ``headline_inf``, ``worst`` (the maximum over
    every k and inf), ``chance``, ``n_identities``, ``n_draws``, ``fresh_draws``,
    ``stochastic``, ``averages_per_identity`` and ``images_train`` / ``images_test``.
    """
    labels = np.asarray(labels)
    ks = sorted({int(k) for k in ks})
    _, counts = np.unique(labels, return_counts=True)
    if not ks or min(ks) < 1 or counts.min() < 2:
        raise ValueError(
            f"accumulation_attack: needs k values >= 1 (got {ks}) and two or more images per "
            f"person (the fewest is {counts.min()}): one to train the attacker, one to attack"
        )
    train, test = split_per_identity(labels, seed=seed, fraction=TRAIN_FRACTION)
    in_train = np.isin(np.arange(len(labels)), train)
    rng = np.random.default_rng([seed, 31])
    if known is None:
        known = (method.noise_free(images), method.noise_free(aux_images))
    noise_free = np.asarray(known[0], np.float32)
    scaler = StandardScaler().fit(np.asarray(known[1], np.float32))
    gallery = (noise_free[train], labels[train])
    averaged = k_averages(method, images, labels, noise_free, in_train, ks, n_draws, averages, rng)
    per_k = [_attack(*averaged[k], gallery, scaler, seed) for k in ks]
    inf = _attack(gallery, (noise_free[test], labels[test]), gallery, scaler, seed)
    identity = [max(r[a] for a in ATTACKERS) for r in per_k]
    identity_inf = max(inf[a] for a in ATTACKERS)
    n_ids = len(set(labels.tolist()))
    return {
        "k": ks,
        **{a: [r[a] for r in per_k] for a in ATTACKERS},
        "identity": identity,
        **{f"{a}_inf": inf[a] for a in ATTACKERS},
        "identity_inf": identity_inf,
        "headline": identity[-1],
        "headline_inf": identity_inf,
        "worst": max([*identity, identity_inf]),
        "chance": uniform_chance(n_ids),
        "n_identities": n_ids,
        "n_draws": int(n_draws),
        "fresh_draws": int(method.fresh_draws(n_draws)),
        "stochastic": bool(method.stochastic),
        "averages_per_identity": int(averages),
        "images_train": len(train),
        "images_test": len(test),
    }


def measure_accumulation(inputs: EvalInputs) -> Result:
    """The registered ``accumulation`` attack, on ORL victims and on LFW held-out identities.

    Files ``accumulation_orl`` and ``accumulation_lfw``, each timed (the timings include the
    method's releases of these faces: the attack asks for them). A deterministic method's ORL
    releases are reused (they are its noise-free encodings).
    """
    data, r, preset = inputs.data, inputs.released, inputs.preset
    orl_known = None if inputs.method.stochastic else (r.victims, r.aux)
    faces = {
        ACCUMULATION_ORL: (data.faces_victims, data.faces_aux, orl_known),
        ACCUMULATION_LFW: (data.faces_lfw_heldout, data.faces_lfw_aux, None),
    }
    clock = Stopwatch()
    entries = {}
    for key, (victims, aux, known) in faces.items():
        with clock(key):
            entries[key] = accumulation_attack(
                inputs.method,
                victims.images,
                victims.labels,
                aux.images,
                ks=tuple(int(k) for k in preset.accumulation_k),
                seed=inputs.seed,
                n_draws=preset.accumulation_draws,
                averages=preset.accumulation_averages,
                known=known,
            )
    return Result(Axis.PL, entries, clock.seconds)
