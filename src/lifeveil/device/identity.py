"""The device's server identity: enrolment with a user token, saved as a private JSON file.

``lifeveil device enroll`` registers the device in the user's tenant and writes
``device.json`` (mode 0600, in a 0700 folder) with the device name, its token (shown by the
server only once), the server and uplink URLs, the server's wire format and the CA file to
trust. The agent later adds ``seq_reserved``, the high-water mark of the token's sequence
numbers (see :mod:`lifeveil.device.sequence`). ``lifeveil device run --token-file`` reads
that file, or a plain file holding only a device token.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lifeveil.device.sequence import MARK_KEY
from lifeveil.errors import InputError
from lifeveil.io import atomic_path, private_dir
from lifeveil.transport.protocol import UPLINK_PATH

if TYPE_CHECKING:
    from lifeveil.transport.frame import WireSpec

IDENTITY_FORMAT = "lifeveil-device-identity"


@dataclass(frozen=True)
class DeviceIdentity:
    """Everything the agent needs to talk to its server."""

    device: str  # device name in the tenant ("" when only a token file was given)
    token: str = field(repr=False)  # per-device uplink/query token
    server: str | None = None  # https://HOST:PORT
    wire: str | None = None  # the server's WireSpec token, e.g. "1;64;fp16"
    cafile: str | None = None  # PEM to trust (the server's self-signed cert.pem)

    @property
    def uplink_url(self) -> str:
        """``wss://HOST:PORT/v1/uplink`` derived from :attr:`server`."""
        if not self.server:
            raise InputError("no server URL known for this device; pass --server https://HOST:PORT")
        return "wss://" + self.server.removeprefix("https://").rstrip("/") + UPLINK_PATH

    def wire_spec(self) -> WireSpec | None:
        """The saved wire format, if any."""
        from lifeveil.transport.frame import WireSpec

        return WireSpec.from_token(self.wire) if self.wire else None

    def replace_missing(self, server: str | None, cafile: str | None) -> DeviceIdentity:
        """Fill in the server URL and CA file from the command line where given."""
        return DeviceIdentity(
            self.device, self.token, server or self.server, self.wire, cafile or self.cafile
        )


def save_identity(identity: DeviceIdentity, path: str | Path) -> Path:
    """Write the identity as JSON readable only by its owner (0600, folder 0700), atomically.

    Re-saving the same token keeps its sequence high-water mark; a new token starts at 0.
    """
    target = Path(path)
    data: dict[str, object] = {"format": IDENTITY_FORMAT, **asdict(identity)}
    mark = _saved_mark(target, identity.token)
    if mark is not None:
        data[MARK_KEY] = mark
    try:
        private_dir(target.parent)
        with atomic_path(target, private=True) as tmp:  # it holds the device token
            tmp.write_text(json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        raise InputError(
            f"{target}: cannot save the device credentials ({exc.strerror}); use a folder you own"
        ) from None
    return target


def _saved_mark(path: Path, token: str) -> object | None:
    """The sequence mark already saved in ``path`` for the same token, if any."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(saved, dict) and saved.get("token") == token:
        return saved.get(MARK_KEY)
    return None


def load_identity(path: str | Path) -> DeviceIdentity:
    """Read ``device.json`` from enrolment, or a file that holds just a device token."""
    p = Path(path)
    try:
        text = p.read_text().strip()
    except FileNotFoundError:
        raise InputError(
            f"{p}: no device token file; enroll first with `lifeveil device enroll` or pass "
            "--token-file"
        ) from None
    if not text:
        raise InputError(f"{p}: the token file is empty")
    if not text.startswith("{"):
        return DeviceIdentity(device="", token=text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: not valid JSON ({exc})") from None
    if data.pop("format", None) != IDENTITY_FORMAT or "token" not in data:
        raise InputError(
            f"{p}: not a LifeVeil device identity (written by `lifeveil device enroll`)"
        )
    known = {"device", "token", "server", "wire", "cafile"}
    return DeviceIdentity(**{k: v for k, v in data.items() if k in known})


def enroll(
    server: str, user_token: str, name: str, *, cafile: str | Path | None = None
) -> DeviceIdentity:
    """Register device ``name`` with the server as the user of ``user_token``.

    Returns the identity to save; its token is not recoverable from the server later.
    """
    from lifeveil.transport.client import QueryClient

    with QueryClient(server, user_token, cafile=cafile) as client:
        wire = client.info()["wire"]
        creds = client.register_device(name)
    return DeviceIdentity(
        device=creds.device,
        token=creds.token,
        server=server.rstrip("/"),
        wire=wire,
        cafile=str(Path(cafile).resolve()) if cafile else None,
    )
