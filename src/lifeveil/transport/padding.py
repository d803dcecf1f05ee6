"""Length bucketing for JSON queries and answers.

Frames have one fixed size. Queries and answers are JSON whose length depends on content (the
decimal digits of each float, the number of timeline segments), which TLS does not hide. Both
sides therefore pad every JSON body with trailing spaces -- valid JSON whitespace -- up to the
next power of two (at least 1 KiB), so a network observer learns only a coarse size bucket.
"""

from __future__ import annotations

MIN_BUCKET = 1024


def padded_length(n: int) -> int:
    """The bucket a body of ``n`` bytes is padded to: the next power of two, at least 1 KiB.

    >>> [padded_length(n) for n in (0, 1024, 1025, 5000)]
    [1024, 1024, 2048, 8192]
    """
    return max(MIN_BUCKET, 1 << max(0, n - 1).bit_length())


def pad_json(body: bytes) -> bytes:
    """``body`` followed by spaces up to :func:`padded_length`; still the same JSON value."""
    return body + b" " * (padded_length(len(body)) - len(body))
