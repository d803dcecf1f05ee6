"""The on-device agent: raw video stays here (encrypted vault); only z goes to the server.

``source`` (PyAV decoding of files, V4L2 cameras, RTSP) -> ``segmenter`` (H.264 segments
into the :mod:`lifeveil.vault`) and the :mod:`lifeveil.privatizer` -> ``outbox`` (durable
SQLite queue with persistent sequence numbers) -> :mod:`lifeveil.transport` uplink.
``agent`` wires them together; ``identity`` enrols a device; ``sequence`` keeps the
high-water mark of its sequence numbers beside the token; ``ledger`` charges every released z
its bits (per day, per privatizer version) and enforces the daily budget; ``spaces``
registers the privatizer version whose space tag every z carries with the server;
``reencode`` makes z again from raw clips still in the vault with the current privatizer;
``cli`` is ``lifeveil device``.

Device code never imports :mod:`lifeveil.server`: a camera carries only what it needs to
send z, and the dependency arrow points one way.

>>> from lifeveil.device import DeviceAgent, DeviceConfig, Outbox   # doctest: +SKIP
>>> agent = DeviceAgent(DeviceConfig(fps=2), privatizer=p, outbox=Outbox(path, p.z_dim),
...                     vault=vault, uplink=uplink_config)          # doctest: +SKIP
>>> agent.run([parse_source("clip.mp4")])                            # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lifeveil.device.agent import DeviceAgent, SourceReport
    from lifeveil.device.config import DeviceConfig
    from lifeveil.device.identity import DeviceIdentity, enroll, load_identity, save_identity
    from lifeveil.device.ledger import Bound, Ledger, read_summary
    from lifeveil.device.outbox import Outbox, OutboxStats, SourceState
    from lifeveil.device.sequence import SequenceMark
    from lifeveil.device.source import Sampler, SourceSpec, parse_source
    from lifeveil.device.status import device_status

_WHERE = {
    "agent": ("DeviceAgent", "SourceReport"),
    "config": ("DeviceConfig",),
    "identity": ("DeviceIdentity", "enroll", "load_identity", "save_identity"),
    "ledger": ("Bound", "Ledger", "read_summary"),
    "outbox": ("Outbox", "OutboxStats", "SourceState"),
    "sequence": ("SequenceMark",),
    "source": ("Sampler", "SourceSpec", "parse_source"),
    "status": ("device_status",),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}
__all__ = [
    "Bound",
    "DeviceAgent",
    "DeviceConfig",
    "DeviceIdentity",
    "Ledger",
    "Outbox",
    "OutboxStats",
    "Sampler",
    "SequenceMark",
    "SourceReport",
    "SourceSpec",
    "SourceState",
    "device_status",
    "enroll",
    "load_identity",
    "parse_source",
    "read_summary",
    "save_identity",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'lifeveil.device' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lifeveil.device.{module}"), name)
