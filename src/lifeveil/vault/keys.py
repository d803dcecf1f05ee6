"""Vault key hierarchy: passphrase or key file -> KEK -> master key -> one key per segment.

Pure functions over bytes (no vault state); the byte layouts are documented in
``lifeveil.vault.format``.

Why a random data key per segment, wrapped by the master key (and not HKDF(master, salt)):
the segment key is then independent of every other secret, so destroying its wrapped copy is
enough to make the segment unrecoverable even for someone who knows the master key or
passphrase (crypto-shredding). With HKDF the "key material" to destroy would be a salt that
looks harmless and is easy to leak through backups or logs. Wrapping also lets the master key
be re-wrapped (new passphrase, higher Argon2 costs) without touching any segment.
"""

from __future__ import annotations

import os
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lifeveil.errors import VaultError, VaultIntegrityError, VaultKeyError
from lifeveil.vault.format import (
    KEY_BYTES,
    METADATA_LABEL,
    NONCE_BYTES,
    SALT_BYTES,
    SEGMENT_KEY_LABEL,
    UNLOCK_KEY_FILE,
    UNLOCK_PASSPHRASE,
    Keyslot,
    open_sealed,
    seal_with_nonce,
    wrap_aad,
)

KEY_FILE_INFO = b"lifeveil/vault/v1/key-file"
SEGMENT_WRAP_INFO = b"lifeveil/vault/v1/segment-key-wrap"
INDEX_STATE_INFO = b"lifeveil/vault/v1/index-state"
MIN_KEY_FILE_BYTES = 32
# Upper bounds guard against a tampered keyslot asking for terabytes of RAM.
MAX_TIME_COST = 100
MAX_MEMORY_KIB = 4 * 1024 * 1024
MAX_PARALLELISM = 64
WRONG_KEY_MESSAGE = (
    "wrong passphrase or key file: the vault was not unlocked and nothing was changed"
)


@dataclass(frozen=True)
class KdfParams:
    """Argon2id costs for deriving the KEK from a passphrase; stored in ``vault.key``.

    Defaults follow RFC 9106's second recommendation (t=3, 64 MiB, 4 lanes). Tests use
    ``KdfParams(time_cost=1, memory_kib=8, parallelism=1)`` to stay fast.
    """

    time_cost: int = 3  # passes over memory
    memory_kib: int = 64 * 1024  # memory in KiB
    parallelism: int = 4  # lanes

    def __post_init__(self) -> None:
        if not 1 <= self.time_cost <= MAX_TIME_COST:
            raise VaultError(f"Argon2 time cost must be 1..{MAX_TIME_COST}, got {self.time_cost}")
        if not 1 <= self.parallelism <= MAX_PARALLELISM:
            raise VaultError(
                f"Argon2 parallelism must be 1..{MAX_PARALLELISM}, got {self.parallelism}"
            )
        if not 8 * self.parallelism <= self.memory_kib <= MAX_MEMORY_KIB:
            raise VaultError(
                f"Argon2 memory must be {8 * self.parallelism}..{MAX_MEMORY_KIB} KiB "
                f"(at least 8 KiB per lane), got {self.memory_kib}"
            )


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=info).derive(ikm)


def passphrase_kek(passphrase: str, salt: bytes, params: KdfParams) -> bytes:
    """Argon2id KEK (32 bytes) from a passphrase; NFC-normalized so input methods agree."""
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return hash_secret_raw(
        secret,
        salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=KEY_BYTES,
        type=Type.ID,
    )


def key_file_kek(key_material: bytes, salt: bytes) -> bytes:
    """HKDF-SHA256 KEK (32 bytes) from the contents of a key file."""
    return _hkdf(key_material, salt, KEY_FILE_INFO)


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """Contents of a key file; at least 32 bytes, e.g. made by ``generate_key_file``."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise VaultKeyError(f"{p}: key file not found") from None
    except OSError as exc:
        raise VaultKeyError(f"{p}: cannot read key file ({exc.strerror})") from None
    if len(data) < MIN_KEY_FILE_BYTES:
        raise VaultKeyError(
            f"{p}: key file has {len(data)} bytes, expected at least {MIN_KEY_FILE_BYTES} "
            "random bytes (create one with `lifeveil vault init --key-file NEW_PATH`)"
        )
    return data


def generate_key_file(path: str | os.PathLike[str]) -> Path:
    """Create a new key file of 32 random bytes, readable by its owner only.

    Refuses to overwrite an existing file: losing a key file loses the vault.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise VaultError(f"{p}: already exists; refusing to overwrite a key file") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(KEY_BYTES))
        fh.flush()
        os.fsync(fh.fileno())
    return p


def kdf_params_of(keyslot: Keyslot) -> KdfParams:
    """The Argon2id costs recorded in a passphrase keyslot."""
    try:
        return KdfParams(keyslot.time_cost, keyslot.memory_kib, keyslot.parallelism)
    except VaultError as exc:
        raise VaultIntegrityError(f"vault.key has implausible KDF parameters: {exc}") from None


def unlock_kek(keyslot: Keyslot, passphrase: str | None, key_material: bytes | None) -> bytes:
    """The KEK of ``keyslot`` from whichever secret the vault was created with."""
    if (passphrase is None) == (key_material is None):
        raise VaultKeyError("give exactly one of a passphrase or a key file to unlock the vault")
    if keyslot.unlock_kind == UNLOCK_PASSPHRASE:
        if passphrase is None:
            raise VaultKeyError("this vault is unlocked with a passphrase, not a key file")
        return passphrase_kek(passphrase, keyslot.salt, kdf_params_of(keyslot))
    if key_material is None:
        raise VaultKeyError("this vault is unlocked with a key file (--key-file), not a passphrase")
    return key_file_kek(key_material, keyslot.salt)


def make_keyslot(
    vault_id: bytes,
    master_key: bytes,
    passphrase: str | None,
    key_material: bytes | None,
    params: KdfParams,
    *,
    salt: bytes | None = None,
    nonce: bytes | None = None,
) -> Keyslot:
    """Wrap ``master_key`` under a passphrase (Argon2id) or key file. Fresh salt and nonce
    unless given (tests pin them for golden bytes)."""
    salt = salt or secrets.token_bytes(SALT_BYTES)
    nonce = nonce or secrets.token_bytes(NONCE_BYTES)
    if passphrase is not None and key_material is None:
        kind, costs = UNLOCK_PASSPHRASE, (params.time_cost, params.memory_kib, params.parallelism)
    elif key_material is not None and passphrase is None:
        kind, costs = UNLOCK_KEY_FILE, (0, 0, 0)
    else:
        raise VaultKeyError("give exactly one of a passphrase or a key file")
    draft = Keyslot(kind, vault_id, salt, *costs, nonce, bytes(48))
    kek = unlock_kek(draft, passphrase, key_material)
    sealed = seal_with_nonce(kek, nonce, master_key, draft.aad())[NONCE_BYTES:]
    return Keyslot(kind, vault_id, salt, *costs, nonce, sealed)


def unwrap_master_key(
    keyslot: Keyslot, passphrase: str | None, key_material: bytes | None
) -> bytes:
    """The master key; raises VaultKeyError on a wrong passphrase or key file."""
    kek = unlock_kek(keyslot, passphrase, key_material)
    try:
        return open_sealed(kek, keyslot.nonce + keyslot.wrapped_master_key, keyslot.aad())
    except InvalidTag:
        raise VaultKeyError(WRONG_KEY_MESSAGE) from None


def segment_wrap_key(master_key: bytes, vault_id: bytes) -> bytes:
    """The key that wraps segment keys, derived from the master key."""
    return _hkdf(master_key, vault_id, SEGMENT_WRAP_INFO)


def index_state_key(master_key: bytes, vault_id: bytes) -> bytes:
    """The MAC key of the index state (rollback detection), derived from the master key."""
    return _hkdf(master_key, vault_id, INDEX_STATE_INFO)


def wrap_segment_key(
    wrap_key: bytes,
    vault_id: bytes,
    segment_id: bytes,
    segment_key: bytes,
    nonce: bytes | None = None,
) -> bytes:
    """nonce || wrapped segment key || tag (60 bytes), bound to vault and segment ids."""
    nonce = nonce or secrets.token_bytes(NONCE_BYTES)
    return seal_with_nonce(
        wrap_key, nonce, segment_key, wrap_aad(SEGMENT_KEY_LABEL, vault_id, segment_id)
    )


def unwrap_segment_key(
    wrap_key: bytes, vault_id: bytes, segment_id: bytes, wrapped: bytes
) -> bytes:
    """The segment key; raises VaultIntegrityError if the index entry was altered."""
    try:
        return open_sealed(wrap_key, wrapped, wrap_aad(SEGMENT_KEY_LABEL, vault_id, segment_id))
    except InvalidTag:
        raise VaultIntegrityError(
            f"segment {segment_id.hex()}: its key in index.sqlite failed authentication "
            "(index tampered or corrupt)"
        ) from None


def seal_metadata(
    segment_key: bytes,
    vault_id: bytes,
    segment_id: bytes,
    payload: bytes,
    nonce: bytes | None = None,
) -> bytes:
    """Encrypt a segment's metadata under its own key (shredded together with the data)."""
    nonce = nonce or secrets.token_bytes(NONCE_BYTES)
    return seal_with_nonce(
        segment_key, nonce, payload, wrap_aad(METADATA_LABEL, vault_id, segment_id)
    )


def open_metadata(segment_key: bytes, vault_id: bytes, segment_id: bytes, sealed: bytes) -> bytes:
    """Decrypt a segment's metadata; raises VaultIntegrityError if altered."""
    try:
        return open_sealed(segment_key, sealed, wrap_aad(METADATA_LABEL, vault_id, segment_id))
    except InvalidTag:
        raise VaultIntegrityError(
            f"segment {segment_id.hex()}: its metadata in index.sqlite failed authentication "
            "(index tampered or corrupt)"
        ) from None
