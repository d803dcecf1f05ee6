"""The console's handle on the vault: unlocked on demand, never the passphrase kept.

The owner types the passphrase into the login form (or the console starts with a key file);
:meth:`VaultAccess.unlock` opens the :class:`~lifeveil.vault.Vault` with it and lets it go.
What stays in memory is what the device agent also holds while it records: the unlocked
vault (its master key). :meth:`VaultAccess.lock` closes it.

Playing a segment decrypts it into memory only (never to disk): the whole segment is
authenticated before a byte is served, and the last one played is kept so that the browser's
range requests (seeking) do not decrypt it again. Locking or deleting drops it. A segment
larger than :data:`MAX_IN_MEMORY` is streamed chunk by chunk instead (no seeking).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lifeveil.errors import LifeVeilError, VaultError
from lifeveil.vault import SegmentInfo, Vault

MAX_IN_MEMORY = 256 * 1024 * 1024  # larger segments (a long file ingested by hand) are streamed
MEDIA_TYPES = {"mp4": "video/mp4", "webm": "video/webm", "mkv": "video/x-matroska"}
SUFFIX_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm"}


class VaultLockedError(VaultError):
    """The console has not been given the vault's secret yet."""


@dataclass(frozen=True)
class Plaintext:
    """One decrypted segment, in memory."""

    info: SegmentInfo
    data: bytes
    media_type: str


class VaultAccess:
    """The vault of one console run: where it is, and the unlocked handle once unlocked.

    Args:
        root: the vault folder, or None when the console runs without one.
        key_file: unlock with this key file at once instead of asking for a passphrase.
    """

    def __init__(self, root: Path | None, key_file: Path | None = None) -> None:
        self.root = root
        self._vault: Vault | None = None
        self._played: Plaintext | None = None
        self._lock = threading.RLock()
        if root is not None and key_file is not None:
            self._vault = Vault.open(root, key_file=key_file)

    @property
    def configured(self) -> bool:
        """Whether the console was given a vault folder."""
        return self.root is not None

    @property
    def unlocked(self) -> bool:
        """Whether the vault is open."""
        return self._vault is not None

    def unlock(self, passphrase: str) -> None:
        """Open the vault with ``passphrase`` (raises VaultKeyError if it is wrong)."""
        if self.root is None:
            raise VaultError("this console was started without --vault")
        if not passphrase:
            raise VaultError("the passphrase is empty")
        vault = Vault.open(self.root, passphrase=passphrase)
        with self._lock:
            old, self._vault = self._vault, vault
        if old is not None:
            old.close()

    def lock(self) -> None:
        """Close the vault and forget the last played segment."""
        with self._lock:
            vault, self._vault, self._played = self._vault, None, None
        if vault is not None:
            vault.close()

    def vault(self) -> Vault:
        """The open vault (raises VaultLockedError when locked)."""
        vault = self._vault
        if vault is None:
            raise VaultLockedError("the vault is locked; unlock it with its passphrase")
        return vault

    def segments(self) -> list[SegmentInfo]:
        """Every segment, newest first."""
        return sorted(self.vault().list(), key=lambda i: i.created_at, reverse=True)

    def plaintext(self, segment_id: str) -> Plaintext:
        """Decrypt and authenticate a whole segment in memory (cached: the last one)."""
        with self._lock:
            vault = self.vault()
            full_id = vault.resolve(segment_id)
            played = self._played
            if played is not None and played.info.segment_id == full_id:
                return played
            info = vault.info(full_id)
            data = b"".join(vault.open_segment(full_id))
            self._played = Plaintext(info, data, media_type(info))
            return self._played

    def info(self, segment_id: str) -> SegmentInfo:
        """Metadata of one segment (full id or unique prefix)."""
        return self.vault().info(segment_id)

    def stream(self, segment_id: str) -> Iterator[bytes]:
        """A segment's plaintext chunk by chunk, for segments too large to hold in memory.

        Each chunk is authenticated before it is yielded; a damaged one ends the stream with
        an error, so the browser sees a failed transfer, never silently wrong video.
        """
        return self.vault().open_segment(segment_id)

    def delete(self, segment_id: str) -> str:
        """Crypto-shred a segment; returns its full id."""
        with self._lock:
            full_id = self.vault().delete(segment_id)
            if self._played is not None and self._played.info.segment_id == full_id:
                self._played = None
            return full_id

    def retention_preview(self, days: float) -> list[SegmentInfo]:
        """The segments a retention of ``days`` days would delete now (nothing is deleted)."""
        return self.vault().apply_retention(days, dry_run=True)

    def apply_retention(self, days: float) -> list[SegmentInfo]:
        """Delete segments older than ``days`` days; returns them."""
        with self._lock:
            expired = self.vault().apply_retention(days)
            self._played = None
            return expired

    def warnings(self) -> list[str]:
        """The vault's warnings (rollback, quarantine); empty when locked."""
        try:
            return self.vault().warnings()
        except LifeVeilError:
            return []


def media_type(info: SegmentInfo) -> str:
    """The MIME type to serve a segment's plaintext as (agent segments are H.264 in MP4)."""
    container = info.extra.get("container", "")
    if container in MEDIA_TYPES:
        return MEDIA_TYPES[container]
    suffix = Path(info.source_name or "").suffix.lower()
    return SUFFIX_TYPES.get(suffix, "application/octet-stream")


def download_name(info: SegmentInfo) -> str:
    """A file name for an exported segment: its source name, else its id."""
    name = Path(info.source_name or "").name
    container = info.extra.get("container")
    if container:  # an agent segment: one of many cut from the same source
        name = f"{Path(name).stem or 'segment'}_{info.segment_id[:8]}.{container}"
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    if not safe or safe.startswith("."):
        safe = f"segment_{info.segment_id[:12]}.bin"
    return safe
