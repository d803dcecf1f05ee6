"""Small helpers shared by the CLI subcommands."""

from __future__ import annotations

import argparse
import os


def add_threads_arg(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: CPU threads for torch (default: all cores, at most 8)."""
    parser.add_argument(
        "--threads",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="CPU threads for torch (default: %(default)s)",
    )


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's intra-op thread count from ``--threads``."""
    import torch

    torch.set_num_threads(max(1, int(getattr(args, "threads", 1))))


def parse_floats(text: str) -> list[float]:
    """'1e-4,1e-3' -> [0.0001, 0.001]."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None
