"""The ledger's one clock. Everything that asks "what time is it" (the record time of an
append, a command's time, the default ``as_of`` of a question, the expiry sweep, the outbox's
backoff, the metrics' ages) asks the ``Clock`` the ledger was opened with, so a test, a
simulation or a replay can run the ledger in a time of its choosing."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio
import anyio.lowlevel

Clock = Callable[[], datetime]
"""Returns the current moment, timezone-aware. Must not go backwards by much: the store keeps
record times non-decreasing along the log even if it does."""


def utc_now() -> datetime:
    """The wall clock, the default ``Clock``."""
    return datetime.now(UTC)


class Timer(Protocol):
    """What waiting between retries needs: elapsed time and a way to let it pass. The
    processor client's retries use one, so a simulation can make their waits virtual."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealTimer:
    """Real waits: ``time.monotonic`` and ``anyio.sleep`` (the default ``Timer``)."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


REAL_TIMER = RealTimer()


class ManualClock:
    """A ``Clock`` that stands still until it is moved: for tests and simulations, where a
    hold's 30 days pass in no time.

        clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
        clock.advance(timedelta(days=31))

    It is also a ``Timer`` whose waits move it, and it has the sandbox's ``now()`` and
    ``advance()``: one virtual time for the ledger, its client's retries and the processor.
    """

    def __init__(self, start: datetime) -> None:
        if start.utcoffset() is None:
            raise ValueError("a clock's start needs a timezone")
        self._now = start

    def __call__(self) -> datetime:
        return self._now

    now = __call__

    # A ``Timer`` too: a wait moves the clock instead of taking time.
    def monotonic(self) -> float:
        return self._now.timestamp()

    async def sleep(self, seconds: float) -> None:
        self.advance(timedelta(seconds=max(0.0, seconds)))
        await anyio.lowlevel.checkpoint()

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
