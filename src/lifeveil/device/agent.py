"""The device agent: camera -> vault (raw, encrypted) and privatizer -> outbox -> uplink (z).

One pass over a source::

    decode (PyAV) --all frames--> SegmentRecorder --H.264 MP4 segments--> Vault
          \\--sampled at fps--> Privatizer (per frame, or clips of cfg.clip_frames)
                                   --> Outbox (SQLite, durable) --> Uplink (wss://, constant rate)

The uplink runs on its own thread from :meth:`DeviceAgent.start` to :meth:`DeviceAgent.stop`,
taking records from the outbox at a constant rate and reconnecting with backoff whenever the
server is away; capture and privatization go on meanwhile, so nothing waits for the network.
Only z records ever reach the socket (the uplink's EgressGuard refuses anything else); raw
frames go only to the vault.

Restarts: each z is committed to the outbox together with the source position it reached,
and each vault segment records the stream interval it covers, so an agent killed at any
point and started again on the same file neither loses nor repeats frames, segments or z.

Representation spaces: every z is queued with the space tag of the privatizer version that
made it (:func:`~lifeveil.transport.record.space_tag`), and the agent registers that version
with the server whenever its uplink starts, and again after an ``UNKNOWN_SPACE`` answer
(:mod:`lifeveil.device.spaces`); meanwhile the outbox holds the records of that tag.

Privacy ledger: before a z is queued it is charged to the :class:`~lifeveil.device.ledger.Ledger`
beside the outbox (its bits, the day, the privatizer version). With a daily budget
(``DeviceConfig.daily_budget_bits``), a z that would take the day over it is withheld: it is
not queued, the source position moves past it, one warning says so, and the uplink keeps its
constant rate with cover frames until the next UTC day.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from lifeveil.device.config import DeviceConfig
from lifeveil.device.ledger import LEDGER_FILE, Bound, Ledger, Verdict
from lifeveil.device.outbox import Outbox, SourceState
from lifeveil.device.segmenter import SegmentRecorder, recorded_until
from lifeveil.device.source import (
    CapturedFrame,
    Sampler,
    SourceSpec,
    decode_frames,
    open_container,
    stream_rate,
)
from lifeveil.device.spaces import Register, SpaceKeeper, server_register
from lifeveil.errors import InputError
from lifeveil.privatizer.representation import Representation
from lifeveil.transport.record import space_tag
from lifeveil.transport.uplink import Uplink, UplinkConfig
from lifeveil.vault import SegmentInfo, Vault

if TYPE_CHECKING:
    from lifeveil.privatizer import Privatizer
    from lifeveil.privatizer.lite import LitePrivatizer

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
OUTBOX_FLOAT_BITS = 32  # the outbox keeps z as float32; the wire may carry fewer bits a value


@dataclass
class SourceReport:
    """What one pass over a source did."""

    source: str
    frames_decoded: int = 0
    frames_sampled: int = 0
    z_queued: int = 0
    z_withheld: int = 0  # privatized but not released: the day's privacy budget was spent
    segments: int = 0
    raw_bytes: int = 0  # plaintext bytes of H.264 segments stored in the vault
    seconds: float = 0.0  # stream time covered
    resumed_from_s: float | None = None  # z position found in the outbox, if resuming
    seqs: list[int] = field(default_factory=list)


@dataclass
class ClipBuffer:
    """Sampled frames waiting to fill one clip."""

    size: int
    frames: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def add(self, image: np.ndarray, t: float) -> bool:
        self.frames.append(image)
        self.times.append(t)
        return len(self.frames) >= self.size

    def take(self) -> tuple[list[np.ndarray], list[float]]:
        frames, times = self.frames, self.times
        self.frames, self.times = [], []
        return frames, times


class DeviceAgent:
    """Runs sources through vault, privatizer, outbox and uplink.

    Args:
        config: sampling, segment and uplink settings.
        privatizer: the on-device model M (per-frame, or clip mode when
            ``privatizer.cfg.clip_frames > 1``).
        outbox: the durable queue (its ``z_dim`` must equal the privatizer's).
        vault: where raw segments go; None records no raw video (tests, benchmarks).
        uplink: where z goes; None only queues (an offline device).
        progress: receives one line per notable event (segment stored, source done, ...).
        ledger: where released z are charged; None opens ``ledger.sqlite`` beside the outbox.
        register: how to register privatizer versions with the server (tests pass a fake);
            None uses ``POST /v1/spaces`` on the uplink's server.
    """

    def __init__(
        self,
        config: DeviceConfig,
        *,
        privatizer: Privatizer | LitePrivatizer,
        outbox: Outbox,
        vault: Vault | None = None,
        uplink: UplinkConfig | None = None,
        progress: Progress | None = None,
        ledger: Ledger | None = None,
        register: Register | None = None,
    ) -> None:
        if outbox.z_dim != privatizer.z_dim:
            raise InputError(
                f"outbox holds d={outbox.z_dim} but the privatizer makes d={privatizer.z_dim}"
            )
        if uplink is not None and uplink.wire.z_dim != privatizer.z_dim:
            raise InputError(
                f"the server stores z of dimension {uplink.wire.z_dim} but the model "
                f"{privatizer.z_dim}; use a checkpoint with z_dim={uplink.wire.z_dim}"
            )
        self.config = config
        self.privatizer = privatizer
        self.outbox = outbox
        self.vault = vault
        self.uplink: Uplink | None = None
        self._uplink_config = uplink
        self._progress = progress or (lambda _line: None)
        self._next_base_us = 0  # earliest capture time for the next new source
        self.ledger = ledger or Ledger(outbox.path.with_name(LEDGER_FILE))
        self.version = privatizer_version(privatizer)
        self.space = space_tag(self.version)
        self._bound = release_bound(privatizer, config)
        self.ledger.register_version(self.version, privatizer.cfg.label, self._bound)
        self.ledger.set_budget(config.daily_budget_bits)
        self._cover_counted = 0  # uplink cover frames already counted in the ledger
        self._capped_day: str | None = None  # the day the budget ran out (warned once)
        self.spaces: SpaceKeeper | None = None
        if uplink is not None:
            versions = [*self.ledger.versions(), self.version]
            register = register or server_register(uplink)
            self.spaces = SpaceKeeper(register, privatizer.z_dim, versions)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Register this privatizer version with the server and start the uplink thread (if a
        server is configured); pending z go out first."""
        if self._uplink_config is None or self.uplink is not None:
            return
        assert self.spaces is not None
        self.outbox.rewind()
        self.spaces.start(self.version)
        self.uplink = Uplink(
            self._uplink_config,
            next_record=self.outbox.next_record,
            on_ack=self.outbox.on_ack,
            on_refused=self.outbox.on_refused,
        )
        self.uplink.start()

    def stop(self) -> None:
        """Stop the uplink (after a short drain of in-flight frames); count its cover frames."""
        if self.uplink is not None:
            self.uplink.stop()
            self.count_cover()

    def count_cover(self) -> None:
        """Count the cover frames the uplink sent since the last count in the ledger."""
        self.ledger.count_cover(self._new_cover())

    def _new_cover(self) -> int:
        if self.uplink is None:
            return 0
        sent = self.uplink.stats.cover_sent
        new, self._cover_counted = sent - self._cover_counted, sent
        return new

    def __enter__(self) -> DeviceAgent:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check_uplink(self) -> None:
        """Raise the uplink's fatal error (bad token, wrong wire format), if any; re-register
        the versions of space tags the server has just answered UNKNOWN_SPACE for."""
        if self.uplink is not None and self.uplink.error is not None:
            raise self.uplink.error
        if self.spaces is not None:
            tags = self.outbox.take_new_holds()
            if tags:
                self.spaces.reregister(tags, self.outbox.release_space)

    def wait_drained(self, timeout_s: float | None = None, poll_s: float = 0.05) -> bool:
        """Block until every queued z is acked; False on timeout, or when all that is left are
        z the server does not take (UNKNOWN_SPACE, re-registration tried). Raises a fatal
        uplink error."""
        if self.uplink is None:
            raise InputError("no uplink configured; nothing can drain the outbox")
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            held = self.outbox.held_pending()
            waiting = self.outbox.pending()
            self.check_uplink()
            if not waiting and not self.uplink.in_flight:
                return True
            if self._only_held(waiting, held):
                return False
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(poll_s)

    def _only_held(self, waiting: int, held: int) -> bool:
        """Every queued z waits for a registration that was tried and is not running."""
        assert self.uplink is not None and self.spaces is not None
        return waiting == held and not self.uplink.in_flight and not self.spaces.busy

    # -- one source ---------------------------------------------------------------------
    def process(self, spec: SourceSpec) -> SourceReport:
        """Record, privatize and queue every frame of ``spec`` not already done."""
        key = spec.key()
        # Files replayed faster than real time get back-to-back capture times, not overlapping
        # ones; a camera's frames are stamped with the clock.
        base_us = max(time.time_ns() // 1000, self._next_base_us)
        state = self.outbox.begin_source(key, base_us)
        report = SourceReport(spec.name, resumed_from_s=state.position_s)
        container = open_container(spec)
        recorder = self._recorder(spec, state, stream_rate(container))
        sampler = Sampler(self.config.fps, after_s=state.position_s)
        clip = ClipBuffer(self.privatizer.cfg.clip_frames)
        try:
            for captured in decode_frames(container, realtime=self.config.realtime):
                self._record(recorder, captured, report)
                report.frames_decoded += 1
                report.seconds = captured.t
                if sampler.keep(captured.t):
                    report.frames_sampled += 1
                    if clip.add(captured.rgb(), captured.t):
                        self._queue(state, *clip.take(), report)
                self.check_uplink()
            if clip.frames:  # the stream ended inside a clip: z of the frames there are
                self._queue(state, *clip.take(), report)
        finally:
            container.close()
            if recorder is not None:
                self._record_done(recorder.finish(), report)
            self._next_base_us = state.base_us + round((report.seconds + 1.0) * 1e6)
        self._progress(
            f"{spec.name}: {report.frames_decoded} frames decoded, {report.frames_sampled} "
            f"sampled at {self.config.fps:g} fps -> {report.z_queued} z queued, "
            f"{report.segments} raw segment(s) in the vault"
            + (f", {report.z_withheld} z withheld (daily budget)" if report.z_withheld else "")
        )
        return report

    def _recorder(
        self, spec: SourceSpec, state: SourceState, rate: float
    ) -> SegmentRecorder | None:
        if self.vault is None:
            return None
        resume_s = 0.0 if spec.live else recorded_until(self.vault, state.key)
        return SegmentRecorder(
            self.vault,
            source_key=state.key,
            source_name=spec.name,
            base_us=state.base_us,
            rate=rate,
            segment_s=self.config.segment_s,
            resume_s=resume_s,
        )

    def _record(
        self, recorder: SegmentRecorder | None, captured: CapturedFrame, report: SourceReport
    ) -> None:
        if recorder is not None:
            self._record_done(recorder.add(captured), report)

    def _record_done(self, info: SegmentInfo | None, report: SourceReport) -> None:
        if info is None:
            return
        report.segments += 1
        report.raw_bytes += info.size
        self._progress(
            f"vault: stored segment {info.segment_id[:8]} ({info.size} B H.264, "
            f"{info.duration_s or 0:.1f} s)"
        )

    def _queue(
        self,
        state: SourceState,
        frames: Sequence[np.ndarray],
        times: Sequence[float],
        report: SourceReport,
    ) -> None:
        z, bits = self.encode(frames)
        timestamp_us = state.base_us + round(times[0] * 1e6)
        verdict = self.ledger.charge(
            source=state.key,
            timestamp_us=timestamp_us,
            bits=bits,
            version=self.version,
            budget_bits=self.config.daily_budget_bits,
            cover=self._new_cover(),
        )
        if not verdict.released:
            self._withhold(state, times[-1], verdict, report)
            return
        seqs = self.outbox.put_many(
            [(z, timestamp_us)], source=state.key, position_s=times[-1], space=self.space
        )
        report.z_queued += len(seqs)
        report.seqs.extend(seqs)

    def encode(self, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
        """One z of ``frames`` (one frame, or the frames of one clip in clip mode) and the
        bits the ledger charges for releasing it. Charges nothing, queues nothing."""
        rep = self._privatize(frames)
        return rep.z[0], self._bits(rep)

    def _privatize(self, frames: Sequence[np.ndarray]) -> Representation:
        mode = self.config.release_mode
        if self.privatizer.cfg.clip_frames > 1:
            return self.privatizer.privatize_clips([list(frames)], mode=mode)
        return self.privatizer.privatize(list(frames), mode=mode)

    def _bits(self, rep: Representation) -> float:
        """What the ledger charges for this z: see :func:`release_bound`."""
        if self._bound is Bound.FLOAT_WIDTH:
            return float(self.privatizer.z_dim * self._float_bits())
        return float(rep.kl_bits[0])

    def _float_bits(self) -> int:
        if self._uplink_config is None:
            return OUTBOX_FLOAT_BITS
        return 8 * self._uplink_config.wire.payload_bytes // self.privatizer.z_dim

    def _withhold(
        self, state: SourceState, position_s: float, verdict: Verdict, report: SourceReport
    ) -> None:
        """Skip a z over the day's budget for good: the source moves past it, nothing queued."""
        self.outbox.put_many([], source=state.key, position_s=position_s)
        report.z_withheld += 1
        if self._capped_day == verdict.day:
            return
        self._capped_day = verdict.day
        log.warning(
            "privacy ledger: daily budget of %.1f bits reached on %s (%.1f bits released); "
            "no further z is released until 00:00 UTC: cover frames only, at the same rate",
            verdict.budget_bits,
            verdict.day,
            verdict.spent_bits,
        )

    # -- everything ---------------------------------------------------------------------
    def run(
        self,
        sources: Sequence[SourceSpec],
        *,
        until_drained: bool = True,
        drain_timeout_s: float | None = None,
    ) -> list[SourceReport]:
        """Start the uplink, process the sources in order, then (optionally) wait until drained.

        With ``until_drained=False`` the uplink keeps running (cover frames) after the
        sources end; call :meth:`stop` when done.
        """
        self.start()
        reports = [self.process(spec) for spec in sources]
        if until_drained and self.uplink is not None:
            if not self.wait_drained(drain_timeout_s):
                self._progress(self._undrained_line())
            self.stop()
        return reports

    def _undrained_line(self) -> str:
        pending, held = self.outbox.pending(), self.outbox.held_pending()
        if not held:
            return f"drain timed out; {pending} z stay queued in the outbox"
        tags = ", ".join(str(t) for t in sorted(self.outbox.held_spaces()))
        return (
            f"{pending} z stay queued in the outbox; {held} of them are of space tag(s) {tags}, "
            "which the server does not know (not stored) - the next start registers the "
            "version again"
        )


def release_bound(privatizer: Privatizer | LitePrivatizer, config: DeviceConfig) -> Bound:
    """Which bound the ledger charges for this privatizer's releases (see :class:`Bound`).

    An fsq code: its exact bits. A VIB sampled release: the frame's KL. A VIB releasing its
    mean (deterministic and continuous): no information bound but the width of the encoding.
    """
    cfg = privatizer.cfg
    if cfg.bottleneck == "fsq":
        return Bound.FSQ_CODE
    mode = config.release_mode or cfg.deploy_mode
    return Bound.VIB_KL if mode == "sample" else Bound.FLOAT_WIDTH


def privatizer_version(privatizer: Privatizer | LitePrivatizer) -> str:
    """The ledger's version id of ``privatizer`` (:attr:`Privatizer.version`): SHA-256 of the
    config and every weight, the same in either runtime and wherever it was loaded from."""
    return privatizer.version
