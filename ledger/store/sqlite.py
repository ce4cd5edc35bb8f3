"""The embedded default backend: one SQLite file in WAL mode.

Two connections: the writer, used only by the store's writer task, and a read-only reader; WAL
lets them run at once. Each group commit is one ``BEGIN IMMEDIATE`` transaction, which takes
SQLite's write lock, so positions are assigned and committed in the same order, even when
several processes share the file: nothing is cached between transactions, the head and the
stream versions are read inside each one.

Durability: ``synchronous=FULL`` by default (the WAL is fsynced at every commit, so an
acknowledged append survives a power cut). ``sqlite:///path?synchronous=normal`` trades that
for speed: still safe against a crash of the process, not of the machine.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path

import aiosqlite

from ledger.errors import StoreError
from ledger.store import limits
from ledger.store.base import EventStore, LogFilter
from ledger.store.planner import (
    ChainHead,
    KnownEvent,
    PreparedAppend,
    Row,
    known_from_record,
    plan_group,
)
from ledger.store.records import AppendResult

SYNCHRONOUS_MODES = ("full", "extra", "normal")

# Each entry brings the schema from version i to i + 1. Never edit one that has shipped: add.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        position    INTEGER PRIMARY KEY,  -- explicit, so VACUUM can never renumber it
        stream      TEXT    NOT NULL,
        version     INTEGER NOT NULL,
        event_id    BLOB    NOT NULL,
        type        TEXT    NOT NULL,     -- wire name: Name or Name@N
        recorded_at INTEGER NOT NULL,     -- microseconds since the epoch
        record      BLOB    NOT NULL,     -- canonical msgpack of the StoredEvent
        hash        BLOB    NOT NULL      -- sha256(previous hash || record)
    );
    CREATE UNIQUE INDEX events_event_id ON events (event_id);
    CREATE UNIQUE INDEX events_stream_version ON events (stream, version);
    CREATE TABLE event_types (type TEXT PRIMARY KEY) WITHOUT ROWID;
    CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
    CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
    """,
)

_INSERT = "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_ROWS = "SELECT position, stream, version, event_id, type, recorded_at, record, hash FROM events"
_ID_CHUNK = 500


async def migrate(db: aiosqlite.Connection) -> None:
    """Apply the migrations this file has not seen yet, each in its own transaction."""
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    current = row[0] if row else 0
    if current > len(MIGRATIONS):
        raise StoreError(f"the database's schema version {current} is newer than this "
                         f"program's ({len(MIGRATIONS)})")
    for version in range(current, len(MIGRATIONS)):
        await db.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            async with db.execute("PRAGMA user_version") as cursor:
                row = await cursor.fetchone()
            if row and row[0] > version:
                await db.execute("ROLLBACK")
                continue
            for statement in _statements(MIGRATIONS[version]):
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {version + 1}")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    """Split a migration into statements (trigger bodies hold ';' inside BEGIN ... END)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    assert not buffer.strip(), "unterminated statement in a migration"
    return statements


class SqliteEventStore(EventStore):
    def __init__(self, path: Path, *, synchronous: str = "full", **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        if synchronous.lower() not in SYNCHRONOUS_MODES:
            raise StoreError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
        self.path = path
        self.synchronous = synchronous.lower()
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._stored_types: set[str] = set()

    # --- connections --------------------------------------------------------------------

    async def _connect(self) -> None:
        self._writer = await self._open_connection()
        try:
            await self._writer.execute("PRAGMA journal_mode = WAL")
            await self._writer.execute(f"PRAGMA synchronous = {self.synchronous}")
            await migrate(self._writer)
            async with self._writer.execute("SELECT type FROM event_types") as cursor:
                self._stored_types = {row[0] for row in await cursor.fetchall()}
            self.registry.check_stored(self._stored_types)
            self._reader = await self._open_connection()
            await self._reader.execute("PRAGMA query_only = ON")
        except BaseException:
            await self._disconnect()
            raise

    async def _open_connection(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path, isolation_level=None)
        await db.execute("PRAGMA busy_timeout = 30000")
        return db

    async def _disconnect(self) -> None:
        for db in (self._reader, self._writer):
            if db is not None:
                await db.close()
        self._reader = self._writer = None

    @property
    def _w(self) -> aiosqlite.Connection:
        assert self._writer is not None
        return self._writer

    @property
    def _r(self) -> aiosqlite.Connection:
        assert self._reader is not None
        return self._reader

    # --- writing ------------------------------------------------------------------------

    async def _commit_group(self, appends: list[PreparedAppend],
                            now: datetime) -> list[AppendResult | StoreError]:
        streams = list({a.stream for a in appends})
        # Optimistic first: assume no id of the group is stored yet, and look them up only when
        # the plan shows a version conflict (maybe a retry) or the unique index refuses a row.
        for look_up_ids in (False, True):
            await self._w.execute("BEGIN IMMEDIATE")
            try:
                head = await self._chain_head()
                versions = await self._stream_versions_on(self._w, streams)
                known = await self._known_events(appends) if look_up_ids else {}
                plan = plan_group(appends, head, versions, known, now)
                if plan.has_version_conflict and not look_up_ids:
                    plan = plan_group(appends, head, versions,
                                      await self._known_events(appends), now)
                await self._w.executemany(_INSERT, plan.rows)
                new_types = {row[4] for row in plan.rows} - self._stored_types
                if new_types:
                    await self._w.executemany("INSERT OR IGNORE INTO event_types VALUES (?)",
                                              [(t,) for t in new_types])
                await self._w.execute("COMMIT")
            except sqlite3.IntegrityError:
                await self._w.execute("ROLLBACK")
                if look_up_ids:
                    raise
                continue
            except BaseException:
                if self._w.in_transaction:
                    await self._w.execute("ROLLBACK")
                raise
            self._stored_types |= new_types
            return plan.outcomes
        raise AssertionError("unreachable")

    async def _chain_head(self) -> ChainHead:
        async with self._w.execute(
            "SELECT position, hash, recorded_at FROM events ORDER BY position DESC LIMIT 1"
        ) as cursor:
            row = await cursor.fetchone()
        return ChainHead() if row is None else ChainHead(row[0], row[1], row[2])

    async def _known_events(self, appends: list[PreparedAppend]) -> dict[uuid.UUID, KnownEvent]:
        ids = [e.event_id.bytes for a in appends for e in a.events]
        known: dict[uuid.UUID, KnownEvent] = {}
        for i in range(0, len(ids), _ID_CHUNK):
            chunk = ids[i : i + _ID_CHUNK]
            sql = f"SELECT event_id, record FROM events WHERE event_id IN ({_marks(len(chunk))})"
            async with self._w.execute(sql, chunk) as cursor:
                for event_id, record in await cursor.fetchall():
                    known[uuid.UUID(bytes=event_id)] = known_from_record(record)
        return known

    # --- reading ------------------------------------------------------------------------

    async def _max_position(self) -> int:
        db = self._reader or self._w
        async with db.execute("SELECT COALESCE(MAX(position), 0) FROM events") as cursor:
            row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    async def _stream_versions(self, streams: Sequence[str]) -> dict[str, int | None]:
        return await self._stream_versions_on(self._r, streams)

    @staticmethod
    async def _stream_versions_on(db: aiosqlite.Connection,
                                  streams: Sequence[str]) -> dict[str, int | None]:
        # One MAX per stream, each an index seek (a GROUP BY would scan whole streams).
        versions: dict[str, int | None] = {}
        for i in range(0, len(streams), _ID_CHUNK):
            chunk = streams[i : i + _ID_CHUNK]
            sql = " UNION ALL ".join(
                "SELECT ?, (SELECT MAX(version) FROM events WHERE stream = ?)" for _ in chunk
            )
            async with db.execute(sql, [s for s in chunk for _ in (0, 1)]) as cursor:
                versions.update(await cursor.fetchall())  # type: ignore[arg-type]
        return versions

    async def _fetch_stream(self, stream: str, from_version: int,
                            limit: int | None) -> list[bytes]:
        async with self._r.execute(
            "SELECT record FROM events WHERE stream = ? AND version >= ? ORDER BY version "
            "LIMIT ?", (stream, from_version, -1 if limit is None else limit)
        ) as cursor:
            return [row[0] for row in await cursor.fetchall()]

    async def _fetch(self, after: int, upto: int, log_filter: LogFilter,
                     limit: int) -> tuple[list[bytes], int]:
        if log_filter.everything:
            async with self._r.execute(
                "SELECT record FROM events WHERE position > ? AND position <= ? "
                "ORDER BY position LIMIT ?", (after, upto, limit)
            ) as cursor:
                rows = list(await cursor.fetchall())
            # Positions are gap-free, so the last one is known without selecting it.
            return [r[0] for r in rows], (after + len(rows) if len(rows) == limit else upto)
        where, params = _filter_sql(log_filter)
        async with self._r.execute(
            f"SELECT position, record FROM events WHERE position > ? AND position <= ? "
            f"AND ({where}) ORDER BY position LIMIT ?", (after, upto, *params, limit)
        ) as cursor:
            rows = list(await cursor.fetchall())
        return [r[1] for r in rows], (rows[-1][0] if len(rows) == limit else upto)

    async def _verify_rows(self) -> AsyncIterator[list[Row]]:
        after = 0
        while True:
            async with self._r.execute(
                f"{_ROWS} WHERE position > ? ORDER BY position LIMIT ?",
                (after, limits.READ_BATCH_EVENTS),
            ) as cursor:
                rows: list[Row] = await cursor.fetchall()  # type: ignore[assignment]
            if not rows:
                return
            yield rows
            after = rows[-1][0]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _filter_sql(log_filter: LogFilter) -> tuple[str, list[str]]:
    """SQL for a filter. A category ``c`` is the range ['c-', 'c.'): '.' follows '-' in ASCII,
    and no category character lies between them, so the range holds exactly that category."""
    clauses: list[str] = []
    params: list[str] = []
    for category in log_filter.categories:
        clauses.append("(stream >= ? AND stream < ?)")
        params += [f"{category}-", f"{category}."]
    category_sql = " OR ".join(clauses) if clauses else "1"
    type_sql = f"type IN ({_marks(len(log_filter.wire_names))})" if log_filter.wire_names else "1"
    return f"({category_sql}) AND {type_sql}", [*params, *log_filter.wire_names]
