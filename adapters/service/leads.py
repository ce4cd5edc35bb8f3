"""One holder at a time, across processes, for each named background task.

A lead is the lock the projection runner holds (``projections.backends``: ``flock`` beside a
SQLite file, a session advisory lock on PostgreSQL), under the task's own name. The operating
system or the server releases it when its holder dies, so a standby takes over by itself.
"""

from __future__ import annotations

from typing import Any

from ledger.store import EventStore


class Lead:
    def __init__(self, store: EventStore, name: str) -> None:
        from projections.backends import backend_for

        self._lock: Any = backend_for(store, name)
        self.held = False

    async def take(self) -> bool:
        """Hold the lead (True) unless another process holds it; never waits."""
        if not self.held:
            await self._lock.open()
            self.held = await self._lock.try_lead()
            if not self.held:
                await self._lock.close()
        return self.held

    async def release(self) -> None:
        """Give the lead up (for a standby to take), if held."""
        if self.held:
            self.held = False
            await self._lock.close()
