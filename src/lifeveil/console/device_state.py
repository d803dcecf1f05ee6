"""What the status page shows: is the agent running, is the server reachable, how deep the queue.

The device keeps no pid file, so "agent running" is read from the system: a process other than
this console that holds the outbox database open (Linux ``/proc``; elsewhere it is unknown).
Reachability asks the enrolled server's ``/v1/info`` (no token needed, no z sent), with the
device's own TLS trust, and only when the owner opens the status page.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lifeveil.device.identity import DeviceIdentity, load_identity
from lifeveil.device.status import IDENTITY_FILE, OUTBOX_FILE
from lifeveil.errors import LifeVeilError

PROC = Path("/proc")
REACH_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class AgentState:
    """Whether an agent process has the outbox open."""

    known: bool  # False where processes cannot be inspected (no /proc)
    pids: tuple[int, ...] = ()

    @property
    def running(self) -> bool:
        """An agent holds the outbox open."""
        return bool(self.pids)


@dataclass(frozen=True)
class ServerState:
    """The result of asking the enrolled server for its info."""

    url: str | None  # None: the device is not enrolled with a server
    reachable: bool = False
    detail: str = ""  # the server's wire format, or why it could not be reached


def outbox_path(state: Path) -> Path:
    """Where the agent keeps its outbox in the state folder."""
    return state / OUTBOX_FILE


def identity(state: Path) -> DeviceIdentity | None:
    """The device's enrolment (``device.json``), if readable."""
    try:
        return load_identity(state / IDENTITY_FILE)
    except LifeVeilError:
        return None


def agent_state(state: Path, proc: Path = PROC) -> AgentState:
    """Processes (not this one) that hold the outbox of ``state`` open."""
    if not proc.is_dir():
        return AgentState(known=False)
    target = outbox_path(state).resolve()
    pids = []
    for entry in proc.iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and _holds(entry, target):
            pids.append(int(entry.name))
    return AgentState(known=True, pids=tuple(sorted(pids)))


def _holds(process: Path, target: Path) -> bool:
    try:
        return any(Path(os.readlink(fd)) == target for fd in (process / "fd").iterdir())
    except OSError:  # gone, or another user's process
        return False


def server_state(state: Path, timeout_s: float = REACH_TIMEOUT_S) -> ServerState:
    """Ask the enrolled server (from ``device.json``) whether it answers."""
    enrolled = identity(state)
    if enrolled is None or not enrolled.server:
        return ServerState(url=None, detail="not enrolled (no device.json with a server)")
    from lifeveil.transport.client import QueryClient

    try:
        with QueryClient(
            enrolled.server, enrolled.token, cafile=enrolled.cafile, timeout_s=timeout_s
        ) as client:
            info = client.info()
    except Exception as exc:  # noqa: BLE001  (any failure means: not reachable, say why)
        return ServerState(enrolled.server, False, _reason(exc))
    return ServerState(enrolled.server, True, _describe_wire(info.get("wire")))


def _describe_wire(token: object) -> str:
    """The server's wire format in words (its token when it cannot be read)."""
    from lifeveil.transport.frame import WireSpec

    try:
        return f"z format: {WireSpec.from_token(str(token)).describe()}"
    except Exception:  # noqa: BLE001  (a newer server's token: show it as it is)
        return f"z format: {token}"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
