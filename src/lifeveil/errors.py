"""Typed errors. Each message says what was wrong, what was expected and what to do.

The CLI prints ``LifeVeilError`` subclasses as one line and exits non-zero, without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LifeVeilError(Exception):
    """Base class for errors caused by user input or environment, not by LifeVeil bugs."""

    exit_code = 2


class RuntimeFailure(LifeVeilError):  # noqa: N818  (reads as what happened)
    """The input was fine but the run could not finish: a timeout, a server that went away.

    Exits 1 (input errors exit 2), so scripts can tell "fix the command" from "retry later".
    """

    exit_code = 1


class InputError(LifeVeilError):
    """A file, folder or argument given by the user is missing, empty, corrupt or wrong."""


class MediaError(InputError):
    """An image or video could not be decoded."""


class CheckpointError(InputError):
    """A checkpoint is missing, corrupt, or incompatible with what was asked."""


class DatasetError(InputError):
    """A dataset folder does not have the expected layout."""


class ModelUnavailableError(LifeVeilError):
    """Pretrained weights are not available offline; the message says what to download."""


class UnknownNameError(InputError):
    """A name chosen from a registry does not exist; the message lists what does."""


class ShapeError(InputError):
    """Tensor or array dimensions do not match what a model or format expects."""


class VaultError(LifeVeilError):
    """The encrypted vault refused an operation (wrong key, tampering, missing segment)."""


class ProtocolError(LifeVeilError):
    """A wire frame or request violates the LifeVeil protocol."""


class VaultKeyError(VaultError):
    """The vault could not be unlocked: wrong passphrase or key file, or none given."""


class VaultIntegrityError(VaultError):
    """A vault file is tampered, truncated or corrupt; nothing was written or changed."""


class SegmentNotFoundError(VaultError):
    """No segment in the vault has the requested id (it may have been deleted)."""


class EgressRefusedError(ProtocolError):
    """The egress guard refused to serialise something that is not a valid z record."""


class AuthError(ProtocolError):
    """A request had no credentials, unknown credentials, or credentials of the wrong kind."""


class ReplayError(ProtocolError):
    """A request reused a nonce, or its timestamp is outside the server's replay window."""


class NameTakenError(InputError):
    """A tenant, user, device or head name is already in use where it must be unique."""
