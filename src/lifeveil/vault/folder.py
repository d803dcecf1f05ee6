"""The vault folder: creating it, unlocking it, and writing its keyslot.

Opening derives the KEK from a passphrase (Argon2id) or a key file and unwraps the master key;
nothing is read from or written to the index before that succeeds, so a wrong secret changes
nothing. The folder and its subfolders are 0700, every file the vault writes 0600, also when
the folder existed before ``init`` (SQLite gives its -wal and -shm files the index's mode).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from lifeveil.errors import VaultError, VaultIntegrityError
from lifeveil.io import atomic_path, private_dir, private_file
from lifeveil.vault.format import ID_BYTES, KEY_BYTES, Keyslot
from lifeveil.vault.index import SegmentIndex
from lifeveil.vault.keys import KdfParams, make_keyslot, read_key_file, unwrap_master_key
from lifeveil.vault.segment import fsync_dir

KEYSLOT_NAME = "vault.key"
INDEX_NAME = "index.sqlite"
SEGMENTS_DIR = "segments"
TMP_DIR = "tmp"

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class UnlockedFolder:
    """What unlocking a vault folder yields: its keyslot, master key and open index."""

    root: Path
    keyslot: Keyslot
    master_key: bytes
    index: SegmentIndex


def create_folder(
    root: PathLike,
    *,
    passphrase: str | None,
    key_file: PathLike | None,
    kdf: KdfParams | None,
) -> UnlockedFolder:
    """Create a vault in the new or empty folder ``root``, unlocked by exactly one of
    ``passphrase`` (Argon2id with ``kdf`` costs) or ``key_file``."""
    folder = Path(root)
    if (folder / KEYSLOT_NAME).exists():
        raise VaultError(f"{folder} is already a vault; open it instead of creating it")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise VaultError(f"{folder} exists and is not an empty folder; choose a new folder")
    key_material = read_key_file(key_file) if key_file is not None else None
    vault_id, master_key = secrets.token_bytes(ID_BYTES), secrets.token_bytes(KEY_BYTES)
    keyslot = make_keyslot(vault_id, master_key, passphrase, key_material, kdf or KdfParams())
    try:
        private_dir(folder)  # also tightens a folder that existed (e.g. 0755)
        private_file(folder / INDEX_NAME)  # before SQLite creates it and its -wal/-shm
    except OSError as exc:
        raise VaultError(
            f"{folder}: cannot create the vault there ({exc.strerror}); choose a folder "
            "you can write to"
        ) from None
    index = SegmentIndex(folder / INDEX_NAME, create=True)
    index.bind_vault_id(vault_id)
    write_keyslot(folder, keyslot)  # last: its presence marks a complete vault
    return UnlockedFolder(folder, keyslot, master_key, index)


def unlock_folder(
    root: PathLike, *, passphrase: str | None, key_file: PathLike | None
) -> UnlockedFolder:
    """Unlock the vault at ``root``. Raises VaultKeyError ("wrong passphrase or key file")
    without touching any file if the secret is wrong."""
    folder = Path(root)
    keyslot_path = folder / KEYSLOT_NAME
    if not keyslot_path.is_file():
        raise VaultError(
            f"{folder} is not a LifeVeil vault (no {KEYSLOT_NAME}); create one with "
            "`lifeveil vault init`"
        )
    keyslot = Keyslot.from_bytes(keyslot_path.read_bytes())
    key_material = read_key_file(key_file) if key_file is not None else None
    master_key = unwrap_master_key(keyslot, passphrase, key_material)
    index_path = folder / INDEX_NAME
    if not index_path.is_file():
        raise VaultIntegrityError(
            f"{index_path} is missing; it holds every segment key, so no segment can be "
            "decrypted without it: restore it from a backup"
        )
    tighten_permissions(folder)
    index = SegmentIndex(index_path)
    try:
        index.bind_vault_id(keyslot.vault_id)
    except VaultError:
        index.close()
        raise
    return UnlockedFolder(folder, keyslot, master_key, index)


def tighten_permissions(root: Path) -> None:
    """Make the vault folder 0700 and the index files 0600 before SQLite opens them (it gives
    new -wal/-shm files the index's mode). Skipped where we lack the right (not our files)."""
    try:
        private_dir(root)
        private_file(root / INDEX_NAME)
        for suffix in ("-wal", "-shm"):
            extra = root / f"{INDEX_NAME}{suffix}"
            if extra.exists():
                extra.chmod(0o600)
    except PermissionError:
        pass


def write_keyslot(root: Path, keyslot: Keyslot) -> None:
    """Replace ``root/vault.key`` atomically (one rename, then the folder is fsync-ed)."""
    with atomic_path(root / KEYSLOT_NAME, private=True) as tmp:
        tmp.write_bytes(keyslot.to_bytes())
    fsync_dir(root)
