"""The moments the ledger takes from a caller (``as_of``, ``known_at``, a command's time):
timezone-aware, and within the calendar the ledger can compute in."""

from __future__ import annotations

from datetime import UTC, datetime

from ledger.errors import InvalidInputError

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
"""Far beyond any business time, and far enough from the calendar's end that a hold window
added to a moment never overflows."""


def check_moment(value: object, name: str) -> datetime:
    """``value`` if it is an aware datetime in [``EARLIEST``, ``LATEST``); else
    ``InvalidInputError`` naming the argument."""
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{name}: {value!r} is not a datetime")
    if value.utcoffset() is None:
        raise InvalidInputError(f"{name}: {value.isoformat()} has no timezone (give one, e.g. "
                                "tzinfo=UTC: the ledger never guesses local time)")
    if not EARLIEST <= value < LATEST:
        raise InvalidInputError(f"{name}: {value.isoformat()} is outside "
                                f"[{EARLIEST:%Y-%m-%d}, {LATEST:%Y-%m-%d})")
    return value
