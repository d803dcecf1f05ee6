"""Privacy methods by name: each maps images to what leaves the device.

>>> from lifeveil.bench.methods import create_method, list_methods
>>> "blur" in list_methods()
True
>>> create_method("blur", {"sigma": 4}, seed=0).id
'blur[sigma=4]'
"""

from __future__ import annotations

from typing import Any

from lifeveil.bench.methods.base import Method
from lifeveil.registry import Registry

METHODS: Registry[Method] = Registry("method")


def register_method(family: str, factory: Any, help: str = "") -> None:
    """Add a method family (a ``Method`` subclass or factory ``(params, seed)``); duplicates refused."""
    METHODS.register(family, factory, help)


def create_method(family: str, params: dict[str, Any] | None = None, seed: int = 0) -> Method:
    """Build the method ``family`` at setting ``params``; unknown names list the families."""
    return METHODS.get(family)(params=dict(params or {}), seed=seed)


def list_methods() -> list[str]:
    """Registered method families."""
    return METHODS.names()


def _register_builtin() -> None:
    from lifeveil.bench.methods.defacing import Deface
    from lifeveil.bench.methods.dp import DPEmbedding
    from lifeveil.bench.methods.faces import FaceBlur
    from lifeveil.bench.methods.msr import MSR
    from lifeveil.bench.methods.pixel import Blur, Noise, Pixelate
    from lifeveil.bench.methods.raw import RawTeacher

    register_method("raw-teacher", RawTeacher, "unprotected teacher embedding (no privacy)")
    register_method("blur", Blur, "Gaussian blur (sigma px of the 224-px frame), then the teacher")
    register_method("pixelate", Pixelate, "block pixelation (block px), then the teacher")
    register_method(
        "noise", Noise, "additive Gaussian pixel noise (sigma in [0,1] units), then the teacher"
    )
    register_method(
        "face-blur", FaceBlur, "YuNet-detected faces blurred (sigma px), then the teacher"
    )
    register_method(
        "deface",
        Deface,
        "the deface package (CenterFace; mode blur/solid/mosaic), then the teacher",
    )
    register_method(
        "dp-embedding",
        DPEmbedding,
        "teacher embedding clipped to C + Gaussian noise for (epsilon, delta)",
    )
    register_method("msr", MSR, "LifeVeil privatizer z (ckpt, mode mean/sample)")


_register_builtin()

__all__ = ["METHODS", "Method", "create_method", "list_methods", "register_method"]
