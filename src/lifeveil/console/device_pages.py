"""The device's pages: the transparency log (and its live feed), the privacy budget, status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from lifeveil.console import device_state
from lifeveil.console.budget import read_budget
from lifeveil.console.outbox_log import (
    hourly_totals,
    last_queued_us,
    read_entries,
    read_record,
    read_states,
)
from lifeveil.console.rendering import render
from lifeveil.device.status import device_status

router = APIRouter()
LIVE_LIMIT = 500  # records one poll of the live view returns at most


def _state(request: Request) -> Path:
    return request.app.state.config.state


def _counters(state: Path) -> dict[str, int] | None:
    """The outbox's persisted counters and depth (read-only), None without an outbox."""
    return device_status(state)["outbox"]


@router.get("/log")
def log_page(request: Request, before: int | None = None) -> Response:
    """Every z the outbox holds or sent, newest first, with counters and bytes per hour."""
    state = _state(request)
    config = request.app.state.config
    entries = read_entries(
        device_state.outbox_path(state), limit=config.log_rows, before_seq=before
    )
    budget = read_budget(state)
    return render(
        request,
        "log.html",
        counters=_counters(state),
        entries=entries,
        hours=hourly_totals(device_state.outbox_path(state)),
        cover=budget.cover_by_day(),
        ledger_note=budget.note,
        older=entries[-1].seq if len(entries) == config.log_rows else None,
        paged=before is not None,
        poll_ms=int(config.poll_s * 1000),
    )


@router.get("/log/z/{seq}")
def record_page(request: Request, seq: int) -> Response:
    """One z: its log line and every value in it, exactly as the device holds it."""
    found = read_record(device_state.outbox_path(_state(request)), seq)
    if found is None:
        message = f"seq {seq} is not in the outbox (acked and deleted, or never queued)"
        return render(request, "error.html", 404, title="Not in the outbox", message=message)
    entry, values = found
    peak = max((abs(v) for v in values), default=0.0) or 1.0
    return render(request, "record.html", entry=entry, values=values, peak=peak)


@router.get("/api/log")
def log_feed(request: Request, after: int = -1, first: int | None = None) -> JSONResponse:
    """The live view's poll: records above seq ``after`` (oldest first), the counters, and
    the current state of the shown records from seq ``first`` to ``after``."""
    state = _state(request)
    path = device_state.outbox_path(state)
    entries = read_entries(path, limit=LIVE_LIMIT, after_seq=after)
    shown = {} if first is None else read_states(path, first, after)
    body: dict[str, Any] = {
        "counters": _counters(state),
        "entries": [e.to_dict() for e in reversed(entries)],
        "states": {str(seq): name for seq, name in shown.items()},
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/budget")
def budget_page(request: Request) -> Response:
    """What the device has disclosed: bits per day and per privatizer version."""
    return render(request, "budget.html", budget=read_budget(_state(request)))


@router.get("/status")
def status_page(request: Request, check: int = 1) -> Response:
    """Agent running, server reachable, outbox depth, vault summary.

    ``check=0`` skips asking the server (the page then says it did not ask).
    """
    state = _state(request)
    access = request.app.state.vault
    enrolled = device_state.identity(state)
    server = device_state.server_state(state) if check else None
    vault_summary = None
    if access.unlocked:
        segments = access.segments()
        vault_summary = {
            "segments": len(segments),
            "seconds": sum(s.duration_s or 0.0 for s in segments),
            "bytes": sum(s.size for s in segments),
        }
    last_us = last_queued_us(device_state.outbox_path(state))
    return render(
        request,
        "status.html",
        state=state,
        device=enrolled.device if enrolled else None,
        agent=device_state.agent_state(state),
        server=server,
        counters=_counters(state),
        last_queued=None if last_us is None else last_us / 1e6,
        vault_root=access.root,
        vault_summary=vault_summary,
        warnings=access.warnings(),
    )
