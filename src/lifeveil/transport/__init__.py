"""Transport: the only way z leaves the device.

``record`` (the ZRecord type) -> ``frame`` (fixed-size, versioned byte format, pure
functions) -> ``guard`` (EgressGuard: the only producer of socket bytes) -> ``uplink``
(constant-rate WebSocket-over-TLS sender with acks and resend) and ``client`` (HTTPS
queries and device registration). Device code imports this package; it never imports
``lifeveil.server``.

Names are imported lazily, so that ``lifeveil.transport.frame`` does not pull in the
network libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lifeveil.transport.client import (
        DeviceCredentials,
        Neighbor,
        Prediction,
        QueryClient,
        Segment,
    )
    from lifeveil.transport.frame import (
        Ack,
        AckStatus,
        WireSpec,
        decode_ack,
        decode_frame,
        encode_ack,
        encode_cover_frame,
        encode_frame,
    )
    from lifeveil.transport.guard import EgressGuard, GuardedFrame
    from lifeveil.transport.record import ZRecord
    from lifeveil.transport.uplink import MemoryOutbox, Uplink, UplinkConfig, UplinkStats

_WHERE = {
    "client": ("DeviceCredentials", "Neighbor", "Prediction", "QueryClient", "Segment"),
    "frame": (
        "Ack",
        "AckStatus",
        "WireSpec",
        "decode_ack",
        "decode_frame",
        "encode_ack",
        "encode_cover_frame",
        "encode_frame",
    ),
    "guard": ("EgressGuard", "GuardedFrame"),
    "record": ("ZRecord",),
    "uplink": ("MemoryOutbox", "Uplink", "UplinkConfig", "UplinkStats"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "Ack",
    "AckStatus",
    "DeviceCredentials",
    "EgressGuard",
    "GuardedFrame",
    "MemoryOutbox",
    "Neighbor",
    "Prediction",
    "QueryClient",
    "Segment",
    "Uplink",
    "UplinkConfig",
    "UplinkStats",
    "WireSpec",
    "ZRecord",
    "decode_ack",
    "decode_frame",
    "encode_ack",
    "encode_cover_frame",
    "encode_frame",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'lifeveil.transport' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lifeveil.transport.{module}"), name)
