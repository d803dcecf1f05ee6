"""How and where the uplink sends (:class:`UplinkConfig`), what it counted
(:class:`UplinkStats`) and its reconnect schedule (:func:`backoff_delay`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lifeveil.errors import ProtocolError
from lifeveil.transport.frame import WireSpec
from lifeveil.transport.protocol import UPLINK_PATH


@dataclass(frozen=True)
class UplinkConfig:
    """How and where the device sends frames.

    Attributes:
        url: ``wss://HOST:PORT/v1/uplink``; plaintext ``ws://`` is refused.
        token: the per-device token returned once by device registration.
        wire: frame format; must match the server's (``GET /v1/info``).
        rate_hz: frames per second, real or cover; constant whatever the camera sees.
        cafile: PEM file of certificates to trust, e.g. the server's self-signed
            ``cert.pem``; None uses the system trust store.
        max_in_flight: unacked real frames allowed before ticks carry cover frames only.
        backoff_initial_s / backoff_max_s: reconnect delay range (exponential, jittered).
        connect_timeout_s: TCP + TLS + WebSocket handshake timeout.
        ack_timeout_s: no ack (real or cover) for this long means the link is dead: the
            session is dropped and reconnected. This replaces WebSocket keepalive pings, which
            would put records of another size on the wire; the constant-rate cover frames
            and their acks are the keepalive.
        drain_s: on stop, keep sending cover frames up to this long so that the last real
            frames get acked.
    """

    url: str
    token: str = field(repr=False)
    wire: WireSpec = field(default_factory=WireSpec)
    rate_hz: float = 10.0
    cafile: str | None = None
    max_in_flight: int = 256
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    connect_timeout_s: float = 10.0
    drain_s: float = 2.0
    ack_timeout_s: float = 15.0

    def __post_init__(self) -> None:
        if not self.url.startswith("wss://"):
            raise ProtocolError(
                f"uplink URL {self.url!r} is not wss://; z is only sent over TLS "
                f"(e.g. wss://127.0.0.1:8443{UPLINK_PATH})"
            )
        if not 0 < self.rate_hz <= 1000:
            raise ProtocolError(f"rate_hz={self.rate_hz} must be in (0, 1000]")
        if self.max_in_flight < 1:
            raise ProtocolError("max_in_flight must be >= 1")
        if self.ack_timeout_s <= 2.0 / self.rate_hz:
            raise ProtocolError(
                f"ack_timeout_s={self.ack_timeout_s} must exceed two frame periods "
                f"({2.0 / self.rate_hz:.3f} s at {self.rate_hz} Hz)"
            )
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            raise ProtocolError("need 0 < backoff_initial_s <= backoff_max_s")


@dataclass
class UplinkStats:
    """Counters since the Uplink was created (read from any thread)."""

    real_sent: int = 0
    cover_sent: int = 0
    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    unknown_space: int = 0  # UNKNOWN_SPACE acks: the record's version is not registered
    refused: int = 0
    connects: int = 0
    disconnects: int = 0


def backoff_delay(attempt: int, initial_s: float, max_s: float, u: float) -> float:
    """Reconnect delay in seconds for the ``attempt``-th consecutive failure (0-based).

    Exponential with "equal jitter": ``d = min(max_s, initial_s * 2**attempt)``, result in
    ``[d/2, d]`` chosen by ``u`` in ``[0, 1)``, so that many devices do not reconnect in step.

    >>> backoff_delay(0, 0.5, 30.0, 0.0), backoff_delay(3, 0.5, 30.0, 0.999) < 4.0
    (0.25, True)
    >>> backoff_delay(20, 0.5, 30.0, 0.0)
    15.0
    """
    d = min(max_s, initial_s * 2.0 ** min(attempt, 60))
    return d / 2 + u * d / 2
