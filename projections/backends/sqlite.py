"""Projections in the SQLite file of the log, written by one runner at a time (``flock``)."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from ledger.store.sqlite import transaction
from projections import tables
from projections.backends.base import ProjectionBackend, ProjectionError, Snapshot, Stored, moved

T = TypeVar("T")
_CHUNK = 500  # values per IN (...) list


class SqliteProjections(ProjectionBackend):
    def __init__(self, path: Path, name: str) -> None:
        super().__init__(name)
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._thread = anyio.CapacityLimiter(1)  # one connection: one thread at a time

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise ProjectionError("the projection tables are not open")
        return self._db

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(function, *args, limiter=self._thread)

    async def open(self) -> None:
        self._db = await self._run(self._connect)
        self._lock_fd = os.open(f"{self.path}-{self.name}.lead", os.O_RDWR | os.O_CREAT, 0o600)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 30000")
        for statement in tables.schema("sqlite"):
            db.execute(statement)
        return db

    async def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lead, if held
            self._lock_fd = None
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None

    async def try_lead(self) -> bool:
        assert self._lock_fd is not None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    async def resign(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    async def checkpoint(self) -> int:
        return await self._run(self._checkpoint)

    def _checkpoint(self) -> int:
        row = self.db.execute("SELECT position FROM projection_checkpoints WHERE name = ?",
                              (self.name,)).fetchone()
        return int(row[0]) if row else 0

    async def load(self) -> Stored:
        return await self._run(self._load)

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: the rows read and the checkpoint agree."""
        self.db.execute("BEGIN")
        try:
            yield self.db
        finally:
            self.db.execute("COMMIT")

    def _load(self) -> Stored:
        with self._reading() as db:
            model = db.execute(tables.model_sql("sqlite"), (self.name,)).fetchone()
            (quarantined,) = db.execute("SELECT COUNT(*) FROM quarantined").fetchone()
            return Stored(self._checkpoint(), model[0] if model else None, quarantined,
                          db.execute("SELECT account_id, facts FROM "
                                     "projection_accounts").fetchall(),
                          db.execute(tables.open_facts_sql()).fetchall())

    async def commit(self, write: tables.BatchWrite, expected: int, position: int) -> None:
        await self._run(self._commit, write, expected, position)

    def _commit(self, write: tables.BatchWrite, expected: int, position: int) -> None:
        with transaction(self.db):
            found = self._checkpoint()
            if found != expected:
                raise moved(expected, found)
            for sql, rows in write.statements("sqlite"):
                self.db.executemany(sql, rows)
            self.db.execute(tables.insert_sql("sqlite", "projection_checkpoints", replace=True),
                            (self.name, position))

    async def clear(self) -> None:
        await self._run(self._clear)

    def _clear(self) -> None:
        with transaction(self.db):
            for table in tables.ALL_TABLES:
                self.db.execute(f"DELETE FROM {table}")
            self.db.execute("DELETE FROM projection_checkpoints WHERE name = ?", (self.name,))

    async def account_records(self, account_id: str, upto: int,
                              recorded_by: int) -> list[bytes]:
        return await self._run(self._account_records, account_id, upto, recorded_by)

    def _account_records(self, account_id: str, upto: int, recorded_by: int) -> list[bytes]:
        return [row[0] for row in self.db.execute(tables.account_records_sql("sqlite"),
                                                  (account_id, upto, recorded_by))]

    async def settled_facts(self, groups: list[str]) -> list[tuple[str, str, str, bytes]]:
        return await self._run(self._chunked, tables.settled_facts_sql, groups)

    async def holds_of_cards(self, card_ids: list[str]) -> list[tuple[str, str]]:
        return await self._run(self._chunked, tables.holds_of_cards_sql, card_ids)

    def _chunked(self, sql: Callable[[tables.Dialect, int], str], values: list[str],
                 ) -> list[Any]:
        found: list[Any] = []
        for start in range(0, len(values), _CHUNK):
            chunk = values[start:start + _CHUNK]
            found += self.db.execute(sql("sqlite", len(chunk)), chunk).fetchall()
        return found

    async def account_facts(self, account_id: str) -> list[tuple[str, str, str, bytes]]:
        return await self._run(lambda: self.db.execute(
            tables.account_facts_sql("sqlite"), (account_id,)).fetchall())

    async def card_ids(self, account_id: str) -> list[str]:
        return await self._run(lambda: [r[0] for r in self.db.execute(
            tables.card_ids_sql("sqlite"), (account_id,))])

    async def snapshot(self) -> Snapshot:
        return await self._run(self._snapshot)

    def _snapshot(self) -> Snapshot:
        with self._reading() as db:
            return Snapshot(self._checkpoint(), {
                table: set(db.execute(f"SELECT * FROM {table}"))
                for table in tables.VIEW_TABLES})
