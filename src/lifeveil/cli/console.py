"""``lifeveil console``: parse the options and call :func:`lifeveil.console.serve`.

FastAPI, Jinja2 and uvicorn are imported only when the command runs, so ``lifeveil --help``
and ``lifeveil console --help`` start without them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lifeveil.errors import InputError

STATE_ENV = "LIFEVEIL_DEVICE_DIR"  # the same variables as `lifeveil device` and `lifeveil vault`
VAULT_ENV = "LIFEVEIL_VAULT"
PASSPHRASE_ENV = "LIFEVEIL_VAULT_PASSPHRASE"
DEFAULT_STATE = ".lifeveil/device"


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``lifeveil console``."""
    p = sub.add_parser(
        "console",
        help="the owner's local web console: vault, transparency log, privacy budget, status",
        description=(
            "Serve the device owner's web console on 127.0.0.1 and print a one-time link to "
            "it. Pages: the vault (play, export, delete, retention), the transparency log "
            "(every z queued or sent, live), the privacy budget, and status. The vault is "
            f"unlocked with --key-file, ${PASSPHRASE_ENV}, or its passphrase typed into the "
            "console's sign-in page (never stored)."
        ),
    )
    p.add_argument(
        "--state",
        metavar="DIR",
        type=Path,
        default=Path(os.environ.get(STATE_ENV, DEFAULT_STATE)),
        help=f"device state folder (default: ${STATE_ENV} or {DEFAULT_STATE})",
    )
    p.add_argument(
        "--vault",
        metavar="DIR",
        type=Path,
        default=os.environ.get(VAULT_ENV),
        help=f"encrypted vault folder (default: ${VAULT_ENV}; none: no vault pages)",
    )
    secret = p.add_mutually_exclusive_group()
    secret.add_argument(
        "--passphrase-file",
        metavar="FILE",
        type=Path,
        help=f"unlock the vault at start with the passphrase in FILE (else ${PASSPHRASE_ENV}, "
        "else the sign-in page)",
    )
    secret.add_argument(
        "--key-file", metavar="FILE", type=Path, help="unlock the vault with this key file at start"
    )
    p.add_argument(
        "--port",
        metavar="N",
        type=int,
        default=0,
        help="TCP port on 127.0.0.1 (default: a free port chosen at start)",
    )
    p.set_defaults(func=run_console)


def run_console(args: argparse.Namespace) -> int:
    """Start the console and serve until Ctrl-C."""
    try:
        from lifeveil.console import ConsoleConfig, serve
    except ModuleNotFoundError as exc:
        raise InputError(
            f"the console needs {exc.name}, which is not installed; install it with "
            "`pip install 'lifeveil[console]'`"
        ) from None
    vault = Path(args.vault) if args.vault else None
    if (args.key_file or args.passphrase_file) and vault is None:
        flag = "--key-file" if args.key_file else "--passphrase-file"
        raise InputError(f"{flag} needs --vault (or $LIFEVEIL_VAULT)")
    if vault is not None and not vault.is_dir():
        raise InputError(f"{vault}: no such vault folder; check --vault")
    if not args.state.is_dir():
        print(
            f"lifeveil console: note: {args.state} holds no device state yet (check --state); "
            "the log, budget and status pages will be empty",
            file=sys.stderr,
        )
    config = ConsoleConfig(state=args.state, vault=vault, key_file=args.key_file)
    serve(config, port=args.port, announce=_announce, passphrase=_passphrase(args))
    return 0


def _passphrase(args: argparse.Namespace) -> str | None:
    """The passphrase to unlock with at start, if the owner gave one outside the browser."""
    if args.key_file is not None:
        return None
    if args.passphrase_file is not None:
        try:
            text = args.passphrase_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(
                f"{args.passphrase_file}: cannot read the passphrase file ({exc.strerror}); "
                "check --passphrase-file"
            ) from None
        return text.removesuffix("\n").removesuffix("\r") or None
    return os.environ.get(PASSPHRASE_ENV) or None


def _announce(url: str) -> None:
    print("LifeVeil console: open this link in your browser (it works once):", flush=True)
    print(f"  {url}", flush=True)
    print("Ctrl-C stops the console.", file=sys.stderr, flush=True)
