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

# Order is the order of `lifeveil --help`: command -> (module, one-line help). A module is
# imported only when its command runs (or its --help is asked for), so `lifeveil --help` and
# each command start without importing torch, the server or the bench.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "lifeveil.cli.demo",
        "the main job end to end: server + camera agent on real video + query + wire report",
    ),
    "quickstart": (
        "lifeveil.cli.quickstart",
        "train a small privatizer on real sample video, then encode a talking-face clip",
    ),
    "train": ("lifeveil.cli.train", "train a privatizer on images, CSVs and videos"),
    "encode": ("lifeveil.cli.encode", "turn images, image folders and videos into z"),
    "export": ("lifeveil.cli.export", "export a privatizer as ONNX for on-device runtimes"),
    "info": (
        "lifeveil.cli.info",
        "describe a privatizer; benchmark throughput; evaluate on held-out data",
    ),
    "bench": (
        "lifeveil.bench.cli",
        "benchmark privacy methods: utility, privacy attacks, reconstruction, efficiency",
    ),
    "vault": ("lifeveil.vault.cli", "encrypted on-device storage of raw video segments"),
    "device": (
        "lifeveil.device.cli",
        "the on-device agent: record to the vault, privatize, queue and upload z",
    ),
    "server": (
        "lifeveil.server.cli",
        "run the z server (HTTPS + WebSocket) and manage tenants, devices and heads",
    ),
    "query": (
        "lifeveil.cli.query",
        "query a LifeVeil server from the shell: knn, timeline, classify, list, count",
    ),
}
SUBCOMMAND_MODULES = tuple(module for module, _ in SUBCOMMANDS.values())


def build_parser(argv: list[str] | None = None, load_all: bool = True) -> argparse.ArgumentParser:
    """The ``lifeveil`` parser.

    With ``load_all`` every subcommand module is imported and registers its full parser (for
    tools that walk all of them). Otherwise only the command named in ``argv`` is imported;
    the others appear in ``--help`` with their one-line help.
    """
    parser = argparse.ArgumentParser(
        prog="lifeveil",
        description=(
            "LifeVeil: keep raw camera video on the device and send only a privatized "
            "Minimal Sufficient Representation z to servers."
        ),
    )
    parser.add_argument("--version", action="version", version=f"lifeveil {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = _command_in(argv or [])
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if load_all or name == wanted:
            module = _load(module_name)
            if module is not None:
                module.add_parser(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _command_in(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is one), if any."""
    return next((a for a in argv if a in SUBCOMMANDS), None)


def _load(name: str):  # noqa: ANN202  (a module)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:  # subcommand not built into this install
            return None
        raise


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv, load_all=False)
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
