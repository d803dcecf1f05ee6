"""The on-device privatizer M and its training (the Minimal Sufficient Representation z).

>>> from lifeveil.privatizer import Privatizer
>>> p = Privatizer.load()            # the shipped default           # doctest: +SKIP
>>> rep = p.privatize(frames)        # frames: RGB uint8 (H, W, 3)    # doctest: +SKIP
>>> rep.z.shape, rep.kl_bits.mean()  # (N, 64), bits per frame        # doctest: +SKIP
"""

from lifeveil.privatizer.checkpoint import load_checkpoint, save_checkpoint
from lifeveil.privatizer.config import PrivatizerConfig
from lifeveil.privatizer.model import DeployedPrivatizer, PrivatizerModel
from lifeveil.privatizer.privatizer import Privatizer, Representation

__all__ = [
    "DeployedPrivatizer",
    "Privatizer",
    "PrivatizerConfig",
    "PrivatizerModel",
    "Representation",
    "load_checkpoint",
    "save_checkpoint",
]
