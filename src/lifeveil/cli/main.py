"""``lifeveil`` entry point: dispatches to one module per subcommand.

Each subcommand module exposes ``add_parser(subparsers)``, which registers its parser and sets
``func(args) -> int``. Every failure prints one line to stderr and exits non-zero without a
traceback (see :mod:`lifeveil.cli.failures`); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from lifeveil import __version__
from lifeveil.cli.failures import describe_failure

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
    "adapt": (
        "lifeveil.cli.adapt",
        "learn an adapter from an old privatizer's z space to a new one's (model evolution)",
    ),
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
        "query a LifeVeil server from the shell: knn, timeline, classify, list, count, spaces, migrate",
    ),
    "console": (
        "lifeveil.cli.console",
        "the owner's local web console: vault, transparency log, privacy budget, status",
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
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of a failure instead of one line (also LIFEVEIL_DEBUG=1)",
    )
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
    """Run the CLI; returns the process exit code.

    Every failure ends in one line on stderr, ``lifeveil COMMAND: error: what - how to fix``,
    and a non-zero exit code (2 for bad input, 1 for a failure of the environment or a bug);
    ``--debug`` (anywhere on the line) or ``LIFEVEIL_DEBUG=1`` shows the traceback instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("LIFEVEIL_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser(argv, load_all=False)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"lifeveil {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # noqa: BLE001  (every failure becomes one line; --debug shows it)
        if debug:
            raise
        message, code = describe_failure(exc)
        print(f"lifeveil {args.command}: error: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
