"""Vault results as text for people (and JSON for scripts), as ``lifeveil vault`` prints them.

Every function returns lines or a string and prints nothing; raising is left to
:func:`verify_verdict`, which turns a failed verification into the typed error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from lifeveil.errors import VaultIntegrityError
from lifeveil.vault.quarantine import AdoptReport, PurgeReport
from lifeveil.vault.records import SegmentInfo, VerifyReport
from lifeveil.vault.rollback import IndexRollbackError


def format_size(n: int) -> str:
    """Bytes as ``"512 B"``, ``"1.5 KiB"``, ... up to GiB."""
    if n < 1024:
        return f"{n} B"
    value = n / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def format_created(info: SegmentInfo) -> str:
    """Creation time in UTC, ``YYYY-MM-DD HH:MM:SS``."""
    return datetime.fromtimestamp(info.created_at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def segment_line(info: SegmentInfo) -> str:
    """``ID  SIZE  SOURCE``: one stored segment."""
    return f"{info.segment_id}  {format_size(info.size)}  {info.source_name or '-'}"


def segment_table(segments: Sequence[SegmentInfo]) -> list[str]:
    """An aligned table of segments (header first) and a closing count and total size."""
    rows = [("ID", "CREATED (UTC)", "SOURCE", "SIZE", "DURATION")]
    rows += [_table_row(s) for s in segments]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return [*lines, f"{len(segments)} segment(s), {format_size(sum(s.size for s in segments))}"]


def segments_json(segments: Sequence[SegmentInfo]) -> str:
    """The segments as an indented JSON list (``lifeveil vault list --json``)."""
    return json.dumps([segment_json(s) for s in segments], indent=2)


def segment_json(info: SegmentInfo) -> dict[str, object]:
    """One segment as a JSON object."""
    return {
        "id": info.segment_id,
        "created_at": info.created_at,
        "source_name": info.source_name,
        "size": info.size,
        "stored_size": info.stored_size,
        "duration_s": info.duration_s,
        "sha256": info.sha256,
        "extra": dict(info.extra),
    }


def retention_lines(expired: Sequence[SegmentInfo], days: float, dry_run: bool) -> list[str]:
    """What a retention run deleted (or, with ``dry_run``, would delete)."""
    verb = "would delete" if dry_run else "deleted"
    lines = [
        f"{verb} {info.segment_id}  {format_created(info)}  {info.source_name or '-'}"
        for info in expired
    ]
    return [*lines, f"{verb} {len(expired)} segment(s) older than {days:g} days"]


def verify_lines(report: VerifyReport) -> list[str]:
    """What opening recovered, what is quarantined and what is damaged, one line each."""
    return [
        *(f"recovered: {note}" for note in report.recovered),
        *(f"QUARANTINED: quarantine/{name}" for name in report.quarantined),
        *(f"DAMAGED: {problem}" for problem in report.problems),
    ]


def verify_verdict(report: VerifyReport) -> str:
    """The closing ``OK`` line of a clean verification; raises VaultIntegrityError if a
    segment is damaged, IndexRollbackError if the index is not the vault's latest state."""
    if report.problems:
        index = "" if report.index_ok else "; index.sqlite is not the vault's latest state either"
        raise VaultIntegrityError(
            f"{len(report.problems)} of {report.checked} segment(s) failed verification "
            f"(listed above); the others are intact{index}"
        )
    if not report.index_ok:
        raise IndexRollbackError(
            f"{report.checked} segment(s) decrypted and authenticated, but index.sqlite is not "
            "the vault's latest state (warning above): put the newer index.sqlite back, or "
            "settle with `lifeveil vault adopt` and `lifeveil vault purge`"
        )
    return f"OK: {report.checked} segment(s) decrypted and authenticated"


def adopt_lines(report: AdoptReport) -> list[str]:
    """What ``adopt`` did, file by file, and a closing count."""
    done = [f"adopted {segment_id}" for segment_id in report.adopted]
    return settlement_lines(
        done, report, f"{len(report.adopted)} adopted, {{}} still in quarantine"
    )


def purge_lines(report: PurgeReport) -> list[str]:
    """What ``purge`` did, file by file, and a closing count."""
    done = [f"purged quarantine/{name}" for name in report.purged]
    return settlement_lines(done, report, f"{len(report.purged)} purged, {{}} kept")


def settlement_lines(done: list[str], report: AdoptReport | PurgeReport, summary: str) -> list[str]:
    """What adopt/purge did: one line per file handled, per file kept (with the reason),
    whether the index is now accepted, and ``summary`` with the kept count filled in."""
    lines = [*done, *(f"kept: {reason}" for reason in report.kept)]
    if report.settled:
        lines.append("index.sqlite accepted as the vault's state (the rollback warning is cleared)")
    return [*lines, summary.format(len(report.kept))]


def _table_row(info: SegmentInfo) -> tuple[str, str, str, str, str]:
    duration = "-" if info.duration_s is None else f"{info.duration_s:.1f} s"
    return (
        info.segment_id,
        format_created(info),
        info.source_name or "-",
        format_size(info.size),
        duration,
    )
