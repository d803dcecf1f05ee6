"""Self-signed TLS certificate for local use, generated on first run.

The certificate (ECDSA P-256, valid for ``localhost``, ``127.0.0.1``, ``::1`` and any extra
names) is its own trust anchor: give ``cert.pem`` to devices as ``cafile``, or compare the
SHA-256 fingerprint that ``lifeveil server init`` prints. For a public deployment replace
both files with a certificate from a real CA; the server only reads the two paths.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lifeveil.errors import InputError
from lifeveil.io import atomic_path, private_dir, private_file

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
VALIDITY_DAYS = 825  # the longest validity common TLS clients accept for a leaf


def ensure_self_signed_cert(
    cert_path: Path, key_path: Path, extra_names: Sequence[str] = ()
) -> bool:
    """Create a self-signed certificate and key unless both files exist.

    Returns:
        True if new files were written, False if existing ones were kept.
    """
    private_dir(key_path.parent)
    if cert_path.is_file() and key_path.is_file():
        private_file(key_path)  # also when an older version left it readable
        return False
    if cert_path.exists() != key_path.exists():
        raise InputError(
            f"only one of {cert_path} and {key_path} exists; delete it to regenerate both"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _build_cert(key, [*DEFAULT_NAMES, *extra_names])
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with atomic_path(key_path, private=True) as tmp:
        tmp.write_bytes(key_pem)
    with atomic_path(cert_path) as tmp:
        tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return True


def _build_cert(key: ec.EllipticCurvePrivateKey, names: Sequence[str]) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "LifeVeil local server")])
    now = dt.datetime.now(dt.UTC)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in dict.fromkeys(names)]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def cert_fingerprint(cert_path: Path) -> str:
    """SHA-256 fingerprint of a PEM certificate, as colon-separated hex."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def harden_server_context(_config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn ``ssl_context_factory``: TLS 1.2+ only, no TLS-level compression."""
    ctx = default()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION
    return ctx
