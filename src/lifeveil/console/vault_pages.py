"""Vault pages: sign in, segments on a timeline, play, export, delete, retention.

Every destructive action is two steps: a GET page that says what will be destroyed, and a
POST from its form (CSRF token and an explicit ``confirm`` field) that does it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from lifeveil.console.media import media_response
from lifeveil.console.rendering import check_csrf, render
from lifeveil.console.timeline import day_rows
from lifeveil.console.vault_access import (
    MAX_IN_MEMORY,
    VaultAccess,
    download_name,
    media_type,
)
from lifeveil.errors import VaultError, VaultKeyError
from lifeveil.vault import SegmentInfo

router = APIRouter()
DEFAULT_RETENTION_DAYS = 30.0
SAFE_NEXT = ("/vault", "/status", "/log", "/budget")


def _vault(request: Request) -> VaultAccess:
    return request.app.state.vault


@router.get("/login")
def login_form(request: Request, next: str = "/vault") -> Response:  # noqa: A002
    """The passphrase form (the passphrase is used to open the vault, then dropped)."""
    if not _vault(request).configured:
        return render(request, "no_vault.html")
    return render(request, "login.html", next=_safe_next(next), error=None)


@router.post("/login")
def login(
    request: Request,
    passphrase: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/vault",  # noqa: A002
) -> Response:
    """Unlock the vault; a wrong passphrase shows the form again."""
    check_csrf(request, csrf)
    try:
        _vault(request).unlock(passphrase)
    except VaultKeyError as exc:
        return render(request, "login.html", 401, next=_safe_next(next), error=str(exc))
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/lock")
def lock(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    """Close the vault (its key leaves the console's memory as far as Python allows)."""
    check_csrf(request, csrf)
    _vault(request).lock()
    return RedirectResponse("/status", status_code=303)


@router.get("/vault")
def vault_list(request: Request, deleted: str | None = None) -> Response:
    """Every segment, newest first, with a day-by-day timeline."""
    access = _vault(request)
    if not access.configured:
        return render(request, "no_vault.html")
    segments = access.segments()
    return render(
        request,
        "vault.html",
        segments=segments,
        days=day_rows(segments),
        total_bytes=sum(s.size for s in segments),
        total_seconds=sum(s.duration_s or 0.0 for s in segments),
        warnings=access.warnings(),
        deleted=deleted,
    )


@router.get("/vault/segment/{segment_id}")
def segment_page(request: Request, segment_id: str) -> Response:
    """One segment: its metadata and a player."""
    info = _vault(request).vault().info(segment_id)
    return render(request, "segment.html", info=info)


@router.get("/vault/segment/{segment_id}/media")
def segment_media(request: Request, segment_id: str) -> Response:
    """The decrypted segment, from memory, for the page's <video> (range requests work)."""
    access = _vault(request)
    info = access.info(segment_id)
    if info.size > MAX_IN_MEMORY:
        return _streamed(access, info)
    plain = access.plaintext(info.segment_id)
    return media_response(plain.data, plain.media_type, request.headers.get("range"))


@router.get("/vault/segment/{segment_id}/export")
def segment_export(request: Request, segment_id: str) -> Response:
    """The decrypted segment as a download (the browser decides where it is saved)."""
    access = _vault(request)
    info = access.info(segment_id)
    if info.size > MAX_IN_MEMORY:
        return _streamed(access, info, download_name(info))
    plain = access.plaintext(info.segment_id)
    name = download_name(plain.info)
    return media_response(plain.data, plain.media_type, None, download_name=name)


def _streamed(access: VaultAccess, info: SegmentInfo, name: str | None = None) -> Response:
    """A large segment decrypted chunk by chunk straight into the response."""
    headers = {"Content-Length": str(info.size)}
    if name is not None:
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    body = access.stream(info.segment_id)
    return StreamingResponse(body, media_type=media_type(info), headers=headers)


@router.get("/vault/segment/{segment_id}/delete")
def delete_form(request: Request, segment_id: str) -> Response:
    """Step one of deleting: what will be destroyed, and a confirm button."""
    info = _vault(request).vault().info(segment_id)
    return render(request, "delete.html", info=info)


@router.post("/vault/segment/{segment_id}/delete")
def delete(
    request: Request,
    segment_id: str,
    csrf: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Step two: crypto-shred the segment (needs ``confirm=yes`` from the form)."""
    check_csrf(request, csrf)
    if confirm != "yes":
        raise VaultError("deleting needs the confirmation button; nothing was deleted")
    full_id = _vault(request).delete(segment_id)
    return RedirectResponse(f"/vault?deleted={full_id}", status_code=303)


@router.get("/vault/retention")
def retention_form(request: Request, days: float = DEFAULT_RETENTION_DAYS) -> Response:
    """What a retention of ``days`` days would delete now, and a form to apply it."""
    if days < 0:
        raise VaultError(f"retention must be a non-negative number of days, got {days}")
    access = _vault(request)
    segments = access.segments()
    expired = access.retention_preview(days)
    return render(
        request,
        "retention.html",
        days=days,
        expired=expired,
        kept=len(segments) - len(expired),
        oldest=min((s.created_at for s in segments), default=None),
        expired_bytes=sum(s.size for s in expired),
        applied=None,
    )


@router.post("/vault/retention")
def retention_apply(
    request: Request,
    days: Annotated[float, Form()],
    csrf: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    """Delete every segment older than ``days`` days (needs ``confirm=yes``)."""
    check_csrf(request, csrf)
    if confirm != "yes":
        raise VaultError("applying retention needs the confirmation button; nothing was deleted")
    expired = _vault(request).apply_retention(days)
    return render(
        request,
        "retention.html",
        days=days,
        expired=[],
        kept=len(_vault(request).segments()),
        oldest=None,
        expired_bytes=0,
        applied=expired,
    )


def _safe_next(target: str) -> str:
    """Only redirect to the console's own pages after signing in."""
    return target if target.startswith(SAFE_NEXT) and "//" not in target else "/vault"
