"""One holder at a time, across processes, for each named background task.

A lead is the lock the projection runner holds (``flock`` on a file beside a SQLite log, a
session advisory lock on PostgreSQL), under the task's own name. The operating system or the
server releases it when its holder dies, so a standby takes over by itself.

A standby tries every second or so, for as long as the leader lives, so a try costs one call
on a handle opened once: one ``flock``, or one ``pg_try_advisory_lock`` on a connection kept
open. It never opens the projection's tables (on PostgreSQL that would connect and run their
DDL on every try).
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg

from ledger.errors import StoreUnavailableError
from ledger.store import EventStore
from ledger.store.postgres import LOST
from projections.backends.postgres import lead_key
from projections.backends.sqlite import lead_file, try_flock


class Lead:
    def __init__(self, store: EventStore, name: str) -> None:
        self._path: Path | None = getattr(store, "path", None)
        self._dsn: str | None = getattr(store, "dsn", None)
        assert (self._path is None) != (self._dsn is None), "a SQLite or a PostgreSQL store"
        self.name = name
        self._fd: int | None = None
        self._db: asyncpg.Connection | None = None
        self.held = False

    async def take(self) -> bool:
        """Hold the lead (True) unless another process holds it; never waits."""
        if self._db is not None and self._db.is_closed():
            self.held = False  # the server released the lock with the lost session
        if not self.held:
            self.held = self._flock() if self._path is not None else await self._advisory()
        return self.held

    def _flock(self) -> bool:
        assert self._path is not None
        if self._fd is None:
            self._fd = os.open(lead_file(self._path, self.name), os.O_RDWR | os.O_CREAT, 0o600)
        return try_flock(self._fd)

    async def _advisory(self) -> bool:
        assert self._dsn is not None
        try:
            if self._db is None or self._db.is_closed():
                self._db = await asyncpg.connect(self._dsn)
            return bool(await self._db.fetchval("SELECT pg_try_advisory_lock($1)",
                                                lead_key(self.name)))
        except LOST as exc:
            self._db = None  # the next try connects again
            raise StoreUnavailableError(f"cannot take the {self.name} lead: {exc}") from None

    async def release(self) -> None:
        """Give the lead up (for a standby to take), if held, and close the handle."""
        self.held = False
        if self._fd is not None:
            os.close(self._fd)  # releases the flock, if held
            self._fd = None
        if self._db is not None:
            db, self._db = self._db, None
            if not db.is_closed():
                await db.close()  # ends the session, and the advisory lock with it
