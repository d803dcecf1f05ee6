"""Typed configuration of a privatizer; saved as JSON beside every checkpoint."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifeveil.errors import CheckpointError, InputError
from lifeveil.privatizer.release import ReleaseMode

CONFIG_VERSION = 2  # 2 added the bottleneck choice and the identity-invariance terms
BOTTLENECKS = ("vib", "fsq")


@dataclass(frozen=True)
class PrivatizerConfig:
    """Everything needed to rebuild a privatizer and its training objective."""

    teacher: str = "mobilenet_v2"  # name in the teacher registry (x_semantic)
    teacher_dim: int = 1280  # teacher embedding size the utility decoder predicts
    input_size: int = 128  # student input side in pixels (square centre crop)
    student_width: float = 1.0  # MobileNetV2 width multiplier of the student trunk
    student_blocks: int = 14  # MobileNetV2 feature blocks kept (14 = up to the 96-ch stage)
    student_channels: int = 256  # channels of the student's last 1x1 conv before pooling
    student_init: str = "imagenet"  # "imagenet" (trunk from ImageNet MobileNetV2) or "random"
    frozen_blocks: int = (
        7  # leading trunk blocks kept frozen in training (their outputs are cached)
    )
    z_dim: int = 64  # dimension of the Minimal Sufficient Representation z
    decoder_hidden: int = 512  # hidden width of the utility decoder z -> teacher space
    utility_loss: str = "cosine"  # "cosine" or "mse" between decoded z and teacher embedding
    lam: float = 1e-2  # lambda: weight of KL (nats) against the utility loss
    clip_frames: int = 1  # frames pooled into one z (1 = per-frame mode; >1 = clip mode)
    # What privatize() releases by default; the KL bound holds only for samples.
    deploy_mode: ReleaseMode = ReleaseMode.SAMPLE
    # "vib": Gaussian posterior, KL-bounded (version-1 checkpoints are all vib); "fsq": a
    # deterministic finite-scalar-quantised code of z_dim * log2(fsq_levels) bits exactly.
    bottleneck: str = "vib"
    fsq_levels: int = 5  # values per coordinate of an fsq code (odd)
    # Identity invariance, label-free (weights 0 = off): face images pulled to one shared
    # "a person" code, and scenes with a pasted face pulled to the code of the clean scene.
    collapse_weight: float = 0.0
    invariance_weight: float = 0.0
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        if self.utility_loss not in ("cosine", "mse"):
            raise CheckpointError(
                f"utility_loss must be 'cosine' or 'mse', got {self.utility_loss!r}"
            )
        try:
            object.__setattr__(
                self, "deploy_mode", ReleaseMode.parse(self.deploy_mode, "deploy_mode")
            )
        except InputError as exc:
            raise CheckpointError(str(exc)) from None
        if self.bottleneck not in BOTTLENECKS:
            raise CheckpointError(
                f"bottleneck must be one of {', '.join(BOTTLENECKS)}, got {self.bottleneck!r}"
            )
        if self.bottleneck == "fsq":
            from lifeveil.privatizer.release import check_levels

            check_levels(self.fsq_levels)
            if self.deploy_mode != "mean":
                raise CheckpointError(
                    "an fsq privatizer releases its deterministic code: deploy_mode must be 'mean'"
                )
        if self.collapse_weight < 0 or self.invariance_weight < 0:
            raise CheckpointError("collapse_weight and invariance_weight must be >= 0")
        if self.student_init not in ("imagenet", "random"):
            raise CheckpointError(
                f"student_init must be 'imagenet' or 'random', got {self.student_init!r}"
            )
        if not 0 <= self.frozen_blocks <= self.student_blocks:
            raise CheckpointError(
                f"frozen_blocks must be in 0..{self.student_blocks}, got {self.frozen_blocks}"
            )
        if self.z_dim < 1 or self.input_size < 32 or self.clip_frames < 1 or self.lam < 0:
            raise CheckpointError(
                f"invalid config: z_dim={self.z_dim} (>=1), input_size={self.input_size} (>=32), "
                f"clip_frames={self.clip_frames} (>=1), lam={self.lam} (>=0)"
            )

    @property
    def deterministic(self) -> bool:
        """True when the same frame always gives the same released z."""
        return self.bottleneck == "fsq" or self.deploy_mode == "mean"

    @property
    def wire_dtype(self) -> str:
        """The smallest exact uplink encoding of this z: ``fsqL`` (the code packed in
        ceil(d*log2(L)/8) bytes) for an fsq privatizer, ``fp16`` for a VIB one."""
        return f"fsq{self.fsq_levels}" if self.bottleneck == "fsq" else "fp16"

    @property
    def label(self) -> str:
        """Short human description, e.g. ``vib lambda=0.01 (sample)`` or ``fsq 64x5 (149 bits)``."""
        if self.bottleneck == "fsq":
            from lifeveil.privatizer.release import code_bits

            bits = code_bits(self.z_dim, self.fsq_levels)
            return (
                f"fsq {self.z_dim}x{self.fsq_levels} levels ({bits:.0f} bits/frame, deterministic)"
            )
        return f"vib lambda={self.lam:g} ({self.deploy_mode})"

    def replace(self, **changes: Any) -> PrivatizerConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> PrivatizerConfig:
        """Parse a dict, refusing unknown keys and newer versions."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"{source}: unknown privatizer config keys {unknown}")
        if int(data.get("version", CONFIG_VERSION)) > CONFIG_VERSION:
            raise CheckpointError(
                f"{source}: config version {data['version']} is newer than this LifeVeil "
                f"understands ({CONFIG_VERSION}); upgrade lifeveil"
            )
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> PrivatizerConfig:
        """Read a JSON config file."""
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise CheckpointError(
                f"{p}: config file missing (expected JSON beside the checkpoint)"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{p}: not a valid JSON config ({exc})") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{p}: expected a JSON object")
        return cls.from_dict(data.get("privatizer", data), source=str(p))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the model itself is a PrivatizerConfig)."""

    epochs: int = 12  # passes over the cached views
    batch_size: int = 64  # views (or clips) per step
    lr: float = 2e-3  # AdamW learning rate, cosine-decayed to 5 % over training
    weight_decay: float = 1e-4
    views: int = 4  # augmented views per training frame (view 0 is the plain centre crop)
    seed: int = 0
    kl_warmup_epochs: int = 3  # lambda ramps linearly from 0 over these epochs
