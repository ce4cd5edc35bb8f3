"""The embedded default backend: one SQLite file in WAL mode.

Two connections. The writer is a plain ``sqlite3`` connection that only the store's writer task
uses, through one worker thread: a group commit is one function call there (aiosqlite would
cost a thread hop for each of its half-dozen statements). Readers go through aiosqlite; WAL
lets them run beside the writer. Each group commit is one ``BEGIN IMMEDIATE`` transaction,
which takes SQLite's write lock, so positions are assigned and committed in the same order
even when several processes share the file: the head is read inside each transaction.

Durability: ``synchronous=FULL`` by default (the WAL is fsynced at every commit, so an
acknowledged append survives a power cut). ``sqlite:///path?synchronous=normal`` trades that
for speed: still safe against a crash of the process, not of the machine.
"""

from __future__ import annotations

import operator
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import anyio
import anyio.to_thread

from ledger.errors import SchemaError, StoreUrlError
from ledger.store import limits, tree
from ledger.store.base import EventStore, LogFilter, driver_errors
from ledger.store.planner import (
    ChainHead,
    GroupPlan,
    KnownEvent,
    Outcome,
    PreparedWrite,
    Row,
    known_from_record,
    plan_group,
)
from ledger.store.records import account_of_record
from ledger.transparency.merkle import STORED_LEVEL, Frontier, NodeKey, frontier_keys

T = TypeVar("T")

SYNCHRONOUS_MODES = ("full", "extra", "normal")


def _add_account_column(db: sqlite3.Connection) -> None:
    """The account column, filled in for the rows already stored (their records decoded),
    the append-only trigger lifted for that alone, inside the migration's transaction."""
    db.execute("ALTER TABLE events ADD COLUMN account_id TEXT")
    db.execute("DROP TRIGGER events_no_update")
    after = 0
    while rows := db.execute("SELECT position, record FROM events WHERE position > ? "
                             "ORDER BY position LIMIT ?",
                             (after, limits.READ_BATCH_EVENTS)).fetchall():
        db.executemany("UPDATE events SET account_id = ? WHERE position = ?",
                       [(account_of_record(r[1]), r[0]) for r in rows])
        after = rows[-1][0]
    db.execute("CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
               "BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END")
    db.execute("CREATE INDEX events_account ON events (account_id, position)")


# Each entry brings the schema from version i to i + 1. Never edit one that has shipped: add.
MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
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
    # The Merkle tree's stored nodes (ledger.transparency.merkle), and the ledger's name.
    """
    CREATE TABLE merkle_nodes (
        level INTEGER NOT NULL,
        idx   INTEGER NOT NULL,
        hash  BLOB    NOT NULL,
        PRIMARY KEY (level, idx)
    ) WITHOUT ROWID;
    CREATE TRIGGER merkle_nodes_no_update BEFORE UPDATE ON merkle_nodes
        BEGIN SELECT RAISE(ABORT, 'the Merkle tree is append-only'); END;
    CREATE TRIGGER merkle_nodes_no_delete BEFORE DELETE ON merkle_nodes
        BEGIN SELECT RAISE(ABORT, 'the Merkle tree is append-only'); END;
    CREATE TABLE merkle_frontier (
        id    INTEGER PRIMARY KEY CHECK (id = 1),
        size  INTEGER NOT NULL,
        stack BLOB    NOT NULL
    );
    CREATE TABLE ledger_identity (origin TEXT NOT NULL);
    INSERT INTO ledger_identity VALUES ('cardledger/' || lower(hex(randomblob(16))));
    """,
    # Consumers' positions, committed with what they wrote (EventStore.append's tracking).
    """
    CREATE TABLE tracking (
        consumer TEXT    PRIMARY KEY,
        position INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # Each event's account (records.account_of), indexed: a reader of some accounts reads
    # only their events, each account's in log order.
    _add_account_column,
)

_INSERT = "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_NODES = "INSERT INTO merkle_nodes VALUES (?, ?, ?)"
_SAVE_FRONTIER = "INSERT OR REPLACE INTO merkle_frontier VALUES (1, ?, ?)"
_SAVE_TRACKING = "INSERT OR REPLACE INTO tracking VALUES (?, ?)"
_TYPE_OF = operator.attrgetter("type")  # a row's wire name
# Verification reads every column as raw bytes: a tampered row may hold any type anywhere
# (in SQL, record || x'00' is TEXT, and invalid UTF-8 would stop the walk instead of being
# reported).
_RAW_ROWS = ("SELECT position, CAST(stream AS BLOB), version, CAST(event_id AS BLOB), "
             "CAST(type AS BLOB), recorded_at, CAST(record AS BLOB), CAST(hash AS BLOB) "
             "FROM events")
_STREAM_VERSION = "SELECT MAX(version) FROM events WHERE stream = ?"
_BUSY_TIMEOUT_MS = 30_000
_WAL_CHECKPOINT_PAGES = 10_000
_ID_CHUNK = 500


def writer_pragmas(synchronous: str = "full") -> list[str]:
    """The writer connection's settings (the benchmarks' raw baseline uses the same)."""
    return [
        f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}",
        "PRAGMA journal_mode = WAL",
        f"PRAGMA synchronous = {synchronous}",
        # Checkpoint every ~40 MiB of WAL instead of 4: hot pages (the index leaves of busy
        # streams) are dirtied by many commits and are copied back to the database once.
        f"PRAGMA wal_autocheckpoint = {_WAL_CHECKPOINT_PAGES}",
    ]


def migrate(db: sqlite3.Connection) -> None:
    """Apply the migrations this file has not seen yet, each in its own transaction."""
    current = db.execute("PRAGMA user_version").fetchone()[0]
    if current > len(MIGRATIONS):
        raise SchemaError(f"the database's schema version {current} is newer than this "
                          f"program's ({len(MIGRATIONS)})")
    for version in range(current, len(MIGRATIONS)):
        with transaction(db):
            # Re-read under the write lock: another process may have migrated meanwhile.
            if db.execute("PRAGMA user_version").fetchone()[0] > version:
                continue
            step = MIGRATIONS[version]
            if callable(step):
                step(db)
            else:
                for statement in statements(step):
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {version + 1}")



@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE (take the write lock now), COMMIT on success, ROLLBACK otherwise."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:
            db.rollback()
        raise
    db.execute("COMMIT")


def statements(script: str) -> list[str]:
    """Split a migration into statements (trigger bodies hold ';' inside BEGIN ... END)."""
    found, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            found.append(buffer.strip())
            buffer = ""
    assert not buffer.strip(), "unterminated statement in a migration"
    return found


_driver_errors = driver_errors("SQLite", (sqlite3.OperationalError,), (sqlite3.DatabaseError,))
"""A locked, unreadable or vanished file (``OperationalError``): try again later."""


class SqliteEventStore(EventStore):
    def __init__(self, path: Path, *, synchronous: str = "full", **options: Any) -> None:
        super().__init__(**options)
        if synchronous.lower() not in SYNCHRONOUS_MODES:
            raise StoreUrlError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
        self.path = path
        self.synchronous = synchronous.lower()
        self._writer: sqlite3.Connection | None = None
        self._write_thread = anyio.CapacityLimiter(1)
        self._reader: aiosqlite.Connection | None = None
        self._stored_types: set[str] = set()
        self._versions = _StreamVersionCache()
        self._frontier = tree.FrontierCache()
        self._commit_seconds = 0.0  # recent commits' duration, averaged (_commits_inline)

    # --- connections --------------------------------------------------------------------

    async def _connect(self) -> None:
        try:
            self._writer = await self._in_writer_thread(self._open_writer)
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            await self._reader.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            await self._reader.execute("PRAGMA query_only = ON")
        except BaseException:
            await self._disconnect()
            raise

    def _open_writer(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            for pragma in writer_pragmas(self.synchronous):
                db.execute(pragma)
            migrate(db)
            _complete_the_tree(db)
            self._stored_types = {row[0] for row in db.execute("SELECT type FROM event_types")}
            self.registry.check_stored(self._stored_types)
        except BaseException:
            db.close()
            raise
        return db

    async def _in_writer_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(function, *args, limiter=self._write_thread)

    async def _disconnect(self) -> None:
        if self._reader is not None:
            await self._reader.close()
        if self._writer is not None:
            await self._in_writer_thread(self._writer.close)
        self._reader = self._writer = None

    @property
    def _r(self) -> aiosqlite.Connection:
        assert self._reader is not None
        return self._reader

    # --- writing ------------------------------------------------------------------------

    @_driver_errors
    async def _commit_group(self, writes: list[PreparedWrite], now: datetime) -> list[Outcome]:
        return await self._in_writer_thread(self._commit_group_now, writes, now)

    def _commits_inline(self) -> bool:
        # A commit is an fsync and a few statements: on a fast disk, less time than the hop
        # to the writer's thread and back. On a slow one the event loop should not wait on
        # it, and the appends go to the writer's thread, which keeps the average up to date.
        return self._commit_seconds < limits.INLINE_COMMIT_SECONDS

    @_driver_errors
    def _commit_inline(self, writes: list[PreparedWrite], now: datetime) -> list[Outcome]:
        return self._commit_group_now(writes, now)

    def _commit_group_now(self, writes: list[PreparedWrite], now: datetime) -> list[Outcome]:
        """One transaction for the whole group, timed (runs in the writer's thread or, by
        ``_commit_inline``, the caller's; never both at once)."""
        started = time.perf_counter()
        try:
            return self._commit_planned(writes, now)
        finally:
            # An exponential average over about eight commits: one slow checkpoint is not
            # a slow disk.
            self._commit_seconds += (time.perf_counter() - started - self._commit_seconds) / 8

    def _commit_planned(self, writes: list[PreparedWrite], now: datetime) -> list[Outcome]:
        db = self._writer
        assert db is not None
        # Optimistic first: assume no id of the group is stored yet, and look them up only when
        # the plan shows a version conflict (maybe a retry) or the unique index refuses a row.
        for look_up_ids in (False, True):
            try:
                with transaction(db):
                    head = _chain_head(db)
                    versions = self._versions.read(
                        db, head, {a.stream for w in writes for a in w.appends})
                    tracked = _tracked_positions(db, writes)
                    known = _known_events(db, writes) if look_up_ids else {}
                    plan = plan_group(writes, head, versions, known, now, tracked)
                    if plan.has_version_conflict and not look_up_ids:
                        plan = plan_group(writes, head, versions, _known_events(db, writes),
                                          now, tracked)
                    frontier = self._frontier.at(head) or _frontier(db, head.position)
                    db.executemany(_INSERT, plan.rows)
                    # The frontier itself is not saved: it would be one more page in every
                    # commit's fsync, to spare a writer whose copy is stale (another process
                    # wrote, or it reopened) rehashing at most 255 records (_frontier).
                    nodes = tree.extend(frontier, plan.rows)
                    if nodes:
                        db.executemany(_INSERT_NODES, nodes)
                    if plan.tracking:
                        db.executemany(_SAVE_TRACKING, plan.tracking.items())
                    new_types = set(map(_TYPE_OF, plan.rows)) - self._stored_types
                    if new_types:
                        db.executemany("INSERT OR IGNORE INTO event_types VALUES (?)",
                                       [(t,) for t in new_types])
            except sqlite3.IntegrityError:
                self._forget()
                if look_up_ids:
                    raise
                continue
            except BaseException:
                self._forget()
                raise
            self._versions.committed(plan)
            self._frontier.committed(frontier, plan.head)
            self._stored_types |= new_types
            return plan.outcomes
        raise AssertionError("unreachable")

    def _forget(self) -> None:
        self._versions.clear()
        self._frontier.clear()

    # --- reading ------------------------------------------------------------------------

    async def _query(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """Every row of one query, in one trip to the reader's thread (a cursor's execute,
        fetch and close would be three)."""
        return list(await self._r.execute_fetchall(sql, parameters))

    @_driver_errors
    async def _max_position(self) -> int:
        rows = await self._query("SELECT COALESCE(MAX(position), 0) FROM events")
        return int(rows[0][0])

    @_driver_errors
    async def _stream_versions(self, streams: Sequence[str]) -> dict[str, int | None]:
        versions: dict[str, int | None] = {}
        for stream in streams:
            rows = await self._query(_STREAM_VERSION, (stream,))
            versions[stream] = rows[0][0] if rows else None
        return versions

    @_driver_errors
    async def _fetch_stream(self, stream: str, from_version: int,
                            limit: int | None) -> list[bytes]:
        rows = await self._query(
            "SELECT record FROM events WHERE stream = ? AND version >= ? ORDER BY version "
            "LIMIT ?", (stream, from_version, -1 if limit is None else limit))
        return [row[0] for row in rows]

    @_driver_errors
    async def _fetch(self, after: int, upto: int, log_filter: LogFilter,
                     limit: int) -> tuple[list[bytes], int]:
        if log_filter.everything:
            # Positions are gap-free and committed up to the head: the next `count` rows are
            # exactly after+1 .. after+count, so the last one is known without selecting it.
            count = min(limit, upto - after)
            rows = await self._query(
                "SELECT record FROM events WHERE position > ? ORDER BY position LIMIT ?",
                (after, count))
            return [r[0] for r in rows], after + len(rows)
        where, params = _filter_sql(log_filter)
        rows = await self._query(
            f"SELECT position, record FROM events WHERE position > ? AND position <= ? "
            f"AND ({where}) ORDER BY position LIMIT ?", (after, upto, *params, limit))
        return [r[1] for r in rows], (rows[-1][0] if len(rows) == limit else upto)

    @_driver_errors
    async def _account_sizes(self, upto: int) -> list[tuple[str | None, int]]:
        rows = await self._query("SELECT account_id, COUNT(*) FROM events WHERE position <= ? "
                                 "GROUP BY account_id", (upto,))
        return [(account, count) for account, count in rows]

    @_driver_errors
    async def _fetch_accounts(self, after: tuple[str | None, int], last: str | None, upto: int,
                              limit: int) -> list[tuple[str | None, int, bytes]]:
        account, position = after
        if account is None:
            rows = await self._query(
                "SELECT account_id, position, record FROM events WHERE account_id IS NULL AND "
                "position > ? AND position <= ? ORDER BY position LIMIT ?",
                (position, upto, limit))
        else:  # the rest of this account, then the next ones: two ranges of the index
            rows = await self._query(
                "SELECT account_id, position, record FROM events WHERE account_id = ? AND "
                "position > ? AND position <= ? ORDER BY position LIMIT ?",
                (account, position, upto, limit))
            if len(rows) < limit:
                rows += await self._query(
                    "SELECT account_id, position, record FROM events WHERE account_id > ? AND "
                    "account_id <= ? AND position <= ? ORDER BY account_id, position LIMIT ?",
                    (account, last, upto, limit - len(rows)))
        return [(a, p, r) for a, p, r in rows]

    @_driver_errors
    async def _tracked(self, consumer: str) -> int:
        rows = await self._query("SELECT position FROM tracking WHERE consumer = ?", (consumer,))
        return int(rows[0][0]) if rows else 0

    @_driver_errors
    async def _origin(self) -> str:
        return str((await self._query("SELECT origin FROM ledger_identity"))[0][0])

    @_driver_errors
    async def _nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        found: dict[NodeKey, bytes] = {}
        for i in range(0, len(keys), _ID_CHUNK // 2):
            chunk = keys[i : i + _ID_CHUNK // 2]
            where = " OR ".join(["(level = ? AND idx = ?)"] * len(chunk))
            for level, idx, digest in await self._query(
                    f"SELECT level, idx, hash FROM merkle_nodes WHERE {where}",
                    [n for key in chunk for n in key]):
                found[level, idx] = digest
        return found

    async def _stored_nodes(self) -> AsyncIterator[list[tuple[int, int, bytes]]]:
        after: tuple[int, int] = (-1, -1)
        while True:
            rows = await self._query(
                "SELECT level, idx, CAST(hash AS BLOB) FROM merkle_nodes WHERE (level, idx) > "
                "(?, ?) ORDER BY level, idx LIMIT ?", (*after, limits.READ_BATCH_EVENTS))
            if not rows:
                return
            yield [(level, idx, digest) for level, idx, digest in rows]
            after = rows[-1][0], rows[-1][1]

    async def _verify_rows(self) -> AsyncIterator[list[Row]]:
        after = 0
        while True:
            raw = await self._query(f"{_RAW_ROWS} WHERE position > ? ORDER BY position LIMIT ?",
                                    (after, limits.READ_BATCH_EVENTS))
            if not raw:
                return
            yield [Row(p, _text(s), v, i, _text(t), r, rec, h)
                   for p, s, v, i, t, r, rec, h in raw]
            after = raw[-1][0]


def _text(value: bytes) -> str:
    """A text column read as bytes: undecodable bytes stay visible, and never match."""
    return value.decode("utf-8", errors="surrogateescape")


def _chain_head(db: sqlite3.Connection) -> ChainHead:
    row = db.execute("SELECT position, hash, recorded_at FROM events "
                     "ORDER BY position DESC LIMIT 1").fetchone()
    return ChainHead() if row is None else ChainHead(row[0], row[1], row[2])


def _frontier(db: sqlite3.Connection, size: int) -> Frontier:
    """The tree's right edge at ``size``: the stored one if it is of that size (PostgreSQL
    and older versions save it with each commit, this one when it completes the tree), or
    else resumed from the stored nodes and the records after them (at most 255)."""
    row = db.execute("SELECT size, stack FROM merkle_frontier").fetchone()
    saved = tree.decoded(*row) if row is not None and row[0] == size else None
    if saved is not None:
        return saved
    keys, start = frontier_keys(size)
    stored = {(level, idx): digest for key in keys for level, idx, digest in db.execute(
        "SELECT level, idx, hash FROM merkle_nodes WHERE level = ? AND idx = ?", key)}
    tail = [r[0] for r in db.execute("SELECT record FROM events WHERE position > ? ORDER BY "
                                     "position", (start,))]
    return tree.resumed(size, start, stored, keys, tail)


def _complete_the_tree(db: sqlite3.Connection) -> None:
    """Store the tree's nodes for a log written before it was kept (schema version 1), or
    whose newest nodes are missing: recomputed from the records, in one transaction."""
    head = db.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()[0]
    newest = db.execute("SELECT MAX(idx) FROM merkle_nodes WHERE level = ?",
                        (STORED_LEVEL,)).fetchone()[0]
    if (newest if newest is not None else -1) + 1 >= head >> STORED_LEVEL:
        return
    with transaction(db):
        frontier, completed = Frontier(), []
        for (record,) in db.execute("SELECT record FROM events ORDER BY position"):
            completed += frontier.extend(tree.leaves([record]))
        db.executemany("INSERT OR IGNORE INTO merkle_nodes VALUES (?, ?, ?)", completed)
        db.execute(_SAVE_FRONTIER, tree.encoded(frontier))


def _tracked_positions(db: sqlite3.Connection, writes: list[PreparedWrite]) -> dict[str, int]:
    consumers = {w.tracking.consumer for w in writes if w.tracking is not None}
    found = {}
    for consumer in consumers:
        row = db.execute("SELECT position FROM tracking WHERE consumer = ?", (consumer,)
                         ).fetchone()
        if row is not None:
            found[consumer] = row[0]
    return found


def _known_events(db: sqlite3.Connection,
                  writes: list[PreparedWrite]) -> dict[bytes, KnownEvent]:
    ids = [e.id_bytes for w in writes for e in w.events]
    known: dict[bytes, KnownEvent] = {}
    for i in range(0, len(ids), _ID_CHUNK):
        chunk = ids[i : i + _ID_CHUNK]
        sql = f"SELECT event_id, record FROM events WHERE event_id IN ({_marks(len(chunk))})"
        for event_id, record in db.execute(sql, chunk):
            known[event_id] = known_from_record(record)
    return known


class _StreamVersionCache:
    """Stream versions the writer has seen, trusted only while it is the log's only writer.

    Under the write lock, if the log's head is still the head this writer committed last, no
    other process has written since, so the versions it remembers are exact; otherwise they
    are all forgotten. Streams not remembered are looked up (an index seek each). This is only
    about speed: idempotency never relies on it, the unique index does.
    """

    LIMIT = 100_000

    def __init__(self) -> None:
        self._versions: dict[str, int | None] = {}
        self._head: ChainHead | None = None

    def read(self, db: sqlite3.Connection, head: ChainHead,
             streams: set[str]) -> dict[str, int | None]:
        if head != self._head:
            self._versions.clear()
        versions = {s: self._versions[s] for s in streams if s in self._versions}
        for stream in streams - versions.keys():
            versions[stream] = db.execute(_STREAM_VERSION, (stream,)).fetchone()[0]
        return versions

    def committed(self, plan: GroupPlan) -> None:
        if len(self._versions) > self.LIMIT:
            self._versions.clear()
        for outcome in plan.outcomes:
            for result in outcome if isinstance(outcome, tuple) else ():
                if not result.duplicate:
                    self._versions[result.stream] = result.versions[-1]
        self._head = plan.head

    def clear(self) -> None:
        self._versions.clear()
        self._head = None


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
