"""Finite scalar quantisation (FSQ; Mentzer et al., 2023): a deterministic code with a hard
bit budget.

Each of the ``z_dim`` coordinates is squashed into a bounded range and rounded to one of
``levels`` values (odd ``levels``: -1 ... 1 in equal steps). A frame therefore discloses at
most ``z_dim * log2(levels)`` bits, exactly, and the same frame always gives the same code, so
an attacker who averages many releases of it learns nothing more than one release. Training
uses the straight-through estimator (the gradient of rounding is taken as 1).
"""

from __future__ import annotations

import torch
from torch import nn

from lifeveil.privatizer.release import check_levels, code_bits

__all__ = ["FSQHead", "check_levels", "code_bits"]


class FSQHead(nn.Module):
    """Features -> bounded pre-code (in level units) -> rounded code in [-1, 1].

    ``forward`` returns the code; :meth:`bounded` the continuous value before rounding, in
    level units (``-half .. half`` with ``half = (levels - 1) / 2``), used by training terms
    that pull codes together.
    """

    def __init__(self, in_dim: int, z_dim: int, levels: int) -> None:
        super().__init__()
        check_levels(levels)
        self.proj = nn.Linear(in_dim, z_dim)
        self.half = (levels - 1) / 2
        self.levels = levels

    def bounded(self, h: torch.Tensor) -> torch.Tensor:
        """Continuous pre-code in level units, in (-half, half)."""
        return self.half * torch.tanh(self.proj(h))

    def quantise(self, bounded: torch.Tensor) -> torch.Tensor:
        """Round to the nearest level (straight-through) and scale into [-1, 1]."""
        # round(b) exactly in value; the gradient of (b - b.detach()) is that of b
        rounded = torch.round(bounded).detach() + (bounded - bounded.detach())
        return rounded / self.half

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.quantise(self.bounded(h))
