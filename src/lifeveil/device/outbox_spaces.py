"""Space tags the server does not know: which records the outbox holds back, and for how long.

An ``UNKNOWN_SPACE`` ack means the server has no privatizer version with that record's space
tag registered for this tenant. Nothing is lost: the record stays in the outbox, pending. But
sending the other records of that tag again would only earn the same answer, one frame per
tick (a retry storm that also starves the known tags), so the tag is *held*: the outbox hands
out none of its records until the agent has registered the version again
(:meth:`SpaceHolds.release`) or the next uplink session starts (:meth:`SpaceHolds.reset`).

A release must not be undone by an ack that was already on its way: records of the tag handed
out before the release may still come back ``UNKNOWN_SPACE`` (sent before the server knew the
version). Those are *stale*: they are queued to go out again, and the tag stays released.

This class is bookkeeping only; :class:`~lifeveil.device.outbox.Outbox` calls it under its lock.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


@dataclass
class SpaceHolds:
    """In-memory state of one uplink session's held space tags."""

    held: set[int] = field(default_factory=set)  # tags whose records are not handed out
    unreported: set[int] = field(default_factory=set)  # held tags not yet seen by the agent
    out: dict[int, int] = field(default_factory=dict)  # seq -> tag: handed out, not yet acked
    stale: set[int] = field(default_factory=set)  # handed out before their tag's release
    again: list[int] = field(default_factory=list)  # heap of seqs to hand out again

    def handed_out(self, seq: int, space: int) -> None:
        """The uplink took record ``seq`` of tag ``space``."""
        self.out[seq] = space

    def acked(self, seq: int) -> int | None:
        """Record ``seq`` was answered; returns its tag if it was handed out this session."""
        self.stale.discard(seq)
        return self.out.pop(seq, None)

    def unknown(self, seq: int, space: int) -> bool:
        """The server answered ``UNKNOWN_SPACE`` for ``seq``; True if this newly holds ``space``.

        A stale answer (``seq`` left before its tag was released) queues ``seq`` again instead.
        """
        self.out.pop(seq, None)
        if seq in self.stale:
            self.stale.discard(seq)
            heapq.heappush(self.again, seq)
            return False
        if space in self.held:
            return False
        self.held.add(space)
        self.unreported.add(space)
        return True

    def take_unreported(self) -> set[int]:
        """Tags held since the last call (each reported once, for the agent to re-register)."""
        tags, self.unreported = self.unreported, set()
        return tags

    def release(self, space: int, pending: list[int]) -> None:
        """Hand out tag ``space`` again: ``pending`` (its unacked seqs already passed by the
        cursor) go out first, except those still in flight, which become stale."""
        self.held.discard(space)
        self.unreported.discard(space)
        in_flight = {seq for seq, tag in self.out.items() if tag == space}
        self.stale |= in_flight
        for seq in pending:
            if seq not in in_flight:
                heapq.heappush(self.again, seq)

    def pop_again(self) -> int | None:
        """The oldest seq queued to go out again, or None."""
        return heapq.heappop(self.again) if self.again else None

    def reset(self) -> None:
        """A new uplink session: every record may go out again, every tag is tried again."""
        self.held.clear()
        self.unreported.clear()
        self.out.clear()
        self.stale.clear()
        self.again.clear()
