"""``lifeveil device ...``: enroll a device, run the agent, inspect its outbox and vault.

The device keeps its state in ``--state DIR`` (default ``$LIFEVEIL_DEVICE_DIR`` or
``.lifeveil/device``; made 0700, every file in it 0600): ``device.json`` (identity and token,
from ``enroll``, plus the high-water mark of the device's sequence numbers) and
``outbox.sqlite`` (z waiting for the server) and ``ledger.sqlite`` (the privacy ledger: the
bits of every released z, per day and privatizer version; ``lifeveil device ledger``). Deleting the outbox loses only the z still in
it: the agent continues above the mark kept in ``device.json`` (``sequence.json`` when the
token is a bare token file), so the server never sees a sequence number twice. If it does
anyway (``device.json`` restored from an old copy, or shared by two cameras), the server
answers CONFLICT: the agent logs an ERROR, keeps the record, exits non-zero, and ``lifeveil
device requeue-conflicts`` sends the kept records again under new numbers. Every z carries the
space tag of the privatizer version that made it; the agent registers that version with the
server when it starts. After a model change, ``lifeveil device reencode --since DATE`` makes
z of the new version from the raw clips still in the vault (the next ``run`` sends them).

Raw video goes only to the encrypted vault
(``--vault DIR``, created with ``lifeveil vault init``); its secret comes from
``--key-file``, ``--passphrase-file`` or ``$LIFEVEIL_VAULT_PASSPHRASE``.

Sources: a video file, a V4L2 camera (``/dev/video0``) or a network stream (``rtsp://...``),
all decoded with PyAV. Only files are covered by the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lifeveil.device.build import private_state, sequence_mark
from lifeveil.device.config import DeviceConfig
from lifeveil.device.identity import DeviceIdentity, enroll, load_identity, save_identity
from lifeveil.device.status import IDENTITY_FILE, OUTBOX_FILE
from lifeveil.errors import InputError, LifeVeilError, RuntimeFailure, VaultKeyError

if TYPE_CHECKING:
    from lifeveil.device.outbox import Outbox
    from lifeveil.privatizer import Privatizer

STATE_ENV = "LIFEVEIL_DEVICE_DIR"
USER_TOKEN_ENV = "LIFEVEIL_USER_TOKEN"
PASSPHRASE_ENV = "LIFEVEIL_VAULT_PASSPHRASE"
DEFAULT_STATE = os.environ.get(STATE_ENV, ".lifeveil/device")
REENCODE_INTERRUPTED = (
    "interrupted: every z queued so far stays queued and charged once; run the same command "
    "again to continue where it stopped"
)


class SequenceConflictError(LifeVeilError):
    """The server refused records because it holds others under the same sequence numbers."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``lifeveil device`` and its subcommands."""
    parser = subparsers.add_parser(
        "device",
        help="the on-device agent: record to the vault, privatize, queue and upload z",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="device_command", metavar="SUBCOMMAND", required=True)
    _add_enroll(sub)
    _add_run(sub)
    _add_status(sub)
    _add_ledger(sub)
    _add_requeue(sub)
    _add_reencode(sub)


def _state_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state",
        type=Path,
        default=Path(DEFAULT_STATE),
        help=f"device state folder (default: ${STATE_ENV} or {DEFAULT_STATE})",
    )


def _vault_options(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--vault", type=Path, required=required, help="encrypted vault folder")
    secret = p.add_mutually_exclusive_group()
    secret.add_argument("--passphrase-file", type=Path, help="file holding the vault passphrase")
    secret.add_argument("--key-file", type=Path, help="vault key file")


def _add_enroll(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "enroll",
        help="register this device with a server using a user token; saves its credentials",
    )
    p.add_argument("--server", required=True, help="https://HOST:PORT of the LifeVeil server")
    p.add_argument("--name", required=True, help="device name, unique within the tenant")
    p.add_argument(
        "--user-token-file",
        type=Path,
        help=f"file with a user token of the tenant (else ${USER_TOKEN_ENV})",
    )
    p.add_argument("--cafile", type=Path, help="PEM to trust, e.g. the server's cert.pem")
    _state_option(p)
    p.set_defaults(func=cmd_enroll)


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="record sources to the vault, privatize them and upload z",
        description="Decode each --source with PyAV, store raw H.264 segments in the vault, "
        "privatize sampled frames (or clips) into z, queue z durably in the outbox and send "
        "it at a constant rate over wss://, reconnecting with backoff.",
    )
    p.add_argument(
        "--source",
        action="append",
        required=True,
        metavar="FILE|/dev/videoN|rtsp://...",
        help="video source (repeatable; processed in order)",
    )
    _vault_options(p, required=True)
    _state_option(p)
    p.add_argument("--token-file", type=Path, help="device.json from enroll, or a bare token")
    p.add_argument("--server", help="https://HOST:PORT (default: from the token file)")
    p.add_argument("--cafile", help="PEM to trust (default: from the token file)")
    p.add_argument("--model", type=Path, help="privatizer checkpoint (default: shipped)")
    p.add_argument("--config", type=Path, help="TOML file of DeviceConfig fields")
    p.add_argument("--fps", type=float, help="frames per second privatized (default 2)")
    p.add_argument("--rate-hz", type=float, help="uplink frames per second (default 10)")
    p.add_argument("--segment-seconds", type=float, help="seconds per vault segment (default 10)")
    p.add_argument("--realtime", action="store_true", help="pace files at capture speed")
    p.add_argument(
        "--daily-budget-bits",
        type=float,
        help="privacy budget: bits of z released per UTC day, then cover frames only "
        "(default: none; see docs/GUARANTEES.md)",
    )
    p.add_argument("--offline", action="store_true", help="only queue z; do not connect")
    p.add_argument(
        "--until-drained",
        action="store_true",
        help="exit once the sources end and every z is acked (else keep the uplink running)",
    )
    p.add_argument("--drain-timeout", type=float, help="give up draining after SECONDS")
    p.add_argument(
        "--keep-acked", action="store_true", help="keep acked z in the outbox (audit/testing)"
    )
    p.add_argument(
        "--threads", type=int, default=2, help="CPU threads for the privatizer (default: 2)"
    )
    p.add_argument(
        "--runtime",
        choices=["onnx", "torch"],
        default="onnx",
        help="privatizer runtime (default onnx: ONNX Runtime, graph built once and cached)",
    )
    p.set_defaults(func=cmd_run)


def _add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="outbox depth and counters, vault segments",
        description="Exit code 0, or 1 when the outbox keeps z the server refused as sequence "
        "conflicts (see requeue-conflicts).",
    )
    _state_option(p)
    _vault_options(p, required=False)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_status)


def _add_ledger(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ledger",
        help="the privacy ledger: bits of z released per day and in total",
        description="Per-day and lifetime totals of the privacy ledger: z released, their bits "
        "(an upper bound on what they disclose, see docs/GUARANTEES.md), per privatizer "
        "version, and cover frames (not charged). Reads the ledger without touching a running "
        "agent.",
    )
    _state_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_ledger)


def _add_requeue(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "requeue-conflicts",
        help="queue z the server refused as sequence conflicts again, under new seqs",
        description="After a CONFLICT (the server holds a different record under a seq this "
        "device used: its sequence numbers were reused), move the device to a fresh range of "
        "sequence numbers and queue the kept records there; the next `device run` sends them. "
        "Fix the cause first: each camera needs its own enrolment. Run it while no agent runs.",
    )
    _state_option(p)
    p.add_argument("--token-file", type=Path, help="device.json the agent runs with, if elsewhere")
    p.set_defaults(func=cmd_requeue_conflicts)


def _add_reencode(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reencode",
        help="make z again, with the current privatizer, from raw clips still in the vault",
        description="Re-encode the vault clips captured from --since to --until with the current "
        "privatizer: the new z are charged to the privacy ledger (the daily budget applies) and "
        "queued in the outbox under the new version's space tag; `lifeveil device run` uploads "
        "them. Nothing raw leaves the device. Resumable: a rerun continues where a run stopped "
        "(Ctrl-C, a crash, the daily budget) and skips clips already done by this version. "
        "Exit code 1 when the daily budget stopped it before the end.",
    )
    when = "YYYY-MM-DD (a UTC day) or an ISO time (UTC unless it names a zone)"
    p.add_argument("--since", required=True, metavar="DATE", help=f"from: {when}")
    p.add_argument("--until", metavar="DATE", help=f"to (a day: included; default now): {when}")
    _vault_options(p, required=True)
    _state_option(p)
    p.add_argument("--token-file", type=Path, help="device.json the agent runs with, if elsewhere")
    p.add_argument("--model", type=Path, help="privatizer checkpoint (default: shipped)")
    p.add_argument("--config", type=Path, help="TOML file of DeviceConfig fields")
    p.add_argument("--fps", type=float, help="frames per second privatized (default 2)")
    p.add_argument("--daily-budget-bits", type=float, help="privacy budget, bits per UTC day")
    p.add_argument("--runtime", choices=["onnx", "torch"], default="onnx", help="default onnx")
    p.set_defaults(func=cmd_reencode)


# -- commands -----------------------------------------------------------------------------------
def cmd_enroll(args: argparse.Namespace) -> int:
    """``lifeveil device enroll``."""
    token = _read_secret(args.user_token_file, USER_TOKEN_ENV, "user token")
    identity = enroll(args.server, token, args.name, cafile=args.cafile)
    private_state(args.state)
    path = save_identity(identity, args.state / IDENTITY_FILE)
    print(f"enrolled device {identity.device!r} with {identity.server} (wire {identity.wire})")
    print(f"credentials saved to {path} (mode 0600; the server keeps only a hash of the token)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``lifeveil device run``."""
    _check_run_flags(args)
    from lifeveil.device.build import build_agent
    from lifeveil.device.ledger import today_line
    from lifeveil.device.source import parse_source
    from lifeveil.privatizer.loader import open_privatizer
    from lifeveil.vault import Vault

    if args.runtime == "torch":  # ONNX Runtime gets the thread count directly, and no torch
        import torch

        torch.set_num_threads(max(1, args.threads))
    config = _device_config(args)
    sources = [parse_source(s) for s in args.source]
    identity = None if args.offline else _identity(args)  # fail fast, before loading the model
    privatizer = open_privatizer(args.model, args.runtime, threads=max(1, args.threads))
    vault = Vault.open(args.vault, **_vault_secret(args))
    for line in vault.warnings():  # rollback, tampering, quarantined files: the owner must know
        print(f"lifeveil device: vault warning: {line}", file=sys.stderr, flush=True)
    agent = build_agent(
        config,
        privatizer=privatizer,
        vault=vault,
        state=args.state,
        identity=identity,
        token_file=args.token_file,
        keep_acked=args.keep_acked,
        progress=lambda line: print(line, flush=True),
    )
    outbox = agent.outbox
    try:
        print(_run_banner(privatizer, outbox, identity), flush=True)
        agent.run(sources, until_drained=args.until_drained, drain_timeout_s=args.drain_timeout)
        if not args.until_drained and agent.uplink is not None:
            print("sources done; uplink keeps running (Ctrl-C to stop)", flush=True)
            while not outbox.session_conflicts:
                agent.check_uplink()
                agent.count_cover()
                time.sleep(0.5)
    finally:
        agent.stop()
        stats, held = outbox.stats(), outbox.held_spaces()
        print(
            f"outbox: {stats.pending} pending, {stats.put} queued in total, {stats.stored} "
            f"stored, {stats.duplicates} duplicate acks, {stats.conflicted} kept as conflicts",
            flush=True,
        )
        print(today_line(agent.ledger.spent_today(), config.daily_budget_bits), flush=True)
        agent.ledger.close()
        outbox.close()
        vault.close()
    _raise_on_conflicts(outbox.session_conflicts, args)
    if args.until_drained and stats.pending:
        raise RuntimeFailure(_undrained(args, stats.pending, held))
    return 0


def _undrained(args: argparse.Namespace, pending: int, held: set[int]) -> str:
    """Why ``run --until-drained`` ends with z still queued, and what to do."""
    where = f"{pending} z still queued in {args.state / OUTBOX_FILE} (nothing is lost)"
    if held:
        tags = ", ".join(str(t) for t in sorted(held))
        return (
            f"{where}: the server does not know the privatizer version of space tag(s) {tags} "
            "and registering it failed (see the log) - check the server, then run again"
        )
    return (
        f"drain timed out after {args.drain_timeout:g} s with {where} - check that the server "
        "is up, then run again to send them, or raise --drain-timeout"
    )


def _check_run_flags(args: argparse.Namespace) -> None:
    """Refuse flag combinations that cannot mean what the user wants."""
    if args.offline and args.until_drained:
        raise InputError(
            "--offline never connects, so --until-drained would wait forever - pick one"
        )
    if args.drain_timeout is not None and not args.until_drained:
        raise InputError("--drain-timeout applies to --until-drained only - add --until-drained")


def cmd_requeue_conflicts(args: argparse.Namespace) -> int:
    """``lifeveil device requeue-conflicts``."""
    from lifeveil.device.outbox import Outbox
    from lifeveil.device.status import device_status

    summary = device_status(args.state)["outbox"]
    if summary is None:
        raise InputError(f"{args.state / OUTBOX_FILE}: no outbox here; check --state")
    private_state(args.state)
    with Outbox(
        args.state / OUTBOX_FILE,
        summary["z_dim"],
        seq_mark=sequence_mark(args.state, args.token_file),
    ) as outbox:
        seqs = outbox.requeue_conflicts()
    if not seqs:
        print("no conflicted records in the outbox; nothing to requeue")
    else:
        print(
            f"requeued {len(seqs)} conflicted z as seqs {seqs[0]}..{seqs[-1]}; "
            "`lifeveil device run` sends them"
        )
    return 0


def cmd_reencode(args: argparse.Namespace) -> int:
    """``lifeveil device reencode``."""
    from lifeveil.device.reencode import clips_in_window, parse_window, reencode
    from lifeveil.privatizer.loader import open_privatizer
    from lifeveil.vault import Vault

    window = parse_window(args.since, args.until, time.time())
    config = DeviceConfig.load(args.config) if args.config else DeviceConfig()
    config = config.replace(fps=args.fps, daily_budget_bits=args.daily_budget_bits)
    with Vault.open(args.vault, **_vault_secret(args)) as vault:
        clips = clips_in_window(vault, window)  # refuse an empty window before loading a model
        privatizer = open_privatizer(args.model, args.runtime)
        try:
            report = reencode(
                config,
                privatizer=privatizer,
                vault=vault,
                clips=clips,
                state=args.state,
                token_file=args.token_file,
                progress=lambda line: print(line, flush=True),
            )
        except KeyboardInterrupt:
            print(f"lifeveil device reencode: {REENCODE_INTERRUPTED}", file=sys.stderr)
            return 130
    return 1 if report.budget_stop else 0


def cmd_ledger(args: argparse.Namespace) -> int:
    """``lifeveil device ledger``."""
    from lifeveil.device.ledger import LEDGER_FILE, read_summary, summary_lines

    summary = read_summary(args.state / LEDGER_FILE)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    if summary is None:
        print(f"ledger: none yet in {args.state} (the agent has released no z)")
        return 0
    for line in summary_lines(summary):
        print(line)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """``lifeveil device status``."""
    from lifeveil.device.status import device_status, status_lines

    status = device_status(args.state, args.vault, **(_vault_secret(args, required=False)))
    failed = int(bool(status["outbox"] and status["outbox"]["conflicted"]))
    if args.json:
        print(json.dumps(status, indent=2))
        return failed
    for line in status_lines(status):
        print(line)
    return failed


# -- helpers ------------------------------------------------------------------------------------
def _device_config(args: argparse.Namespace) -> DeviceConfig:
    base = DeviceConfig.load(args.config) if args.config else DeviceConfig()
    return base.replace(
        fps=args.fps,
        rate_hz=args.rate_hz,
        segment_s=args.segment_seconds,
        realtime=True if args.realtime else None,
        daily_budget_bits=args.daily_budget_bits,
    )


def _raise_on_conflicts(seqs: list[int], args: argparse.Namespace) -> None:
    if not seqs:
        return
    shown = ", ".join(str(s) for s in seqs[:5]) + (", ..." if len(seqs) > 5 else "")
    raise SequenceConflictError(
        f"the server refused {len(seqs)} z of this run as sequence conflicts (seq {shown}); "
        f"they are kept in {args.state / OUTBOX_FILE} - give each camera its own enrolment, "
        f"then run `lifeveil device requeue-conflicts --state {args.state}` and run again"
    )


def _identity(args: argparse.Namespace) -> DeviceIdentity:
    path = args.token_file or args.state / IDENTITY_FILE
    return load_identity(path).replace_missing(args.server, args.cafile)


def _run_banner(privatizer: Privatizer, outbox: Outbox, identity: DeviceIdentity | None) -> str:
    mode = "clips" if privatizer.cfg.clip_frames > 1 else "frames"
    target = "offline (queue only)" if identity is None else identity.uplink_url
    return (
        f"device {identity.device if identity else '-'}: privatizer d={privatizer.z_dim} on "
        f"{mode}, outbox {outbox.path} ({outbox.pending()} pending), uplink {target}"
    )


def _read_secret(path: Path | None, env: str, what: str) -> str:
    if path is not None:
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise InputError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    else:
        text = os.environ.get(env, "").strip()
    if not text:
        raise InputError(f"no {what}: pass a file or set ${env}")
    return text


def _vault_secret(args: argparse.Namespace, required: bool = True) -> dict[str, object]:
    if args.key_file:
        return {"key_file": args.key_file}
    if args.passphrase_file:
        try:
            return {"passphrase": args.passphrase_file.read_text().removesuffix("\n")}
        except OSError as exc:
            raise VaultKeyError(
                f"{args.passphrase_file}: cannot read the passphrase file ({exc.strerror})"
            ) from None
    if os.environ.get(PASSPHRASE_ENV):
        return {"passphrase": os.environ[PASSPHRASE_ENV]}
    if required:
        raise VaultKeyError(
            f"the vault needs its secret: pass --key-file or --passphrase-file, or set "
            f"${PASSPHRASE_ENV}"
        )
    return {}
