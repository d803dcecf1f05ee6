"""Serve a decrypted segment from memory, with HTTP range requests (the <video> element seeks).

Nothing here touches the disk: the bytes come from
:meth:`~lifeveil.console.vault_access.VaultAccess.plaintext` and go to the socket.
"""

from __future__ import annotations

import re

from starlette.responses import Response

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str | None, total: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive of a single-range ``Range`` header, None for the whole body.

    Raises ValueError for a range that cannot be satisfied.

    >>> byte_range("bytes=0-99", 1000), byte_range("bytes=-100", 1000), byte_range(None, 10)
    ((0, 99), (900, 999), None)
    """
    if not header:
        return None
    match = RANGE.match(header.strip())
    if match is None:
        return None  # multiple or odd ranges: answer with the whole body, as RFC 9110 allows
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        start, end = max(total - int(last), 0), total - 1
    else:
        start, end = int(first), min(int(last), total - 1) if last else total - 1
    if start >= total or start > end:
        raise ValueError(f"range {header} outside 0-{total - 1}")
    return start, end


def media_response(
    data: bytes, media_type: str, range_header: str | None, *, download_name: str | None = None
) -> Response:
    """200 with the whole body, 206 with the asked range, or 416 for a range beyond it."""
    total = len(data)
    headers = {"Accept-Ranges": "bytes"}
    if download_name is not None:
        headers["Content-Disposition"] = f'attachment; filename="{download_name}"'
    try:
        span = byte_range(range_header, total)
    except ValueError:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{total}"})
    if span is None:
        return Response(data, media_type=media_type, headers=headers)
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end}/{total}"
    return Response(data[start : end + 1], status_code=206, media_type=media_type, headers=headers)
