"""What a device holds: its identity, the outbox queue and counters, the vault's segments."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from lifeveil.device.identity import load_identity
from lifeveil.device.sequence import SequenceMark
from lifeveil.errors import InputError

IDENTITY_FILE = "device.json"
OUTBOX_FILE = "outbox.sqlite"
SEQUENCE_FILE = "sequence.json"  # the sequence mark when there is no device.json


def device_status(
    state: str | Path, vault: str | Path | None = None, **secret: Any
) -> dict[str, Any]:
    """A JSON-ready summary of the device state folder and (optionally) its vault.

    ``secret`` is ``passphrase=`` or ``key_file=`` for the vault; without it only the number
    of encrypted segment files is reported, since their metadata is encrypted too.
    """
    state = Path(state)
    return {
        "state": str(state),
        "device": _device_name(state / IDENTITY_FILE),
        "seq_reserved": _seq_reserved(state),
        "outbox": _outbox_summary(state / OUTBOX_FILE),
        "vault": None if vault is None else _vault_summary(Path(vault), secret),
    }


def _device_name(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        return load_identity(path).device or None
    except InputError:
        return None


def _seq_reserved(state: Path) -> int | None:
    """The sequence high-water mark kept beside the token, if any."""
    marks = []
    for name in (IDENTITY_FILE, SEQUENCE_FILE):
        try:
            marks.append(SequenceMark(state / name).load())
        except InputError:
            continue
    return max(marks, default=0) or None


def _outbox_summary(path: Path) -> dict[str, int] | None:
    if not path.is_file():
        return None
    from lifeveil.device.outbox import CONFLICTED  # numpy and the wire format: only when needed

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # never blocks or changes the agent
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        pending = db.execute("SELECT COUNT(*) FROM records WHERE status IS NULL").fetchone()[0]
        conflicted = db.execute(
            "SELECT COUNT(*) FROM records WHERE status = ?", (CONFLICTED,)
        ).fetchone()[0]
    except sqlite3.OperationalError:  # the agent is creating it right now
        return None
    finally:
        db.close()
    summary = {k: int(meta.get(k, 0)) for k in ("put", "stored", "duplicates", "conflicts")}
    summary.update(
        pending=int(pending),
        conflicted=int(conflicted),
        refused=int(meta.get("refused", 0)),
        unknown_space=int(meta.get("unknown_space", 0)),
        next_seq=int(meta.get("next_seq", 0)),
        z_dim=int(meta.get("z_dim", 0)),
    )
    return summary


def _vault_summary(root: Path, secret: dict[str, Any]) -> dict[str, Any]:
    if not secret:
        files = list((root / "segments").glob("*")) if (root / "segments").is_dir() else []
        return {"segments": len(files)}
    from lifeveil.vault import Vault

    with Vault.open(root, **secret) as vault:
        infos = vault.list()
    from lifeveil.device.segmenter import SEGMENT_KIND

    recorded = [i for i in infos if i.extra.get("kind") == SEGMENT_KIND]
    return {
        "segments": len(infos),
        "agent_segments": len(recorded),
        "seconds": sum(i.duration_s or 0.0 for i in infos),
        "bytes": sum(i.size for i in infos),
    }


def status_lines(status: dict) -> list[str]:
    """:func:`device_status` as the lines ``lifeveil device status`` prints."""
    lines: list[str] = []
    ob = status["outbox"]
    lines.append(f"device: {status['device'] or '(not enrolled)'}  state: {status['state']}")
    if ob is None:
        lines.append("outbox: none yet (the agent has not run)")
    else:
        lines.append(
            f"outbox: {ob['pending']} pending; {ob['put']} queued in total, {ob['stored']} "
            f"stored, {ob['duplicates']} duplicate acks, {ob['conflicts']} conflicts, "
            f"{ob['refused']} refused; next seq {ob['next_seq']}"
        )
        if ob["conflicted"]:
            lines.append(
                f"error: {ob['conflicted']} z kept after sequence conflicts, not on the server "
                f"- fix the cause, then run `lifeveil device requeue-conflicts --state "
                f"{status['state']}`"
            )
        if ob.get("unknown_space") and ob["pending"]:
            lines.append(
                f"note: the server answered UNKNOWN_SPACE {ob['unknown_space']} time(s): it did "
                "not know the privatizer version of those z; they stay queued until the agent "
                "registers it (it does when it starts)"
            )
    vault = status["vault"]
    if vault is not None:
        detail = (
            f", {vault['seconds']:.1f} s, {vault['bytes']} B" if "seconds" in vault else " (locked)"
        )
        lines.append(f"vault: {vault['segments']} segments{detail}")
    return lines
