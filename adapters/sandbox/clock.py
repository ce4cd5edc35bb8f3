"""The sandbox's clock: real time plus an offset the tests (and the demo) can advance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class BusinessClock(Protocol):
    """What the sandbox's world asks of a clock. ``SandboxClock`` runs on real time; a
    simulation passes its ``ledger.clock.ManualClock``, so processor and ledger share one
    virtual time."""

    def now(self) -> datetime: ...

    def advance(self, by: timedelta) -> datetime: ...


class SandboxClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._offset = timedelta(0) if start is None else start - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, by: timedelta) -> datetime:
        if by < timedelta(0):
            raise ValueError("the clock only moves forward")
        moved = self.now() + by  # OverflowError past the year 9999, and the clock unchanged
        self._offset += by
        return moved
