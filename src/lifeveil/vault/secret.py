"""The secret that unlocks a vault: a key file, or a passphrase read from a file, from
``$LIFEVEIL_VAULT_PASSPHRASE`` or from a prompt, in that order.

``unlock_secret`` returns the keyword arguments of ``Vault.open`` / ``Vault.init``;
``create_vault`` is ``Vault.init`` that also makes a missing key file (and removes it again if
the vault cannot be created, since it protects nothing yet).
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from lifeveil.errors import VaultKeyError
from lifeveil.vault.keys import KdfParams, generate_key_file
from lifeveil.vault.vault import Vault

PASSPHRASE_ENV = "LIFEVEIL_VAULT_PASSPHRASE"


def unlock_secret(
    key_file: str | None, passphrase_file: str | None, *, confirm: bool = False
) -> dict[str, str]:
    """``{"key_file": ...}`` when a key file is given, else ``{"passphrase": ...}`` read by
    :func:`read_passphrase` (asking twice at a prompt when ``confirm``)."""
    if key_file:
        return {"key_file": key_file}
    return {"passphrase": read_passphrase(passphrase_file, confirm=confirm)}


def read_passphrase(passphrase_file: str | None, *, confirm: bool) -> str:
    """The passphrase from ``passphrase_file`` (one trailing newline dropped), else from
    ``$LIFEVEIL_VAULT_PASSPHRASE``, else from a terminal prompt. Raises VaultKeyError when
    none is available or it is empty."""
    if passphrase_file:
        try:
            text = Path(passphrase_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise VaultKeyError(
                f"{passphrase_file}: cannot read passphrase file ({exc.strerror})"
            ) from None
        passphrase = text.removesuffix("\n").removesuffix("\r")
    elif os.environ.get(PASSPHRASE_ENV) is not None:
        passphrase = os.environ[PASSPHRASE_ENV]
    else:
        passphrase = prompt_passphrase(confirm)
    if not passphrase:
        raise VaultKeyError("the passphrase is empty; choose a non-empty passphrase")
    return passphrase


def prompt_passphrase(confirm: bool) -> str:
    """Ask on the terminal (twice with ``confirm``); VaultKeyError when stdin is not one."""
    if not sys.stdin.isatty():
        raise VaultKeyError(
            f"no passphrase: use --passphrase-file, ${PASSPHRASE_ENV} or --key-file, or run "
            "interactively"
        )
    passphrase = getpass.getpass("Vault passphrase: ")
    if confirm and getpass.getpass("Repeat passphrase: ") != passphrase:
        raise VaultKeyError("the two passphrases differ; nothing was created")
    return passphrase


def create_vault(
    root: Path,
    *,
    kdf: KdfParams,
    key_file: str | None = None,
    passphrase_file: str | None = None,
) -> tuple[Vault, bool]:
    """``Vault.init`` unlocked by ``key_file`` (32 random bytes written there first if it
    does not exist) or by a passphrase (see :func:`read_passphrase`, confirmed at a prompt).

    Returns the open vault and whether the key file was created.
    """
    new_key = Path(key_file) if key_file and not Path(key_file).exists() else None
    if new_key is not None:
        generate_key_file(new_key)
    try:
        secret = unlock_secret(key_file, passphrase_file, confirm=True)
        vault = Vault.init(root, kdf=kdf, **secret)  # type: ignore[arg-type]
    except BaseException:
        if new_key is not None:  # it protects nothing yet
            new_key.unlink(missing_ok=True)
        raise
    return vault, new_key is not None
