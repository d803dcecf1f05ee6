"""The console in a real browser: Debian's chromium driven by Playwright (marker ``browser``).

Click through the vault list, play a segment (the <video> loads metadata with a duration),
export it, delete one with the confirmation step, and watch the transparency log update while
z are queued into the device's real outbox, as a running agent would.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lifeveil.device.outbox import Outbox
from lifeveil.device.status import OUTBOX_FILE
from lifeveil.transport.frame import AckStatus
from lifeveil.vault import Vault

from .support import PASSPHRASE, Z_DIM, z

pytestmark = pytest.mark.browser


def unlock(page, base: str) -> None:  # noqa: ANN001  (a Playwright Page)
    """Open the vault page, which asks for the passphrase, and sign in."""
    page.goto(f"{base}/vault")
    page.fill("#passphrase", PASSPHRASE)
    page.click("#unlock")
    page.wait_for_selector("#segments")


def test_list_play_export_delete(page, live_console, vault_dir: Path, tmp_path: Path):  # noqa: ANN001
    unlock(page, live_console.base)
    rows = page.locator("#segments tbody tr")
    assert rows.count() == 4
    first_id = rows.first.get_attribute("data-segment")

    rows.first.locator("text=Play").click()  # play: the decrypted MP4 from memory
    page.wait_for_function(
        "() => { const v = document.querySelector('#player');"
        " return v && v.readyState >= 1 && v.duration > 0; }"
    )
    assert page.eval_on_selector("#player", "v => v.duration") > 0.5
    assert page.eval_on_selector("#player", "v => v.videoWidth") == 176
    page.eval_on_selector("#player", "v => { v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.querySelector('#player').currentTime > 0.3")

    with page.expect_download() as download_info:  # export: a download of the same bytes
        page.click("#export")
    saved = tmp_path / "export.mp4"
    download_info.value.save_as(saved)
    with Vault.open(vault_dir, passphrase=PASSPHRASE) as vault:
        assert saved.read_bytes() == b"".join(vault.open_segment(first_id))

    page.click("#delete")  # delete: a confirmation page first
    assert "cannot be recovered" in page.inner_text("main")
    page.click("text=Cancel")
    assert page.locator("#player").count() == 1  # cancelled: back on the segment
    page.click("#delete")
    page.click("#confirm-delete")
    page.wait_for_selector("text=was deleted")
    assert page.locator("#segments tbody tr").count() == 3
    assert page.locator(f'tr[data-segment="{first_id}"]').count() == 0
    with Vault.open(vault_dir, passphrase=PASSPHRASE) as vault:
        assert first_id not in {i.segment_id for i in vault.list()}


def test_timeline_bar_opens_its_segment(page, live_console):  # noqa: ANN001
    unlock(page, live_console.base)
    page.locator("svg .tl-seg").first.click()
    page.wait_for_selector("#player")
    assert "/vault/segment/" in page.url


def test_transparency_log_updates_while_z_are_queued(page, state: Path, live_console):  # noqa: ANN001
    page.goto(f"{live_console.base}/log")
    assert page.locator("#log tbody tr").count() == 6
    page.wait_for_selector("#live-state.ok")
    with Outbox(state / OUTBOX_FILE, Z_DIM, keep_acked=True) as box:  # the "agent"
        now = time.time_ns() // 1000
        for i in range(3):
            box.put(z(10 + i), now + i)
            time.sleep(0.1)
        page.wait_for_selector('#log tr[data-seq="8"]')
        assert page.inner_text('[data-counter="put"]') == "9"
        assert page.inner_text('[data-counter="pending"]') == "7"
        box.on_ack(2, AckStatus.STORED)  # the server acks an older one: its row turns "acked"
        page.wait_for_function(
            "() => document.querySelector('#log tr[data-seq=\"2\"] .state').textContent === 'acked'"
        )
        assert page.inner_text('[data-counter="stored"]') == "2"
    seqs = page.eval_on_selector_all("#log tbody tr", "rows => rows.map(r => +r.dataset.seq)")
    assert seqs == [8, 7, 6, 5, 4, 3, 2, 1, 0]


def test_every_page_renders_without_console_errors(page, live_console):  # noqa: ANN001
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    unlock(page, live_console.base)
    for path, marker in (
        ("/status", "#status-outbox"),
        ("/log", "#log"),
        ("/log/z/3", "#z-values"),
        ("/budget", "#budget-days"),
        ("/vault", "#segments"),
        ("/vault/retention?days=0", "#apply-retention"),
    ):
        page.goto(live_console.base + path)
        page.wait_for_selector(marker)
    assert errors == []
