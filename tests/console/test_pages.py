"""Each page renders real data: agent segments in a vault, an outbox, a ledger, an enrolment."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from lifeveil.console import ConsoleConfig, create_app
from lifeveil.console.vault_access import VaultAccess
from lifeveil.vault import Vault

from .support import PASSPHRASE


def segment_ids(html: str) -> list[str]:
    return re.findall(r'data-segment="([0-9a-f]{32})"', html)


def test_vault_asks_for_the_passphrase_first(client: TestClient):
    response = client.get("/vault", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/vault"
    assert 'type="password"' in client.get("/login").text


def test_vault_lists_segments_on_a_timeline(unlocked: TestClient, vault_dir: Path):
    html = unlocked.get("/vault").text
    with Vault.open(vault_dir, passphrase=PASSPHRASE) as vault:
        ids = {info.segment_id for info in vault.list()}
    assert set(segment_ids(html)) == ids and len(ids) == 4
    assert html.count('class="tl-seg"') == 1  # back-to-back segments: one bar
    assert "carphone_pristine.mp4" in html and "4 segments" in html


def test_play_streams_the_decrypted_segment_with_ranges(unlocked: TestClient, vault_dir: Path):
    with Vault.open(vault_dir, passphrase=PASSPHRASE) as vault:
        info = vault.list()[0]
        plain = b"".join(vault.open_segment(info.segment_id))
    page = unlocked.get(f"/vault/segment/{info.segment_id}").text
    assert f'src="/vault/segment/{info.segment_id}/media"' in page
    whole = unlocked.get(f"/vault/segment/{info.segment_id}/media")
    assert whole.status_code == 200 and whole.content == plain
    assert whole.headers["content-type"] == "video/mp4"
    part = unlocked.get(f"/vault/segment/{info.segment_id}/media", headers={"range": "bytes=4-11"})
    assert part.status_code == 206 and part.content == plain[4:12] == b"ftypisom"
    assert part.headers["content-range"] == f"bytes 4-11/{len(plain)}"
    tail = unlocked.get(f"/vault/segment/{info.segment_id}/media", headers={"range": "bytes=-5"})
    assert tail.content == plain[-5:]
    beyond = f"bytes={len(plain)}-"
    out = unlocked.get(f"/vault/segment/{info.segment_id}/media", headers={"range": beyond})
    assert out.status_code == 416
    assert not list(vault_dir.rglob("*.mp4"))  # nothing decrypted onto the disk


def test_export_downloads_the_plaintext(unlocked: TestClient, vault_dir: Path):
    with Vault.open(vault_dir, passphrase=PASSPHRASE) as vault:
        info = vault.list()[1]
        plain = b"".join(vault.open_segment(info.segment_id))
    response = unlocked.get(f"/vault/segment/{info.segment_id[:8]}/export")
    assert response.content == plain
    disposition = response.headers["content-disposition"]
    assert disposition == f'attachment; filename="carphone_pristine_{info.segment_id[:8]}.mp4"'


def test_delete_needs_the_confirmation_step(unlocked: TestClient, app, vault_dir: Path):
    csrf = app.state.security.csrf_token
    target = segment_ids(unlocked.get("/vault").text)[0]
    confirm_page = unlocked.get(f"/vault/segment/{target}/delete").text
    assert "cannot be recovered" in confirm_page and 'name="confirm" value="yes"' in confirm_page
    refused = unlocked.post(f"/vault/segment/{target}/delete", data={"csrf": csrf})
    assert refused.status_code == 400 and target in segment_ids(unlocked.get("/vault").text)
    done = unlocked.post(f"/vault/segment/{target}/delete", data={"csrf": csrf, "confirm": "yes"})
    assert done.status_code == 200 and "was deleted" in done.text
    assert target not in segment_ids(done.text)
    with Vault.open(vault_dir, passphrase=PASSPHRASE) as vault:
        assert target not in {i.segment_id for i in vault.list()}
    assert unlocked.get(f"/vault/segment/{target}").status_code == 404


def test_retention_previews_then_deletes_on_confirmation(unlocked: TestClient, app):
    csrf = app.state.security.csrf_token
    keep_all = unlocked.get("/vault/retention?days=30").text
    assert "0 segments" in keep_all and "apply-retention" not in keep_all
    preview = unlocked.get("/vault/retention?days=0").text
    assert "4 segments" in preview and 'id="apply-retention"' in preview
    assert len(segment_ids(unlocked.get("/vault").text)) == 4  # a preview deletes nothing
    form = {"csrf": csrf, "days": "0", "confirm": "yes"}
    assert "Deleted 4 segments" in unlocked.post("/vault/retention", data=form).text
    assert segment_ids(unlocked.get("/vault").text) == []


def test_transparency_log_shows_every_record_and_its_state(client: TestClient):
    html = client.get("/log").text
    rows = re.findall(r'<tr data-seq="(\d+)">.*?<span class="state[^"]*">([^<]+)</span>', html)
    assert [(int(s), st) for s, st in rows] == [
        (5, "queued"),
        (4, "queued"),
        (3, "queued"),
        (2, "queued"),
        (1, "refused by egress guard"),
        (0, "acked"),
    ]
    assert '<b data-counter="put">6</b>' in html and '<b data-counter="refused">1</b>' in html
    assert "64 B" in html  # d=16 float32
    assert "384 B" in html  # the hour's total: 6 records
    assert re.search(r"<td>\d{4}-\d\d-\d\d</td><td class=\"num\">121</td>", html)  # cover


def test_live_feed_returns_new_records_and_current_states(client: TestClient):
    body = client.get("/api/log?after=3&first=0").json()
    assert [e["seq"] for e in body["entries"]] == [4, 5]
    assert body["states"] == {
        "0": "acked",
        "1": "refused by egress guard",
        "2": "queued",
        "3": "queued",
    }
    assert body["counters"]["pending"] == 4


def test_budget_page_shows_the_ledger(client: TestClient):
    html = client.get("/budget").text
    assert "abc123def456" in html and "fsq 16x5 levels (tiny)" in html and "fsq-code" in html
    assert "260 bit" in html  # 7 z x 37.2 bits over two days
    assert "4.0 kbit" in html  # the daily budget


def test_budget_page_without_a_ledger(tmp_path: Path, client: TestClient, state: Path):
    (state / "ledger.sqlite").unlink()
    assert "no ledger yet" in client.get("/budget").text


def test_budget_page_on_a_lifeveil_without_the_ledger_module(client: TestClient, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "lifeveil.device.ledger", None)  # import fails
    html = client.get("/budget").text
    assert 'id="no-ledger"' in html and "does not keep a privacy ledger" in html


def test_status_page(client: TestClient):
    html = client.get("/status").text
    assert "cam0" in html and "not running" in html  # this process holds no outbox open
    assert "unreachable" in html and "https://127.0.0.1:9" in html
    assert re.search(r'<b class="big">4</b> z waiting to send', html)
    assert "locked" in html


def test_status_without_any_device_state(tmp_path: Path):
    app = create_app(ConsoleConfig(state=tmp_path / "nothing"))
    c = TestClient(app, base_url="http://127.0.0.1")
    c.get(f"/?token={app.state.security.token}")
    html = c.get("/status").text
    assert "no outbox yet" in html and "not enrolled" in html and "started without --vault" in html
    assert "No outbox" in c.get("/log").text
    assert "without a vault" in c.get("/vault").text


def test_a_key_file_unlocks_at_start(tmp_path: Path):
    from lifeveil.vault import generate_key_file

    key = generate_key_file(tmp_path / "vault.key")
    Vault.init(tmp_path / "keyed", key_file=key).close()
    access = VaultAccess(tmp_path / "keyed", key)
    assert access.unlocked and access.segments() == []
    access.lock()
    assert not access.unlocked


def test_status_reaches_a_real_server(tmp_path: Path, client: TestClient, state: Path):
    from lifeveil.server.local import LocalServer

    from .support import write_identity

    with LocalServer(tmp_path / "srv", z_dim=16) as server:
        write_identity(state, server.base_url, cafile=server.cafile)
        html = client.get("/status").text
    assert 'class="pill ok">reachable' in html and server.base_url in html
    assert "d=16" in html  # the server's wire format, described


def test_a_record_page_shows_every_value_of_its_z(client: TestClient):
    html = client.get("/log/z/3").text
    values = re.findall(r'<td class="num">(-?\d+\.\d{4})</td>', html)
    assert values == ["3.0000"] * 16  # support.z(3): sixteen threes
    assert "queued" in html
    assert client.get("/log/z/999").status_code == 404


def test_the_log_pages_back_through_older_records(state: Path):
    app = create_app(ConsoleConfig(state=state, log_rows=4))
    c = TestClient(app, base_url="http://127.0.0.1")
    c.get(f"/?token={app.state.security.token}")
    first = c.get("/log").text
    assert re.findall(r'<tr data-seq="(\d+)">', first) == ["5", "4", "3", "2"]
    assert 'href="/log?before=2"' in first
    older = c.get("/log?before=2").text
    assert re.findall(r'<tr data-seq="(\d+)">', older) == ["1", "0"]
    assert "live.js" not in older  # an older page does not grow at the top


def test_a_large_segment_is_streamed_chunk_by_chunk(unlocked: TestClient, monkeypatch):
    from lifeveil.console import vault_pages

    monkeypatch.setattr(vault_pages, "MAX_IN_MEMORY", 100)  # every test segment is "large"
    target = segment_ids(unlocked.get("/vault").text)[0]
    small = unlocked.app.state.vault.plaintext(target).data
    played = unlocked.get(f"/vault/segment/{target}/media")
    assert played.content == small and played.headers["content-length"] == str(len(small))
    exported = unlocked.get(f"/vault/segment/{target}/export")
    assert exported.content == small and "attachment" in exported.headers["content-disposition"]


def test_names_from_the_vault_are_escaped(unlocked: TestClient, app):
    from lifeveil.vault import SegmentMetadata

    hostile = '<script>alert("x")</script>.mp4'
    app.state.vault.vault().ingest_stream([b"not video"], SegmentMetadata(source_name=hostile))
    html = unlocked.get("/vault").text
    assert hostile not in html and "&lt;script&gt;" in html
