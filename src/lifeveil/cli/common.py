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


class _DeprecatedAlias(argparse.Action):
    """Stores into the new flag's dest and warns once that the old name is going away."""

    def __init__(
        self, option_strings: list[str], dest: str, new: str = "", **kwargs: object
    ) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)  # type: ignore[arg-type]

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        import sys

        print(
            f"warning: {option_string} is deprecated and goes away in the next release; "
            f"use {self.new}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def add_deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str, dest: str) -> None:
    """Accept ``old`` for one more release as a hidden synonym of ``new`` (same ``dest``)."""
    parser.add_argument(old, dest=dest, action=_DeprecatedAlias, new=new, help=argparse.SUPPRESS)
