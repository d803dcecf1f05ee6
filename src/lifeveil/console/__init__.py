"""``lifeveil console``: the device owner's local web console.

Four pages over what the device holds: the vault (segments on a timeline, play, export,
delete, retention), the transparency log (every z queued or sent, live), the privacy budget
(the ledger's bits per day and per privatizer version) and status (agent, server, outbox).
Served on 127.0.0.1 only, behind a one-time token, session cookie and CSRF tokens (see
:mod:`lifeveil.console.security` and ``docs/CONSOLE.md``).

>>> from lifeveil.console import ConsoleConfig, serve               # doctest: +SKIP
>>> serve(ConsoleConfig(state=Path(".lifeveil/device"), vault=Path("vault")))  # doctest: +SKIP
"""

from lifeveil.console.app import create_app
from lifeveil.console.config import ConsoleConfig
from lifeveil.console.serve import serve

__all__ = ["ConsoleConfig", "create_app", "serve"]
