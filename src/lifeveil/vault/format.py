"""Byte layout of vault files, format version 1. This docstring is the contract.

``tests/vault/test_format.py`` pins the exact bytes with fixed keys and nonces; a change that
breaks those tests breaks every vault on every device, so bump ``FORMAT_VERSION`` instead.
All integers are unsigned big-endian. AEAD is AES-256-GCM (96-bit nonce, 128-bit tag).

Folder layout::

    <root>/vault.key              keyslot: the master key, wrapped (114 bytes, below)
    <root>/index.sqlite           segment index (SQLite, WAL): wrapped segment keys + metadata
    <root>/segments/<id>.lvs      one encrypted segment per file; <id> = 32 lowercase hex chars
    <root>/tmp/<id>.lvs.part      segments being written; never referenced by the index
    <root>/index.state            the index state last committed (105 bytes, below)
    <root>/quarantine/<id>.lvs    segment files the index did not know when the vault was
                                  opened (kept for ``adopt`` or ``purge``, never deleted
                                  silently); a second copy of the same id is <id>.<n>.lvs

Keyslot (``vault.key``, 114 bytes)::

    off len
      0   8  magic b"LVVAULT\\x00"
      8   1  format version = 1
      9   1  unlock kind: 1 = Argon2id passphrase, 2 = key file
     10  16  vault id (random)
     26  16  KDF salt (random)
     42   4  Argon2id time cost (passes)      0 for a key file
     46   4  Argon2id memory cost (KiB)      0 for a key file
     50   4  Argon2id parallelism (lanes)    0 for a key file
     54  12  nonce (random)
     66  48  AES-256-GCM(KEK, nonce, master key (32 bytes), AD = bytes 0..53) || tag

    KEK = Argon2id(NFC-normalized UTF-8 passphrase, salt, t, m, p, 32 bytes)
       or HKDF-SHA256(ikm = key file bytes, salt = salt, info = b"lifeveil/vault/v1/key-file")

The Argon2id costs live in the keyslot so they can be raised later by re-wrapping the same
master key (``Vault.rewrap``); segments never need re-encryption for that.

Segment key wrapping (``index.sqlite``, column ``wrapped_key``, 60 bytes)::

    nonce (12) || AES-256-GCM(wrap key, nonce, segment key (32), AD) || tag (16)
    wrap key = HKDF-SHA256(master key, salt = vault id,
                           info = b"lifeveil/vault/v1/segment-key-wrap")
    AD       = b"LVSKEY" || version || vault id || segment id

Each segment has its own random 256-bit data key, wrapped by the master key. Deleting the
wrapped key (crypto-shredding) leaves the ciphertext undecryptable even for someone holding
the master key. Metadata (``sealed_meta``) is sealed the same way under the *segment* key with
AD = b"LVMETA" || version || vault id || segment id, so it is shredded together with the data.

Index state (``index.state``, and the same bytes in ``index.sqlite``, table ``vault``, key
``'state'``, 105 bytes)::

    off len
      0   8  magic b"LVSTATE\x00"
      8   1  format version = 1
      9  16  vault id
     25   8  generation: committed changes to the set of segments (insert, delete, adopt)
     33   8  unsettled rollback: the generation the vault had reached when changes were first
             made on an older index, 0 if none (cleared by ``adopt`` / ``purge``)
     41  32  digest: XOR over all segments of HMAC-SHA256(state key,
             b"LVROW" || version || segment id (16) || wrapped key (60)); zeros when empty
     73  32  HMAC-SHA256(state key, bytes 0..72)

    state key = HKDF-SHA256(master key, salt = vault id, info = b"lifeveil/vault/v1/index-state")

The index copy is written in the same SQLite transaction as the change it describes; the file
copy is written after that transaction commits and is never lowered, so without a rollback the
file's generation is at most the index's. An index whose generation is below the file's is an
older copy put back in place (see ``lifeveil.vault.rollback``).

Segment file (``<id>.lvs``): a 36-byte header, then chunks::

    off len
      0   6  magic b"LVSEG\\x00"
      6   1  format version = 1
      7   1  cipher: 1 = AES-256-GCM
      8  16  segment id
     24   4  chunk size C (plaintext bytes per chunk, 1 .. 2**24)
     28   8  nonce prefix (random)

    chunk i = AES-256-GCM(segment key, nonce_i, plaintext_i, AD_i) || tag (16)
    nonce_i = nonce prefix (8) || i (4)
    AD_i    = header (36) || i (8) || final flag (1 byte: 0x01 on the last chunk, else 0x00)

Every chunk but the last holds exactly C plaintext bytes (C + 16 on disk); the last holds
1..C bytes, or 0 for an empty segment. Readers derive the chunk count from the file size.
Binding the header (hence the segment id), the index and the final flag into every chunk makes
reordering, dropping, truncating at a chunk boundary, appending and moving chunks between
segments fail authentication.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lifeveil.errors import VaultError, VaultIntegrityError

FORMAT_VERSION = 1
KEYSLOT_MAGIC = b"LVVAULT\x00"
SEGMENT_MAGIC = b"LVSEG\x00"
STATE_MAGIC = b"LVSTATE\x00"
ROW_LABEL = b"LVROW"
SEGMENT_KEY_LABEL = b"LVSKEY"
METADATA_LABEL = b"LVMETA"

UNLOCK_PASSPHRASE = 1
UNLOCK_KEY_FILE = 2
CIPHER_AES256_GCM = 1

ID_BYTES = 16
KEY_BYTES = 32
SALT_BYTES = 16
NONCE_BYTES = 12
NONCE_PREFIX_BYTES = 8
TAG_BYTES = 16
WRAPPED_KEY_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES
MAX_CHUNK_SIZE = 1 << 24
MAX_CHUNKS = 1 << 32
DIGEST_BYTES = 32
EMPTY_DIGEST = bytes(DIGEST_BYTES)

_KEYSLOT = struct.Struct(">8sBB16s16sIII12s48s")
_KEYSLOT_AAD_END = 54
_SEGMENT_HEADER = struct.Struct(">6sBB16sI8s")
_STATE = struct.Struct(">8sB16sQQ32s32s")
_STATE_MAC_END = 73
KEYSLOT_SIZE = _KEYSLOT.size
SEGMENT_HEADER_SIZE = _SEGMENT_HEADER.size
STATE_SIZE = _STATE.size


def _check_version(what: str, version: int) -> None:
    if version != FORMAT_VERSION:
        raise VaultError(
            f"{what} has format version {version}; this LifeVeil reads version "
            f"{FORMAT_VERSION}: use a LifeVeil release that supports it"
        )


@dataclass(frozen=True)
class Keyslot:
    """The parsed ``vault.key``: how to derive the KEK, and the wrapped master key."""

    unlock_kind: int
    vault_id: bytes
    salt: bytes
    time_cost: int
    memory_kib: int
    parallelism: int
    nonce: bytes
    wrapped_master_key: bytes

    def to_bytes(self) -> bytes:
        """The 114 bytes of ``vault.key``."""
        return _KEYSLOT.pack(
            KEYSLOT_MAGIC,
            FORMAT_VERSION,
            self.unlock_kind,
            self.vault_id,
            self.salt,
            self.time_cost,
            self.memory_kib,
            self.parallelism,
            self.nonce,
            self.wrapped_master_key,
        )

    def aad(self) -> bytes:
        """Associated data of the master-key wrap: every field before the nonce."""
        return self.to_bytes()[:_KEYSLOT_AAD_END]

    @classmethod
    def from_bytes(cls, data: bytes) -> Keyslot:
        """Parse ``vault.key``; raises VaultIntegrityError if it is not a keyslot."""
        if len(data) != KEYSLOT_SIZE or not data.startswith(KEYSLOT_MAGIC):
            raise VaultIntegrityError(
                f"vault.key is not a LifeVeil keyslot (expected {KEYSLOT_SIZE} bytes starting "
                f"with {KEYSLOT_MAGIC!r}, got {len(data)} bytes): restore it from a backup"
            )
        _, version, kind, vault_id, salt, t, m, p, nonce, wrapped = _KEYSLOT.unpack(data)
        _check_version("vault.key", version)
        if kind not in (UNLOCK_PASSPHRASE, UNLOCK_KEY_FILE):
            raise VaultIntegrityError(f"vault.key has unknown unlock kind {kind}")
        return cls(kind, vault_id, salt, t, m, p, nonce, wrapped)


@dataclass(frozen=True)
class SegmentHeader:
    """The 36-byte header of a segment file."""

    segment_id: bytes
    chunk_size: int
    nonce_prefix: bytes
    cipher: int = CIPHER_AES256_GCM

    def __post_init__(self) -> None:
        if not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise VaultError(f"chunk size must be 1..{MAX_CHUNK_SIZE} bytes, got {self.chunk_size}")
        if len(self.segment_id) != ID_BYTES or len(self.nonce_prefix) != NONCE_PREFIX_BYTES:
            raise VaultError("segment id must be 16 bytes and nonce prefix 8 bytes")

    def to_bytes(self) -> bytes:
        """The header bytes, also the first part of every chunk's associated data."""
        return _SEGMENT_HEADER.pack(
            SEGMENT_MAGIC,
            FORMAT_VERSION,
            self.cipher,
            self.segment_id,
            self.chunk_size,
            self.nonce_prefix,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SegmentHeader:
        """Parse a segment header; raises VaultIntegrityError if it is not one."""
        if len(data) != SEGMENT_HEADER_SIZE or not data.startswith(SEGMENT_MAGIC):
            raise VaultIntegrityError(
                f"not a LifeVeil segment (expected a {SEGMENT_HEADER_SIZE}-byte header "
                f"starting with {SEGMENT_MAGIC!r})"
            )
        _, version, cipher, segment_id, chunk_size, prefix = _SEGMENT_HEADER.unpack(data)
        _check_version("segment", version)
        if cipher != CIPHER_AES256_GCM:
            raise VaultIntegrityError(f"segment uses unknown cipher id {cipher}")
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise VaultIntegrityError(f"segment header has invalid chunk size {chunk_size}")
        return cls(segment_id, chunk_size, prefix, cipher)


@dataclass(frozen=True)
class IndexState:
    """What the index looked like after a committed change; authenticated by a MAC."""

    vault_id: bytes
    generation: int  # committed changes to the set of segments since ``init``
    unsettled_rollback: int  # vault generation an older index was found behind, 0 if none
    digest: bytes  # XOR of ``row_tag`` over all segments

    def to_bytes(self, state_key: bytes) -> bytes:
        """The 105 bytes of ``index.state``, MAC included."""
        body = _STATE.pack(
            STATE_MAGIC,
            FORMAT_VERSION,
            self.vault_id,
            self.generation,
            self.unsettled_rollback,
            self.digest,
            bytes(DIGEST_BYTES),
        )[:_STATE_MAC_END]
        return body + hmac.digest(state_key, body, hashlib.sha256)

    @classmethod
    def from_bytes(cls, data: bytes, state_key: bytes, vault_id: bytes) -> IndexState:
        """Parse and authenticate; raises VaultIntegrityError naming what is wrong."""
        if len(data) != STATE_SIZE or not data.startswith(STATE_MAGIC):
            raise VaultIntegrityError(
                f"not a LifeVeil index state (expected {STATE_SIZE} bytes starting with "
                f"{STATE_MAGIC!r}, got {len(data)} bytes)"
            )
        _, version, owner, generation, unsettled, digest, mac = _STATE.unpack(data)
        _check_version("index state", version)
        expected = hmac.digest(state_key, data[:_STATE_MAC_END], hashlib.sha256)
        if owner != vault_id or not hmac.compare_digest(mac, expected):
            raise VaultIntegrityError(
                "index state failed authentication (edited, or from another vault)"
            )
        return cls(owner, generation, unsettled, digest)


def row_tag(state_key: bytes, segment_id: bytes, wrapped_key: bytes) -> bytes:
    """The keyed hash of one index row that ``IndexState.digest`` XORs together."""
    message = ROW_LABEL + bytes([FORMAT_VERSION]) + segment_id + wrapped_key
    return hmac.digest(state_key, message, hashlib.sha256)


def xor_bytes(a: bytes, b: bytes) -> bytes:
    """Bytewise XOR of two equally long strings (adds or removes a row from a digest)."""
    if len(a) != len(b):
        raise ValueError("xor_bytes needs two strings of the same length")
    return (int.from_bytes(a) ^ int.from_bytes(b)).to_bytes(len(a))


def chunk_nonce(header: SegmentHeader, index: int) -> bytes:
    """Nonce of chunk ``index``: nonce prefix || index (4 bytes)."""
    if not 0 <= index < MAX_CHUNKS:
        raise VaultError(f"a segment holds at most {MAX_CHUNKS} chunks")
    return header.nonce_prefix + index.to_bytes(4, "big")


def chunk_aad(header_bytes: bytes, index: int, final: bool) -> bytes:
    """Associated data of chunk ``index``: header || index (8 bytes) || final flag."""
    return header_bytes + struct.pack(">QB", index, 1 if final else 0)


def seal_chunk(
    aead: AESGCM, header: SegmentHeader, index: int, final: bool, plaintext: bytes
) -> bytes:
    """Encrypt one chunk; returns ciphertext || tag (len(plaintext) + 16 bytes)."""
    aad = chunk_aad(header.to_bytes(), index, final)
    return aead.encrypt(chunk_nonce(header, index), plaintext, aad)


def open_chunk(
    aead: AESGCM, header: SegmentHeader, index: int, final: bool, sealed: bytes
) -> bytes:
    """Decrypt one chunk; raises ``cryptography.exceptions.InvalidTag`` if it was altered."""
    aad = chunk_aad(header.to_bytes(), index, final)
    return aead.decrypt(chunk_nonce(header, index), sealed, aad)


def chunk_lengths(body_size: int, chunk_size: int) -> tuple[int, int]:
    """(number of chunks, on-disk length of the last one) for a segment body of ``body_size``.

    Raises VaultIntegrityError when no valid segment has that size (cut inside a tag).
    """
    stored = chunk_size + TAG_BYTES
    count = max(1, -(-body_size // stored))
    last = body_size - (count - 1) * stored
    if last < TAG_BYTES:
        raise VaultIntegrityError(
            f"segment body of {body_size} bytes cannot hold whole chunks (truncated file)"
        )
    return count, last


class ChunkSealer:
    """Cuts a plaintext stream into ``header.chunk_size`` chunks and seals each.

    A chunk is sealed as non-final only once more data is known to follow, so the stream's
    end is always marked by the final flag. ``update`` returns the sealed chunks ready to be
    written; ``finalize`` returns the last one.
    """

    def __init__(self, key: bytes, header: SegmentHeader) -> None:
        self._aead = AESGCM(key)
        self._header = header
        self._buffer = bytearray()
        self._index = 0
        self._finalized = False

    def update(self, data: bytes) -> list[bytes]:
        """Add plaintext; returns the chunks that are now complete and sealed."""
        if self._finalized:
            raise VaultError("segment already finalized; start a new segment")
        self._buffer += data
        size = self._header.chunk_size
        sealed: list[bytes] = []
        start = 0
        while len(self._buffer) - start > size:
            sealed.append(self._seal(bytes(self._buffer[start : start + size]), final=False))
            start += size
        del self._buffer[:start]
        return sealed

    def finalize(self) -> bytes:
        """Seal what is left as the final chunk (possibly empty)."""
        if self._finalized:
            raise VaultError("segment already finalized")
        self._finalized = True
        last = self._seal(bytes(self._buffer), final=True)
        self._buffer.clear()
        return last

    def _seal(self, plaintext: bytes, final: bool) -> bytes:
        sealed = seal_chunk(self._aead, self._header, self._index, final, plaintext)
        self._index += 1
        return sealed


def wrap_aad(label: bytes, vault_id: bytes, segment_id: bytes) -> bytes:
    """Associated data binding a wrapped key or sealed metadata to its vault and segment."""
    return label + bytes([FORMAT_VERSION]) + vault_id + segment_id


def seal_with_nonce(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """nonce || AES-256-GCM(key, nonce, plaintext, aad) || tag."""
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Inverse of ``seal_with_nonce``; raises InvalidTag if altered or the key is wrong."""
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise InvalidTag()
    return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
