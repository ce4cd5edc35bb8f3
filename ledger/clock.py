"""The ledger's one clock. Everything that asks "what time is it" (the record time of an
append, a command's time, the default ``as_of`` of a question, the expiry sweep, the outbox's
backoff, the metrics' ages) asks the ``Clock`` the ledger was opened with, so a test, a
simulation or a replay can run the ledger in a time of its choosing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]
"""Returns the current moment, timezone-aware. Must not go backwards by much: the store keeps
record times non-decreasing along the log even if it does."""


def utc_now() -> datetime:
    """The wall clock, the default ``Clock``."""
    return datetime.now(UTC)


class ManualClock:
    """A ``Clock`` that stands still until it is moved: for tests and simulations, where a
    hold's 30 days pass in no time.

        clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
        clock.advance(timedelta(days=31))
    """

    def __init__(self, start: datetime) -> None:
        if start.utcoffset() is None:
            raise ValueError("a clock's start needs a timezone")
        self._now = start

    def __call__(self) -> datetime:
        return self._now

    def advance(self, by: timedelta) -> datetime:
        """Move forward by ``by`` (never back); return the new moment."""
        if by < timedelta(0):
            raise ValueError("the clock only moves forward")
        self._now += by
        return self._now

    def set(self, moment: datetime) -> datetime:
        """Move forward to ``moment`` (no-op if it is not later)."""
        self._now = max(self._now, moment)
        return self._now
