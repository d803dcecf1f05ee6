"""Console fixtures: a real vault of agent-recorded segments, an outbox, a ledger, a client.

Browser tests (marker ``browser``) drive Debian's chromium through Playwright against a real
uvicorn server on 127.0.0.1; they skip when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lifeveil.console import ConsoleConfig, create_app
from lifeveil.console.security import ConsoleSecurity
from lifeveil.console.serve import bind

from .support import PASSPHRASE, fill_ledger, fill_outbox, record_clip, write_identity

CHROMIUM = Path("/usr/bin/chromium")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives a real chromium (/usr/bin/chromium) through Playwright"
    )


@pytest.fixture(scope="session")
def vault_template(tmp_path_factory: pytest.TempPathFactory, talking_face_clip: Path) -> Path:
    """A vault recorded once per session: the 4 s carphone clip as four 1 s H.264 segments."""
    root = tmp_path_factory.mktemp("template") / "vault"
    record_clip(root, talking_face_clip)
    return root


@pytest.fixture
def vault_dir(tmp_path: Path, vault_template: Path) -> Path:
    """A private copy of the template vault for one test."""
    return Path(shutil.copytree(vault_template, tmp_path / "vault"))


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A device state folder: outbox (1 acked, 1 refused, 4 queued), enrolment, ledger."""
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    box = fill_outbox(folder)
    write_identity(folder)
    fill_ledger(folder)
    box.close()
    yield folder


@pytest.fixture
def config(state: Path, vault_dir: Path) -> ConsoleConfig:
    return ConsoleConfig(state=state, vault=vault_dir, poll_s=0.2)


@pytest.fixture
def app(config: ConsoleConfig):  # noqa: ANN201  (a FastAPI app)
    application = create_app(config)
    yield application
    application.state.vault.lock()


@pytest.fixture
def client(app) -> TestClient:  # noqa: ANN001
    """A client that has redeemed the one-time token (has the session cookie)."""
    c = TestClient(app, base_url="http://127.0.0.1")
    assert c.get(f"/?token={app.state.security.token}").status_code == 200
    return c


@pytest.fixture
def unlocked(client: TestClient, app) -> TestClient:  # noqa: ANN001
    """A signed-in client with the vault unlocked through the sign-in form."""
    form = {"passphrase": PASSPHRASE, "csrf": app.state.security.csrf_token, "next": "/vault"}
    assert client.post("/login", data=form).status_code == 200
    return client


class LiveConsole:
    """A real console server on 127.0.0.1 in a thread (uvicorn), for the browser."""

    def __init__(self, config: ConsoleConfig) -> None:
        import uvicorn

        self.security = ConsoleSecurity()
        self.app = create_app(config, security=self.security)
        self.sock = bind(0)
        self.port = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def login_url(self) -> str:
        return f"{self.base}/?token={self.security.token}"

    def __enter__(self) -> LiveConsole:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.app.state.vault.lock()
        self.sock.close()


@pytest.fixture
def live_console(config: ConsoleConfig) -> Iterator[LiveConsole]:
    with LiveConsole(config) as console:
        yield console


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201  (a Playwright Browser)
    """Headless Debian chromium driven by Playwright (skips without it).

    Module scope, not session: Playwright's sync API keeps an event loop running in this
    thread while it is open, and every later test that calls asyncio.run() would fail.
    """
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} missing: install Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser, live_console: LiveConsole, tmp_path: Path):  # noqa: ANN001, ANN201
    """A fresh browser context signed in through the one-time link, with downloads allowed."""
    context = browser.new_context(accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    tab.goto(live_console.login_url)
    yield tab
    context.close()
