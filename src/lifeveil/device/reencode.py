"""Re-encode raw clips still in the vault with the device's current privatizer (issue 14).

When the privatizer is replaced, the z already on the server live in the old version's space.
Where the raw video behind them is still in the encrypted vault (retention has not deleted
it), the device can make new z from it::

    vault segment (decrypted in memory, never written out) --PyAV--> frames sampled at fps
        --> current privatizer --> z --> ledger (charged: a new release) --> outbox (queued)

Nothing raw leaves the device and nothing here touches the network: the z go into the
outbox with fresh seqs and the current version's space tag, and the next ``lifeveil device
run`` uploads them. Each re-encoded z is a new release, so it is charged to the privacy ledger
and the daily budget applies: at the cap, re-encoding stops (the z that would cross it is
neither charged nor queued) and the next run continues from there.

Which clips: the vault segments whose capture began in ``[since, until)`` (a segment's
``created_at``). Every clip is a source of the outbox keyed by the version and the segment
(:func:`reencode_key`); its position advances in the same transaction as its z, exactly as
for a camera source, so a run killed at any point (Ctrl-C, SIGKILL, power cut) resumes where it
stopped, charges nothing twice and queues nothing twice; a finished clip is marked done and a
rerun skips it. A new privatizer version re-encodes everything again, under new keys.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import av
import numpy as np

from lifeveil.device.agent import ClipBuffer
from lifeveil.device.ledger import LEDGER_FILE, read_summary
from lifeveil.device.outbox import SourceState
from lifeveil.device.source import Sampler, decode_frames
from lifeveil.errors import InputError, MediaError

if TYPE_CHECKING:
    from pathlib import Path

    from lifeveil.device.agent import DeviceAgent
    from lifeveil.device.config import DeviceConfig
    from lifeveil.privatizer import Privatizer
    from lifeveil.privatizer.lite import LitePrivatizer
    from lifeveil.vault import SegmentInfo, Vault

Progress = Callable[[str], None]
#: The source position of a clip re-encoded to its end (a Sampler after it keeps no frame).
CLIP_DONE_S = math.inf


@dataclass(frozen=True)
class Window:
    """Capture times ``[since, until)``, seconds since the Unix epoch (UTC)."""

    since: float
    until: float

    def __contains__(self, t: float) -> bool:
        return self.since <= t < self.until

    def describe(self) -> str:
        """``2026-12-01 00:00:00 to 2026-12-02 00:00:00 UTC``."""
        return f"{_utc(self.since)} to {_utc(self.until)} UTC"


def parse_window(since: str, until: str | None, now: float) -> Window:
    """The window of ``--since DATE [--until DATE]``.

    A DATE is a UTC day ``YYYY-MM-DD`` (``--until`` then includes that whole day) or an ISO
    time ``YYYY-MM-DDTHH:MM[:SS][+HH:MM]`` (UTC unless it names a zone; ``--until`` excludes
    it). Without ``--until``, the window ends ``now``.

    >>> w = parse_window("2026-12-01", "2026-12-01", 0.0)
    >>> w.describe()
    '2026-12-01 00:00:00 to 2026-12-02 00:00:00 UTC'
    """
    start = _parse_time(since, "--since", end_of_day=False)
    end = now if until is None else _parse_time(until, "--until", end_of_day=True)
    if end <= start:
        raise InputError(
            f"--until ({_utc(end)} UTC) is not after --since ({_utc(start)} UTC); give a later "
            "--until, or leave it out to mean now"
        )
    return Window(start, end)


def _parse_time(text: str, flag: str, *, end_of_day: bool) -> float:
    try:
        if len(text) == 10:  # a day
            day = date.fromisoformat(text) + timedelta(days=int(end_of_day))
            return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{flag} {text!r} is not a date: use YYYY-MM-DD (a UTC day) or an ISO time such "
            "as 2026-12-01T08:30 (UTC unless a zone like +01:00 is given)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def reencode_key(version: str, segment_id: str) -> str:
    """The outbox source and ledger key of vault clip ``segment_id`` re-encoded by ``version``
    (distinct from the key the camera's own z were charged under)."""
    return f"reencode:{version}:{segment_id}"


@dataclass
class ReencodeReport:
    """What one ``reencode`` run did."""

    clips: int = 0  # vault clips in the window
    clips_done: int = 0  # re-encoded to their end (in this run or an earlier one)
    clips_skipped: int = 0  # already done by this version in an earlier run
    z_queued: int = 0  # z released (charged and queued) in this run
    bits: float = 0.0  # what they were charged
    budget_stop: str | None = None  # the line saying the daily budget stopped the run
    seqs: list[int] = field(default_factory=list)


def clips_in_window(vault: Vault, window: Window) -> list[SegmentInfo]:
    """Vault segments whose capture began in ``window``, oldest first; InputError if none."""
    infos = vault.list()
    chosen = sorted((i for i in infos if i.created_at in window), key=lambda i: i.created_at)
    if not chosen:
        held = (
            f"it holds {len(infos)} clip(s), captured {_utc(min(i.created_at for i in infos))} "
            f"to {_utc(max(i.created_at for i in infos))} UTC"
            if infos
            else "it is empty"
        )
        raise InputError(
            f"no vault clip was captured from {window.describe()} ({held}); nothing to "
            "re-encode - widen --since/--until"
        )
    return chosen


def reencode(
    config: DeviceConfig,
    *,
    privatizer: Privatizer | LitePrivatizer,
    vault: Vault,
    clips: Sequence[SegmentInfo],
    state: Path,
    token_file: Path | None = None,
    progress: Progress | None = None,
) -> ReencodeReport:
    """Re-encode ``clips`` into the outbox and ledger of the device state folder ``state``
    (offline: nothing is sent; seqs continue above the mark beside ``token_file``).

    Without a budget in ``config``, the one the device's agent last enforced (kept in its
    ledger) applies: re-encoding never lifts the owner's cap by accident.
    """
    from lifeveil.device.build import build_agent

    if config.daily_budget_bits is None:
        summary = read_summary(state / LEDGER_FILE)
        budget = summary and summary["daily_budget_bits"]
        if budget:
            config = config.replace(daily_budget_bits=budget)
            if progress is not None:
                progress(f"daily budget: {budget:.1f} bits, as `device run` last enforced")
    agent = build_agent(
        config,
        privatizer=privatizer,
        vault=vault,
        state=state,
        identity=None,
        token_file=token_file,
    )
    try:
        return Reencoder(agent, vault, progress).run(clips)
    finally:
        agent.ledger.close()
        agent.outbox.close()


class Reencoder:
    """Re-encodes vault clips with ``agent``'s privatizer into ``agent``'s outbox and ledger.

    Args:
        agent: an offline agent (no uplink) on the device's state: its privatizer, outbox,
            ledger and config (``fps``, ``release_mode``, ``daily_budget_bits``) are used.
        vault: the unlocked vault.
        progress: receives one line per clip and the final summary.
    """

    def __init__(self, agent: DeviceAgent, vault: Vault, progress: Progress | None = None) -> None:
        self.agent = agent
        self.vault = vault
        self._progress = progress or (lambda _line: None)

    def run(self, clips: Sequence[SegmentInfo]) -> ReencodeReport:
        """Re-encode every clip not yet done by this version, in order; stop at the cap."""
        report = ReencodeReport(clips=len(clips))
        for number, info in enumerate(clips, 1):
            if not self._clip(info, f"[{number}/{len(clips)}]", report):
                break
        self._progress(
            f"re-encoded {report.clips_done} of {report.clips} clip(s) with privatizer "
            f"{self.agent.version} (space tag {self.agent.space}): {report.z_queued} z queued "
            f"in this run, {report.bits:.1f} bits charged; `lifeveil device run` uploads them"
        )
        return report

    def _clip(self, info: SegmentInfo, label: str, report: ReencodeReport) -> bool:
        """Re-encode one clip from where an earlier run stopped; False at the budget cap."""
        key = reencode_key(self.agent.version, info.segment_id)
        state = self.agent.outbox.begin_source(key, round(info.created_at * 1e6))
        name = f"{label} clip {info.segment_id[:8]} (captured {_utc(info.created_at)} UTC)"
        if state.position_s == CLIP_DONE_S:
            report.clips_done += 1
            report.clips_skipped += 1
            self._progress(f"{name}: done in an earlier run")
            return True
        before = report.z_queued
        if not self._frames(info, state, report):
            self._progress(f"{name}: {report.z_queued - before} z queued; {report.budget_stop}")
            return False
        self.agent.outbox.put_many([], source=key, position_s=CLIP_DONE_S)
        report.clips_done += 1
        self._progress(f"{name}: {report.z_queued - before} z queued")
        return True

    def _frames(self, info: SegmentInfo, state: SourceState, report: ReencodeReport) -> bool:
        """Decrypt the clip in memory, privatize its sampled frames; False at the cap."""
        plaintext = io.BytesIO(b"".join(self.vault.open_segment(info.segment_id)))
        try:
            container = av.open(plaintext)
        except (av.error.FFmpegError, ValueError) as exc:
            raise MediaError(f"vault clip {info.segment_id[:8]} is not a video ({exc})") from None
        sampler = Sampler(self.agent.config.fps, after_s=state.position_s)
        clip = ClipBuffer(self.agent.privatizer.cfg.clip_frames)
        try:
            for captured in decode_frames(container):
                full = sampler.keep(captured.t) and clip.add(captured.rgb(), captured.t)
                if full and not self._release(state, *clip.take(), report):
                    return False
            return not clip.frames or self._release(state, *clip.take(), report)
        finally:
            container.close()

    def _release(
        self,
        state: SourceState,
        frames: Sequence[np.ndarray],
        times: Sequence[float],
        report: ReencodeReport,
    ) -> bool:
        """Charge and queue one z; False (nothing charged or queued) if over the budget."""
        agent = self.agent
        z, bits = agent.encode(frames)
        timestamp_us = state.base_us + round(times[0] * 1e6)
        verdict = agent.ledger.charge(
            source=state.key,
            timestamp_us=timestamp_us,
            bits=bits,
            version=agent.version,
            budget_bits=agent.config.daily_budget_bits,
        )
        if not verdict.released:
            report.budget_stop = (
                f"daily privacy budget reached ({verdict.spent_bits:.1f} of "
                f"{verdict.budget_bits:.1f} bits released on {verdict.day} UTC): re-encoding "
                "stopped; run the same command after 00:00 UTC to continue where it stopped"
            )
            return False
        seqs = agent.outbox.put_many(
            [(z, timestamp_us)], source=state.key, position_s=times[-1], space=agent.space
        )
        report.z_queued += len(seqs)
        report.seqs.extend(seqs)
        if not verdict.repeated:
            report.bits += bits
        return True
