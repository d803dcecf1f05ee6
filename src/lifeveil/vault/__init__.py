"""Encrypted on-device storage of raw video segments (see ``vault.py`` and ``format.py``).

Typical use by the device agent::

    vault = Vault.open(root, key_file=key_path)
    for line in vault.warnings():  # e.g. an older index.sqlite restored, files in quarantine
        log.warning(line)
    with vault.open_writer(SegmentMetadata(source_name="cam0")) as segment:
        for packet in recorder:
            segment.write(packet)
    # leaving the block commits; an exception aborts and leaves nothing behind
"""

from lifeveil.vault.keys import KdfParams, generate_key_file
from lifeveil.vault.quarantine import AdoptReport, PurgeReport, QuarantinedFile
from lifeveil.vault.records import DEFAULT_CHUNK_SIZE, SegmentInfo, SegmentMetadata, VerifyReport
from lifeveil.vault.rollback import IndexCheck, IndexRollbackError
from lifeveil.vault.vault import Vault
from lifeveil.vault.writer import SegmentWriter

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "AdoptReport",
    "IndexCheck",
    "IndexRollbackError",
    "KdfParams",
    "PurgeReport",
    "QuarantinedFile",
    "SegmentInfo",
    "SegmentMetadata",
    "SegmentWriter",
    "Vault",
    "VerifyReport",
    "generate_key_file",
]
