"""Telling the server which privatizer versions this device's z come from (issue 14).

Every z carries the space tag of the version that made it
(:func:`~lifeveil.transport.record.space_tag`), and the server stores only z of versions
registered for the tenant; the rest it answers ``UNKNOWN_SPACE`` and does not store. So the
agent registers its version (``POST /v1/spaces``, idempotent, a device token may) each time
its uplink starts, and again, once per session, for a tag the server answered
``UNKNOWN_SPACE`` (the registration failed at start because the server was away, or the
outbox still holds z of an earlier version of this device). The outbox holds that tag's records
meanwhile and releases them once the version is registered: nothing is lost, nothing loops.

Registration is best effort: a server that is down is retried by the next ``UNKNOWN_SPACE``
or start, never by a loop here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from lifeveil.errors import LifeVeilError
from lifeveil.transport.protocol import UPLINK_PATH
from lifeveil.transport.record import space_tag

if TYPE_CHECKING:
    from lifeveil.transport.uplink_config import UplinkConfig

log = logging.getLogger(__name__)

#: The agent registers before its uplink starts: a server that does not answer delays capture
#: by at most this long (then its z wait, held, for the next chance).
REGISTER_TIMEOUT_S = 5.0
#: ``(version, z_dim) -> the server's space``: :meth:`QueryClient.register_space` or a fake.
Register = Callable[[str, int], dict[str, Any]]


def https_base(uplink_url: str) -> str:
    """The server's ``https://HOST:PORT`` from its uplink URL.

    >>> https_base("wss://127.0.0.1:8443/v1/uplink")
    'https://127.0.0.1:8443'
    """
    return "https://" + uplink_url.removeprefix("wss://").removesuffix(UPLINK_PATH).rstrip("/")


def server_register(uplink: UplinkConfig, timeout_s: float = REGISTER_TIMEOUT_S) -> Register:
    """:meth:`QueryClient.register_space` on the uplink's server, token and trust."""

    def register(version: str, z_dim: int) -> dict[str, Any]:
        from lifeveil.transport.client import QueryClient

        base = https_base(uplink.url)
        with QueryClient(base, uplink.token, cafile=uplink.cafile, timeout_s=timeout_s) as client:
            return client.register_space(version, z_dim)

    return register


class SpaceKeeper:
    """Registers privatizer versions with the server: at start, and after ``UNKNOWN_SPACE``.

    Args:
        register: how to register (see :data:`Register`).
        z_dim: the dimension of every z in the outbox.
        versions: every privatizer version this device has run (the ledger's), so a tag left
            in the outbox by an earlier version can be registered too.
    """

    def __init__(self, register: Register, z_dim: int, versions: Iterable[str]) -> None:
        self._register = register
        self._z_dim = z_dim
        self._versions = {space_tag(v): v for v in versions}
        self._tried: set[int] = set()  # tags re-registered after UNKNOWN_SPACE this session
        self._threads: list[threading.Thread] = []

    @property
    def busy(self) -> bool:
        """True while a re-registration runs in the background."""
        self._threads = [t for t in self._threads if t.is_alive()]
        return bool(self._threads)

    def start(self, version: str) -> bool:
        """A new uplink session: forget past attempts, register ``version``; True on success."""
        self._versions[space_tag(version)] = version
        self._tried.clear()
        return self.register(version)

    def register(self, version: str) -> bool:
        """Register ``version`` now; one INFO line on success, one WARNING on failure."""
        import httpx

        tag = space_tag(version)
        try:
            self._register(version, self._z_dim)
        except (LifeVeilError, httpx.HTTPError, OSError) as exc:
            log.warning(
                "could not register privatizer version %s (space tag %d) with the server: %s; "
                "its z wait in the outbox until it is registered (the next start, or the "
                "server's first UNKNOWN_SPACE answer, tries again)",
                version,
                tag,
                exc,
            )
            return False
        log.info("registered privatizer version %s with the server as space tag %d", version, tag)
        return True

    def reregister(self, tags: Iterable[int], release: Callable[[int], None]) -> None:
        """In the background, register the versions of ``tags`` (each once per session) and
        ``release`` each tag that got registered."""
        todo = [t for t in tags if t not in self._tried]
        for tag in set(tags) - set(todo):
            log.warning(
                "the server still answers UNKNOWN_SPACE for space tag %d after this device "
                "registered its version; its z stay in the outbox until the next start",
                tag,
            )
        if not todo:
            return
        self._tried.update(todo)
        thread = threading.Thread(
            target=self._reregister, args=(todo, release), name="lifeveil-spaces", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _reregister(self, tags: list[int], release: Callable[[int], None]) -> None:
        for tag in tags:
            version = self._versions.get(tag)
            if version is None:
                log.error(
                    "the outbox holds z of space tag %d, a privatizer version this device's "
                    "ledger does not know, so it cannot register it; they stay in the outbox",
                    tag,
                )
            elif self.register(version):
                release(tag)
