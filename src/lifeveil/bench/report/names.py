"""Human names, units and a glossary for the report's metrics, grouped into small tables.

Keys are the report's flattened keys (``pl.reid.top1``; see :mod:`lifeveil.bench.schema`).
Every key belongs to one :class:`Group` (one table in report.html); a key this catalogue does
not know (a new attack's metric) gets a group named after its result key and its raw name, so
a new attack shows up without touching this file.
"""

from __future__ import annotations

from dataclasses import dataclass

from lifeveil.bench.report.aggregate import axis_of


@dataclass(frozen=True)
class Metric:
    """How the report shows one metric."""

    label: str  # column header
    unit: str = ""  # shown in the header, e.g. "dB"; "" for a plain number
    detail: bool = False  # a bookkeeping or tuning number: shown in the group's details only


@dataclass(frozen=True)
class Group:
    """One table of the report: the metrics of one task or attack."""

    axis: str  # "DTP", "PL", "RR" or "SE"
    title: str
    glossary: str  # what it measures, for whom lower or higher is better
    prefixes: tuple[str, ...]  # flattened key prefixes of its metrics


FRACTION = "0-1"

GROUPS: tuple[Group, ...] = (
    Group(
        "DTP",
        "Scene recognition (SUN8)",
        "The server's task: a scene classifier (8 SUN8 categories) trained on the released "
        "features of the train split, scored on the test split; retrieval ranks train images "
        "by cosine similarity. Higher is more useful.",
        ("dtp.scene_probe.", "dtp.scene_retrieval."),
    ),
    Group(
        "DTP",
        "Activity clips",
        "Utility on video: the mean feature of the first half of a clip retrieves the second "
        "half of the same clip among all clips (both directions). Higher is more useful.",
        ("dtp.clip_agreement.",),
    ),
    Group(
        "PL",
        "Identity from a single release (ORL)",
        "An attacker with labelled photos of each person trains probes on released features "
        "(5 images per person) or matches against one enrolment photo (re-ID). Lower is more "
        "private; chance is 1 / people.",
        ("pl.identity_probe.", "pl.reid."),
    ),
    Group(
        "PL",
        "Bystanders in scenes",
        "Victim faces pasted into scenes (8-20 % of the frame height): who is in the frame "
        "(lower is more private) and what the scene is (higher is more useful), on the same "
        "frames.",
        ("pl.bystander.",),
    ),
    Group(
        "PL",
        "Membership inference",
        "Was a frame in the training set of a downstream head? Loss-threshold attack, ROC "
        "AUC: 0.5 is chance, lower is more private.",
        ("pl.membership.",),
    ),
    Group(
        "PL",
        "Face detector coverage (face-region baselines)",
        "Fraction of portraits and bystander frames in which the baseline's detector found a "
        "face; a missed face is uploaded untouched.",
        ("pl.detector.",),
    ),
    Group(
        "RR",
        "Reconstruction by decoder",
        "A decoder fitted on the attacker's own faces (LFW portraits, ORL s1-s10) maps released "
        "features back to a 64-px face. Pixel quality (PSNR in dB, SSIM) and, what matters, "
        "whether SFace picks the right person from the reconstruction. Lower is more private.",
        ("rr.recon_decoder.",),
    ),
    Group(
        "RR",
        "Reconstruction by optimisation",
        "A generator's latent is optimised so that the method's (differentiable) encoder "
        "reproduces the released vector (the paper's Appendix A). Lower identification is "
        "more private.",
        ("rr.recon_optim.",),
    ),
    Group(
        "SE",
        "On-device cost and bytes on the wire",
        "What runs on the device (parameters, MFLOPs and latency per frame) and what one "
        "frame costs on the wire, beside the JPEG and H.264 sizes of the same frames. Lower "
        "is cheaper.",
        ("se.",),
    ),
)

METRICS: dict[str, Metric] = {
    "dtp.scene_probe.linear_acc": Metric("scene accuracy, linear probe", FRACTION),
    "dtp.scene_probe.knn_acc": Metric("scene accuracy, k-NN", FRACTION),
    "dtp.scene_retrieval.map": Metric("scene retrieval mAP", FRACTION),
    "dtp.scene_probe.chance": Metric("scene chance (majority class)", FRACTION, True),
    "dtp.scene_retrieval.chance_map": Metric("retrieval chance mAP", FRACTION, True),
    "dtp.scene_probe.knn_k": Metric("k of the k-NN probe (tuned)", "", True),
    "dtp.scene_probe.linear_C": Metric("C of the linear probe (tuned)", "", True),
    "dtp.clip_agreement.top1": Metric("clip self-retrieval top-1", FRACTION),
    "dtp.clip_agreement.chance": Metric("clip chance", FRACTION, True),
    "dtp.clip_agreement.n_clips": Metric("clips", "", True),
    "pl.identity_probe.linear_acc": Metric("identity, linear probe", FRACTION),
    "pl.identity_probe.mlp_acc": Metric("identity, MLP probe", FRACTION),
    "pl.reid.top1": Metric("1-shot re-ID top-1", FRACTION),
    "pl.reid.map_1shot": Metric("1-shot re-ID mean reciprocal rank", FRACTION),
    "pl.reid.map": Metric("re-ID mAP (all photos)", FRACTION),
    "pl.identity_probe.chance": Metric("identity chance", FRACTION, True),
    "pl.reid.chance": Metric("re-ID chance", FRACTION, True),
    "pl.identity_probe.n_identities": Metric("people", "", True),
    "pl.identity_probe.n_train_per_identity": Metric("training photos per person", "", True),
    "pl.bystander.id_linear_acc": Metric("identity, probe on frames", FRACTION),
    "pl.bystander.id_from_faces_acc": Metric("identity, probe on portraits", FRACTION),
    "pl.bystander.id_1shot_top1": Metric("identity, 1-shot", FRACTION),
    "pl.bystander.scene_acc": Metric("scene accuracy on these frames", FRACTION),
    "pl.bystander.id_chance": Metric("identity chance", FRACTION, True),
    "pl.bystander.scene_chance": Metric("scene chance", FRACTION, True),
    "pl.membership.linear_auc": Metric("AUC, linear head", FRACTION),
    "pl.membership.mlp_auc": Metric("AUC, MLP head", FRACTION),
    "pl.membership.linear_train_acc": Metric("linear head, train accuracy", FRACTION, True),
    "pl.membership.linear_heldout_acc": Metric("linear head, held-out accuracy", FRACTION, True),
    "pl.membership.mlp_train_acc": Metric("MLP head, train accuracy", FRACTION, True),
    "pl.membership.mlp_heldout_acc": Metric("MLP head, held-out accuracy", FRACTION, True),
    "pl.detector.found_victims": Metric("faces found, portraits", FRACTION),
    "pl.detector.found_bystanders": Metric("faces found, bystander frames", FRACTION),
    "rr.recon_decoder.id_match": Metric("identified by SFace", FRACTION),
    "rr.recon_decoder.face_found": Metric("face detected in reconstruction", FRACTION),
    "rr.recon_decoder.psnr": Metric("PSNR", "dB"),
    "rr.recon_decoder.ssim": Metric("SSIM", "-1..1"),
    "rr.recon_decoder.id_match_chance": Metric("identification chance", FRACTION, True),
    "rr.recon_decoder.id_match_real": Metric("real photos identified (ceiling)", FRACTION, True),
    "rr.recon_decoder.psnr_mean_face": Metric("PSNR of the mean face (no information)", "dB", True),
    "rr.recon_decoder.ssim_mean_face": Metric("SSIM of the mean face (no information)", "", True),
    "rr.recon_decoder.n_aux": Metric("attacker's faces", "", True),
    "rr.recon_decoder.n_images": Metric("victim images reconstructed", "", True),
    "rr.recon_decoder.id_judge_missing": Metric("identification not scored because", "", True),
    "rr.recon_optim.id_match": Metric("identified by SFace", FRACTION),
    "rr.recon_optim.face_found": Metric("face detected in reconstruction", FRACTION),
    "rr.recon_optim.psnr": Metric("PSNR", "dB"),
    "rr.recon_optim.ssim": Metric("SSIM", "-1..1"),
    "rr.recon_optim.le_rel": Metric("feature error / feature energy", ""),
    "rr.recon_optim.le": Metric("feature error L_E (best)", "MSE", True),
    "rr.recon_optim.le_start": Metric("feature error at the start", "MSE", True),
    "rr.recon_optim.le_true": Metric("feature error of the true image", "MSE", True),
    "rr.recon_optim.li": Metric("pixel error L_I", "L2", True),
    "rr.recon_optim.available": Metric("attack possible (differentiable form)", "", True),
    "rr.recon_optim.reason": Metric("not run because", "", True),
    "rr.recon_optim.id_match_chance": Metric("identification chance", FRACTION, True),
    "rr.recon_optim.id_match_real": Metric("real photos identified (ceiling)", FRACTION, True),
    "rr.recon_optim.n_targets": Metric("victims inverted", "", True),
    "rr.recon_optim.restarts": Metric("random starts", "", True),
    "rr.recon_optim.steps": Metric("Adam steps", "", True),
    "rr.recon_optim.id_judge_missing": Metric("identification not scored because", "", True),
    "se.upload": Metric("what is uploaded"),
    "se.params": Metric("on-device parameters", "count"),
    "se.mflops": Metric("on-device compute", "MFLOPs/frame"),
    "se.latency_ms": Metric("on-device latency", "ms/frame"),
    "se.wire_bytes": Metric("on the wire", "bytes/frame"),
    "se.jpeg_bytes": Metric("same frame as JPEG", "bytes"),
    "se.h264_bytes": Metric("same frames as H.264", "bytes/frame"),
    "se.vector_bytes": Metric("vector payload", "bytes", True),
    "se.wire_frame_bytes": Metric("wire frame", "bytes", True),
    "se.latency_iqr_ms": Metric("latency interquartile range", "ms", True),
    "se.threads": Metric("torch threads", "", True),
}


def metric(key: str) -> Metric:
    """The catalogue entry of ``key``, or its raw name (without the axis) when unknown."""
    return METRICS.get(key) or Metric(key.split(".", 1)[-1])


def header(key: str) -> str:
    """Column header: the human name, with the unit in parentheses."""
    m = metric(key)
    return f"{m.label} ({m.unit})" if m.unit else m.label


def group_of(key: str) -> Group:
    """The table a key belongs to; unknown keys get a group named after their result key."""
    for group in GROUPS:
        if key.startswith(group.prefixes):
            return group
    result_key = ".".join(key.split(".")[:2])
    name = key.split(".")[1] if key.count(".") >= 2 else key
    return Group(axis_of(key), name.replace("_", " "), "", (result_key + ".",))
