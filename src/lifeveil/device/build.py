"""The one place that wires a device agent: state folder, outbox, sequence mark, uplink.

``lifeveil device run`` and ``lifeveil demo`` both call :func:`build_agent`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lifeveil.device.config import DeviceConfig
from lifeveil.device.identity import DeviceIdentity
from lifeveil.device.sequence import SequenceMark
from lifeveil.device.status import IDENTITY_FILE, OUTBOX_FILE, SEQUENCE_FILE
from lifeveil.errors import InputError
from lifeveil.io import private_dir

if TYPE_CHECKING:
    from lifeveil.device.agent import DeviceAgent
    from lifeveil.privatizer import Privatizer
    from lifeveil.transport.uplink import UplinkConfig
    from lifeveil.vault import Vault


def private_state(state: Path) -> Path:
    """Create the state folder 0700, or make an existing one 0700 (it holds the token)."""
    try:
        return private_dir(state)
    except OSError as exc:
        raise InputError(
            f"{state}: cannot create the device state folder or make it private "
            f"({exc.strerror}); pass a --state folder you own"
        ) from None


def sequence_mark(state: Path, token_file: Path | None = None) -> SequenceMark:
    """The sequence high-water mark follows the token: in its device.json (``token_file`` or
    STATE/device.json), else in STATE/sequence.json beside a bare token."""
    path = token_file or state / IDENTITY_FILE
    try:
        holds_identity = path.read_text().lstrip().startswith("{")
    except OSError:
        holds_identity = False
    return SequenceMark(path if holds_identity else state / SEQUENCE_FILE)


def uplink_config(identity: DeviceIdentity, config: DeviceConfig) -> UplinkConfig:
    """Uplink settings from the enrolment and the device config (a bare token asks the server
    which wire format it speaks)."""
    from lifeveil.transport.client import QueryClient
    from lifeveil.transport.frame import WireSpec
    from lifeveil.transport.uplink import UplinkConfig

    wire = identity.wire_spec()
    if wire is None:
        if identity.server is None:
            raise InputError(
                "a bare --token-file does not say which server it is for - pass --server "
                "https://HOST:PORT (or enroll with `lifeveil device enroll`, which saves both)"
            )
        with QueryClient(identity.server, identity.token, cafile=identity.cafile) as client:
            wire = WireSpec.from_token(client.info()["wire"])
    return UplinkConfig(
        url=identity.uplink_url,
        token=identity.token,
        wire=wire,
        rate_hz=config.rate_hz,
        cafile=identity.cafile,
        max_in_flight=config.max_in_flight,
        backoff_initial_s=config.backoff_initial_s,
        backoff_max_s=config.backoff_max_s,
    )


def build_agent(
    config: DeviceConfig,
    *,
    privatizer: Privatizer,
    vault: Vault,
    state: Path,
    identity: DeviceIdentity | None,
    token_file: Path | None = None,
    keep_acked: bool = False,
    progress: Callable[[str], None] | None = None,
) -> DeviceAgent:
    """A device agent on ``state`` (made private), with a durable outbox whose sequence numbers
    survive its loss, and an uplink unless ``identity`` is None (offline: only queue z)."""
    from lifeveil.device.agent import DeviceAgent
    from lifeveil.device.outbox import Outbox

    private_state(state)
    uplink = None if identity is None else uplink_config(identity, config)
    outbox = Outbox(
        state / OUTBOX_FILE,
        privatizer.z_dim,
        keep_acked=keep_acked,
        seq_mark=sequence_mark(state, token_file),
    )
    if identity is not None and identity.device:
        outbox.bind_device(identity.device)
    return DeviceAgent(
        config, privatizer=privatizer, outbox=outbox, vault=vault, uplink=uplink, progress=progress
    )
