"""`lifeveil console`: listens on 127.0.0.1 only, prints a one-time URL, one-line errors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from lifeveil.cli.main import main
from lifeveil.console.serve import HOST, bind
from lifeveil.errors import InputError

URL = re.compile(r"http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]{40,})")


def test_bind_is_loopback_and_a_taken_port_is_one_line():
    sock = bind(0)
    try:
        host, port = sock.getsockname()
        assert host == HOST == "127.0.0.1" and port > 0
        with pytest.raises(InputError, match=f"port {port} on 127.0.0.1 is in use"):
            bind(port)
    finally:
        sock.close()
    with pytest.raises(InputError, match="not a TCP port"):
        bind(70000)


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_the_command_serves_on_loopback_with_a_one_time_link(state: Path, vault_dir: Path):
    env = {**os.environ, "LIFEVEIL_VAULT_PASSPHRASE": ""}
    command = [sys.executable, "-m", "lifeveil.cli.main", "console", "--state", str(state)]
    proc = subprocess.Popen(
        [*command, "--vault", str(vault_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        match = URL.search("".join(lines))
        assert match, lines
        port, token = int(match.group(1)), match.group(2)
        if os.path.exists("/proc/net/tcp"):
            assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as browser:
            assert browser.get("/status").status_code == 403
            signed_in = browser.get(f"/?token={token}", follow_redirects=True)
            assert signed_in.status_code == 200 and "cam0" in signed_in.text
            assert browser.get("/log").status_code == 200
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as second:
            assert second.get(f"/?token={token}").status_code == 403  # spent
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        code = proc.wait(timeout=10)
    assert code in (0, 130) and "Traceback" not in proc.stderr.read()  # 130: Ctrl-C, as usual


def test_console_help_imports_no_web_stack():
    code = (
        "import sys, contextlib, io\n"
        "from lifeveil.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['console', '--help'])\n"
        "print([m for m in ('fastapi', 'uvicorn', 'jinja2', 'torch') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_mistakes_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("LIFEVEIL_VAULT", raising=False)
    assert main(["console", "--vault", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such vault folder" in err
    assert main(["console", "--key-file", str(tmp_path / "k")]) == 2
    assert "--key-file needs --vault" in capsys.readouterr().err
    args = ["console", "--vault", str(tmp_path), "--passphrase-file", str(tmp_path / "none")]
    assert main(args) == 2
    assert "cannot read the passphrase file" in capsys.readouterr().err
