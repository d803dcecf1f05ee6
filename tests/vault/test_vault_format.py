"""Golden bytes of the vault format (see lifeveil.vault.format): changing them breaks vaults.

Each golden value is checked twice: against a pinned hex string, and against an independent
construction from the documented layout with raw AES-GCM / Argon2id / HKDF.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lifeveil.errors import VaultError, VaultIntegrityError
from lifeveil.vault.format import (
    KEYSLOT_SIZE,
    SEGMENT_HEADER_SIZE,
    STATE_SIZE,
    WRAPPED_KEY_BYTES,
    ChunkSealer,
    IndexState,
    Keyslot,
    SegmentHeader,
    chunk_lengths,
    row_tag,
    xor_bytes,
)
from lifeveil.vault.keys import (
    KdfParams,
    index_state_key,
    make_keyslot,
    seal_metadata,
    segment_wrap_key,
    unwrap_master_key,
    wrap_segment_key,
)

KEY = bytes(range(32))
SEGMENT_ID = bytes.fromhex("00112233445566778899aabbccddeeff")
PREFIX = bytes.fromhex("a0a1a2a3a4a5a6a7")
VAULT_ID = b"\x42" * 16
SALT = b"\x53" * 16
NONCE = b"\x4e" * 12
MASTER = b"\x4d" * 32
KEY_MATERIAL = b"\x4b" * 32

GOLDEN_HEADER = "4c5653454700010100112233445566778899aabbccddeeff00000004a0a1a2a3a4a5a6a7"
GOLDEN_CHUNKS = [
    "ce68dc9b0b148bf04bfdda6774df703b4f41b37b",
    "07b6611345949d535bf8cc571a4e8ebdefe8c728",
    "eea951f4e66f3e58fae316c245ff6feb3a5e",
]
GOLDEN_KEYFILE_SLOT = (
    "4c565641554c54000102424242424242424242424242424242425353535353535353535353535353535300"
    "00000000000000000000004e4e4e4e4e4e4e4e4e4e4e4eb32da5d616022c1515fb1f0ab374a8da1e8d2b97"
    "d528a6f1de279a58c01fd143c973e94196b6cd6bfce85c03d929182b"
)
GOLDEN_PASSPHRASE_SLOT = (
    "4c565641554c54000101424242424242424242424242424242425353535353535353535353535353535300"
    "00000100000008000000014e4e4e4e4e4e4e4e4e4e4e4e46ec2c20890983588eed7324b596d3cfe5092679"
    "dfc942f0c7ab05353e9c8f2713374940f76cfac66271d21c04c731fd"
)
GOLDEN_WRAPPED_KEY = (
    "575757575757575757575757e5fb09a1081e4d69282970eb1024a78e8220d2a7d4e5a422795f5ed09a8999"
    "52346ff277b835d878a778d3e67246cc55"
)
GOLDEN_SEALED_META = "6d6d6d6d6d6d6d6d6d6d6d6d9e780a2994c88f9be1ec645edeba9f968057c39df86925"
GOLDEN_ROW_TAG = "dd328f24a4fa43061decffe06c597d4d39adecdc4b7e959a6860f816ec49774c"
GOLDEN_STATE = (
    "4c56535441544500014242424242424242424242424242424200000000000000070000000000000003dd328f"
    "24a4fa43061decffe06c597d4d39adecdc4b7e959a6860f816ec49774cc6b536d49a8ed0b93dce70e2bc0f47"
    "34a5f1b0d948e8f18cb9ce9ffcd63f283e"
)


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def test_segment_header_golden_bytes() -> None:
    header = SegmentHeader(SEGMENT_ID, 4, PREFIX).to_bytes()
    by_hand = b"LVSEG\x00" + b"\x01" + b"\x01" + SEGMENT_ID + struct.pack(">I", 4) + PREFIX
    assert header == by_hand == bytes.fromhex(GOLDEN_HEADER)
    assert len(header) == SEGMENT_HEADER_SIZE == 36
    assert SegmentHeader.from_bytes(header) == SegmentHeader(SEGMENT_ID, 4, PREFIX)


def test_chunk_framing_golden_bytes() -> None:
    header = SegmentHeader(SEGMENT_ID, 4, PREFIX)
    sealer = ChunkSealer(KEY, header)
    chunks = sealer.update(b"0123456789")
    chunks.append(sealer.finalize())
    assert [c.hex() for c in chunks] == GOLDEN_CHUNKS

    hdr = bytes.fromhex(GOLDEN_HEADER)
    aead = AESGCM(KEY)
    for i, (plain, final) in enumerate([(b"0123", 0), (b"4567", 0), (b"89", 1)]):
        nonce = PREFIX + struct.pack(">I", i)
        aad = hdr + struct.pack(">Q", i) + bytes([final])
        assert aead.encrypt(nonce, plain, aad) == chunks[i]


def test_chunk_sealer_marks_the_true_end() -> None:
    header = SegmentHeader(SEGMENT_ID, 4, PREFIX)
    exact = ChunkSealer(KEY, header)
    chunks = exact.update(b"01234567")  # exact multiple: last full chunk stays final
    chunks.append(exact.finalize())
    assert [len(c) for c in chunks] == [20, 20]
    nonce = PREFIX + struct.pack(">I", 1)
    final_aad = bytes.fromhex(GOLDEN_HEADER) + struct.pack(">QB", 1, 1)
    assert AESGCM(KEY).decrypt(nonce, chunks[1], final_aad) == b"4567"

    empty = ChunkSealer(KEY, header)
    assert empty.update(b"") == []
    assert len(empty.finalize()) == 16  # an empty segment is one final, empty chunk
    with pytest.raises(VaultError):
        empty.update(b"more")


@pytest.mark.parametrize(
    ("body", "expected"),
    [(16, (1, 16)), (20, (1, 20)), (36, (2, 16)), (40, (2, 20)), (0, None), (22, None)],
)
def test_chunk_lengths(body: int, expected: tuple[int, int] | None) -> None:
    """(chunk count, last chunk's stored length) for chunk size 4 (20 bytes on disk)."""
    if expected is None:  # cut inside a tag: no valid segment has this size
        with pytest.raises(VaultIntegrityError, match="truncated"):
            chunk_lengths(body, 4)
    else:
        assert chunk_lengths(body, 4) == expected


def test_keyfile_keyslot_golden_bytes() -> None:
    slot = make_keyslot(VAULT_ID, MASTER, None, KEY_MATERIAL, KdfParams(), salt=SALT, nonce=NONCE)
    assert slot.to_bytes().hex() == GOLDEN_KEYFILE_SLOT
    assert len(slot.to_bytes()) == KEYSLOT_SIZE == 114

    fields = b"LVVAULT\x00" + b"\x01" + b"\x02" + VAULT_ID + SALT + bytes(12)
    kek = _hkdf(KEY_MATERIAL, SALT, b"lifeveil/vault/v1/key-file")
    assert fields + NONCE + AESGCM(kek).encrypt(NONCE, MASTER, fields) == slot.to_bytes()
    assert unwrap_master_key(Keyslot.from_bytes(slot.to_bytes()), None, KEY_MATERIAL) == MASTER


def test_passphrase_keyslot_golden_bytes() -> None:
    params = KdfParams(time_cost=1, memory_kib=8, parallelism=1)
    slot = make_keyslot(VAULT_ID, MASTER, "pässword", None, params, salt=SALT, nonce=NONCE)
    assert slot.to_bytes().hex() == GOLDEN_PASSPHRASE_SLOT

    fields = b"LVVAULT\x00\x01\x01" + VAULT_ID + SALT + struct.pack(">III", 1, 8, 1)
    kek = hash_secret_raw(
        "pässword".encode(),
        SALT,
        time_cost=1,
        memory_cost=8,
        parallelism=1,
        hash_len=32,
        type=Type.ID,
    )
    assert fields + NONCE + AESGCM(kek).encrypt(NONCE, MASTER, fields) == slot.to_bytes()
    decomposed = "pa\u0308ssword"  # same text, NFD: must unlock too
    assert unwrap_master_key(Keyslot.from_bytes(slot.to_bytes()), decomposed, None) == MASTER


def test_wrapped_segment_key_and_metadata_golden_bytes() -> None:
    wrap_key = segment_wrap_key(MASTER, VAULT_ID)
    assert wrap_key == _hkdf(MASTER, VAULT_ID, b"lifeveil/vault/v1/segment-key-wrap")
    wrapped = wrap_segment_key(wrap_key, VAULT_ID, SEGMENT_ID, KEY, nonce=b"\x57" * 12)
    assert wrapped.hex() == GOLDEN_WRAPPED_KEY
    assert len(wrapped) == WRAPPED_KEY_BYTES == 60  # the index column's documented size
    aad = b"LVSKEY\x01" + VAULT_ID + SEGMENT_ID
    assert wrapped == b"\x57" * 12 + AESGCM(wrap_key).encrypt(b"\x57" * 12, KEY, aad)

    sealed = seal_metadata(KEY, VAULT_ID, SEGMENT_ID, b'{"a":1}', nonce=b"\x6d" * 12)
    assert sealed.hex() == GOLDEN_SEALED_META
    meta_aad = b"LVMETA\x01" + VAULT_ID + SEGMENT_ID
    assert sealed[12:] == AESGCM(KEY).encrypt(b"\x6d" * 12, b'{"a":1}', meta_aad)


def test_index_state_golden_bytes() -> None:
    state_key = index_state_key(MASTER, VAULT_ID)
    assert state_key == _hkdf(MASTER, VAULT_ID, b"lifeveil/vault/v1/index-state")
    wrapped = b"\x57" * 60
    tag = row_tag(state_key, SEGMENT_ID, wrapped)
    assert tag.hex() == GOLDEN_ROW_TAG
    assert tag == hmac.digest(state_key, b"LVROW\x01" + SEGMENT_ID + wrapped, hashlib.sha256)

    state = IndexState(VAULT_ID, 7, 3, tag)
    data = state.to_bytes(state_key)
    assert len(data) == STATE_SIZE == 105 and data.hex() == GOLDEN_STATE
    body = b"LVSTATE\x00\x01" + VAULT_ID + struct.pack(">QQ", 7, 3) + tag
    assert data == body + hmac.digest(state_key, body, hashlib.sha256)
    assert IndexState.from_bytes(data, state_key, VAULT_ID) == state
    assert xor_bytes(tag, tag) == bytes(32)  # removing a row undoes adding it


def test_index_state_rejects_forgery_and_other_vaults() -> None:
    state_key = index_state_key(MASTER, VAULT_ID)
    data = bytearray.fromhex(GOLDEN_STATE)
    data[32] ^= 1  # generation
    with pytest.raises(VaultIntegrityError, match="failed authentication"):
        IndexState.from_bytes(bytes(data), state_key, VAULT_ID)
    with pytest.raises(VaultIntegrityError, match="failed authentication"):
        IndexState.from_bytes(bytes.fromhex(GOLDEN_STATE), state_key, b"\x43" * 16)
    with pytest.raises(VaultIntegrityError, match="not a LifeVeil index state"):
        IndexState.from_bytes(b"garbage", state_key, VAULT_ID)


def test_headers_reject_wrong_magic_version_and_sizes() -> None:
    header = bytearray.fromhex(GOLDEN_HEADER)
    with pytest.raises(VaultIntegrityError, match="not a LifeVeil segment"):
        SegmentHeader.from_bytes(b"XX" + bytes(header[2:]))
    header[6] = 2
    with pytest.raises(VaultError, match="format version 2"):
        SegmentHeader.from_bytes(bytes(header))
    slot = bytearray.fromhex(GOLDEN_KEYFILE_SLOT)
    with pytest.raises(VaultIntegrityError, match="not a LifeVeil keyslot"):
        Keyslot.from_bytes(bytes(slot[:-1]))
    slot[8] = 9
    with pytest.raises(VaultError, match="format version 9"):
        Keyslot.from_bytes(bytes(slot))
