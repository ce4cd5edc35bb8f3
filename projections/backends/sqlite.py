"""Projections in a SQLite file of their own beside the log's, written by one runner at a time
(``flock``).

The log is ``ledger.db``; the projection named ``ledger`` is ``ledger.db-ledger.projection``.
It is a cache of the log: its rows and checkpoint commit together, so it is always some
prefix of the log, and it can be deleted (it is rebuilt from position 0). Apart from the log,
its commits never hold the log's write lock, so an append never waits for a projection, and a
rebuild can commit in large spans. For the same reason it runs ``synchronous=NORMAL``: a power
cut may take its last commits back, checkpoint included, never corrupt it (WAL).
"""

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

from ledger.logs import get_logger
from ledger.store.sqlite import transaction
from projections import tables
from projections.backends.base import (
    ProjectionBackend,
    ProjectionConflictError,
    ProjectionUsageError,
    Snapshot,
    Stored,
    moved,
)

T = TypeVar("T")
log = get_logger("projections.sqlite")
_CHUNK = 500  # values per IN (...) list
_BUSY = "PRAGMA busy_timeout = 30000"
_PRAGMAS = (_BUSY, "PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL")
_LEGACY = ("projection_checkpoints", *tables.ALL_TABLES)
"""The tables earlier releases kept in the log's own file."""
_LOG_TABLE = ("CREATE TABLE IF NOT EXISTS projection_log (name TEXT PRIMARY KEY, "
              "position INTEGER NOT NULL, hash BLOB NOT NULL)")
"""Which log the checkpoint is a position of: the hash of that log's row there."""
_MARK = ("INSERT INTO projection_log VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
         "position = EXCLUDED.position, hash = EXCLUDED.hash")
_NAMED = (*tables.NAMED_TABLES, "projection_log")  # and SQLite's own log mark


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def try_flock(fd: int) -> bool:
    """Take the exclusive lock on ``fd``'s file unless another holder has it; never waits."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def lead_file(log: Path, name: str) -> Path:
    """The lock file of the lead ``name`` of the log at ``log``."""
    return Path(f"{log}-{name}.lead")


def projection_file(log: Path, name: str) -> Path:
    """The file of the projection ``name`` of the log at ``log``."""
    return Path(f"{log}-{name}.projection")


class SqliteProjections(ProjectionBackend):
    def __init__(self, path: Path, name: str) -> None:
        super().__init__(name)
        self.path = path
        self.file = projection_file(path, name)
        self._db: sqlite3.Connection | None = None
        self._joined: sqlite3.Connection | None = None  # the projection with the log attached
        self._lock_fd: int | None = None
        self._thread = anyio.CapacityLimiter(1)  # one connection: one thread at a time

    @property
    def db(self) -> sqlite3.Connection:
        """The projection's connection, made on first use: a lead alone needs the lock
        file, not the tables."""
        if self._lock_fd is None:
            raise ProjectionUsageError("the projection tables are not open")
        if self._db is None:
            self._db = self._connect()
            self._forget_another_log()
        return self._db

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(function, *args, limiter=self._thread)

    async def open(self) -> None:
        self._lock_fd = os.open(lead_file(self.path, self.name), os.O_RDWR | os.O_CREAT, 0o600)

    def _connect(self) -> sqlite3.Connection:
        new = not self.file.exists()
        db = sqlite3.connect(self.file, isolation_level=None, check_same_thread=False)
        for statement in (*_PRAGMAS, *tables.schema("sqlite"), _LOG_TABLE):
            db.execute(statement)
        if new:
            self._drop_legacy_tables()
        return db

    def _forget_another_log(self) -> None:
        """Empty the tables if they are a projection of another log: the log file replaced,
        restored from an older backup, or deleted and begun anew beside them. Continuing
        from their checkpoint would count events that log never had."""
        row = self.db.execute(
            "SELECT c.position, l.position, l.hash FROM projection_checkpoints c "
            "LEFT JOIN projection_log l ON l.name = c.name WHERE c.name = ?",
            (self.name,)).fetchone()  # one statement: the checkpoint and its hash agree
        if row is None or row[0] == 0:
            return
        position, marked, mark = row
        if marked == position and mark == self._log_hash(position):
            return
        log.warning("the projection is of another log: emptied, to rebuild from position 0",
                    projection=self.name, file=str(self.file), checkpoint=position)
        self._clear()

    def _log_hash(self, position: int) -> bytes | None:
        found = self._log_joined().execute("SELECT hash FROM log.events WHERE position = ?",
                                           (position,)).fetchone()
        return None if found is None else bytes(found[0])

    def _drop_legacy_tables(self) -> None:
        """Tables an older release kept in the log's file would show stale rows to anyone
        reading them there: they go once this projection has its own file."""
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute(_BUSY)
            with transaction(db):
                for table in _LEGACY:
                    db.execute(f"DROP TABLE IF EXISTS {table}")
        finally:
            db.close()

    def _log_joined(self) -> sqlite3.Connection:
        """A read-only connection that sees the projection and the log (as ``log``), for the
        queries that join the two. Kept apart from ``db``: a write transaction there would
        take the write lock of every attached file, the log's included."""
        if self._joined is None:
            self._joined = sqlite3.connect(self.file, isolation_level=None,
                                           check_same_thread=False)
            self._joined.execute(_BUSY)
            self._joined.execute("ATTACH DATABASE ? AS log", (str(self.path),))
            self._joined.execute("PRAGMA query_only = ON")
        return self._joined

    async def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lead, if held
            self._lock_fd = None
        await self._run(self._close_connections)

    async def try_lead(self) -> bool:
        assert self._lock_fd is not None
        return try_flock(self._lock_fd)

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
        mark = self._log_hash(position)
        with transaction(self.db):
            found = self._checkpoint()
            if found != expected:
                raise moved(expected, found)
            if mark is None:
                raise ProjectionConflictError(f"the log has no position {position}: a "
                                              "projection cannot be ahead of its log")
            for sql, rows in write.statements("sqlite"):
                self.db.executemany(sql, rows)
            self.db.execute(tables.insert_sql("sqlite", "projection_checkpoints", replace=True),
                            (self.name, position))
            self.db.execute(_MARK, (self.name, position, mark))

    async def clear(self) -> None:
        await self._run(self._clear)

    def _clear(self) -> None:
        with transaction(self.db):
            for table in tables.ALL_TABLES:
                self.db.execute(f"DELETE FROM {table}")
            self.db.execute("DELETE FROM projection_checkpoints WHERE name = ?", (self.name,))
            self.db.execute("DELETE FROM projection_log WHERE name = ?", (self.name,))

    rebuilds_online = True

    async def has_projection(self, name: str) -> bool:
        return projection_file(self.path, name).exists()

    async def adopt(self, rebuilt: ProjectionBackend, expected: int) -> None:
        assert isinstance(rebuilt, SqliteProjections) and rebuilt.path == self.path
        await rebuilt._run(rebuilt._close_connections)  # its last commit in its file
        await self._run(self._adopt, rebuilt, expected)

    def _adopt(self, rebuilt: SqliteProjections, expected: int) -> None:
        # Readers on other connections see the old rows or the new ones (WAL: each read
        # transaction sees one commit), never a mixture; appends to the log never wait.
        self.db.execute("ATTACH DATABASE ? AS rebuilt", (str(rebuilt.file),))
        try:
            with transaction(self.db):
                found = self._checkpoint()
                if found != expected:
                    raise moved(expected, found)
                for table in (*tables.ALL_TABLES, "projection_checkpoints", "projection_log"):
                    named = table in _NAMED
                    delete, insert = tables.copy_sql("sqlite", table, _columns(self.db, table),
                                                     "rebuilt", named=named, into="main")
                    self.db.execute(delete, (self.name,) if named else ())
                    self.db.execute(insert, (self.name, rebuilt.name) if named else ())
        finally:
            self.db.execute("DETACH DATABASE rebuilt")

    async def merge(self, parts: list[str], position: int, model: int) -> None:
        await self._run(self._merge, parts, position, model)
        await self.drop_parts(parts)

    def _merge(self, parts: list[str], position: int, model: int) -> None:
        files = [f for f in (projection_file(self.path, p) for p in parts) if f.exists()]
        mark = self._log_hash(position)
        if mark is None:
            raise ProjectionConflictError(f"the log has no position {position}")
        for n, file in enumerate(files):  # (outside a transaction: SQLite's rule)
            self.db.execute(f"ATTACH DATABASE ? AS part{n}", (str(file),))
        try:
            with transaction(self.db):
                found = self._checkpoint()
                if found != 0:
                    raise moved(0, found)
                for table in (t for t in tables.ALL_TABLES if t not in _NAMED):
                    columns = ", ".join(_columns(self.db, table))
                    for n in range(len(files)):
                        self.db.execute(f"INSERT INTO main.{table} ({columns}) SELECT "
                                        f"{columns} FROM part{n}.{table}")
                self.db.execute(tables.insert_sql("sqlite", "projection_checkpoints",
                                                  replace=True), (self.name, position))
                self.db.execute(tables.insert_sql("sqlite", "projection_models", replace=True),
                                (self.name, model))
                self.db.execute(_MARK, (self.name, position, mark))
        finally:
            for n in range(len(files)):
                self.db.execute(f"DETACH DATABASE part{n}")

    async def drop_parts(self, parts: list[str]) -> None:
        for part in parts:  # made and used only by the leader of this projection
            await SqliteProjections(self.path, part).discard()
            lead_file(self.path, part).unlink(missing_ok=True)

    async def discard(self) -> None:
        await self._run(self._discard)

    def _discard(self) -> None:
        self._close_connections()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.file}{suffix}").unlink(missing_ok=True)

    def _close_connections(self) -> None:
        for db in (self._db, self._joined):
            if db is not None:
                db.close()
        self._db = self._joined = None

    async def account_records(self, account_id: str, after: int, upto: int,
                              recorded_by: int) -> list[bytes]:
        return await self._run(self._account_records, account_id, after, upto, recorded_by)

    def _account_records(self, account_id: str, after: int, upto: int,
                         recorded_by: int) -> list[bytes]:
        return [row[0] for row in self._log_joined().execute(
            tables.account_records_sql("sqlite"), (account_id, after, upto, recorded_by))]

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
