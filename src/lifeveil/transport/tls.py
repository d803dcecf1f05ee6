"""TLS for the device's connections to the server (the uplink and the HTTPS client)."""

from __future__ import annotations

import ssl
from pathlib import Path


def client_ssl_context(cafile: str | Path | None = None) -> ssl.SSLContext:
    """TLS >= 1.2 client context that verifies the server against ``cafile`` (or system CAs)."""
    ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx
