"""``lifeveil`` entry point: dispatches to one module per subcommand.

Each subcommand module exposes ``add_parser(subparsers)``, which registers its parser and sets
``func(args) -> int``. User errors (``LifeVeilError``) print one line to stderr and exit
non-zero without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from lifeveil import __version__
from lifeveil.errors import LifeVeilError

# Order is the order of `lifeveil --help`.
SUBCOMMAND_MODULES = (
    "lifeveil.cli.demo",
    "lifeveil.cli.quickstart",
    "lifeveil.cli.train",
    "lifeveil.cli.encode",
    "lifeveil.cli.export",
    "lifeveil.cli.info",
    "lifeveil.bench.cli",
    "lifeveil.vault.cli",
    "lifeveil.device.cli",
    "lifeveil.server.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The full ``lifeveil`` parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="lifeveil",
        description=(
            "LifeVeil: keep raw camera video on the device and send only a privatized "
            "Minimal Sufficient Representation z to servers."
        ),
    )
    parser.add_argument("--version", action="version", version=f"lifeveil {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # subcommand not built into this install
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except LifeVeilError as exc:
        print(f"lifeveil {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"lifeveil {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
