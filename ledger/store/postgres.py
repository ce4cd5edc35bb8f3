"""The PostgreSQL backend, for programmes that outgrow one machine (asyncpg).

**Commit-ordered positions with many writer processes.** A ``bigserial`` hands out numbers
before commit, so a reader can see N+1 and never see N. This backend serialises writers
instead: each group commit runs in one transaction that first takes a transaction-scoped
advisory lock, reads the head, assigns positions after it, and commits before the lock is
released. The next writer reads the head only after acquiring the lock, so it sees the
previous commit; a position is therefore never committed after a higher one, and a reader
that has seen N never later finds a new event below N. Group commit keeps the lock cheap:
one lock per group of appends, not one per event. (Fencing readers with the transaction
snapshot, ``pg_snapshot_xmin``, would allow concurrent writers, at the cost of gaps and a
harder reader; one writer at a time is simpler and fast enough for a card programme.)

The same planner as SQLite builds the rows, so positions, versions, idempotency and the hash
chain behave identically; the conformance suite runs unchanged against both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from ledger.errors import SchemaError, StoreUnavailableError
from ledger.store import limits, tree
from ledger.store.base import EventStore, LogFilter, driver_errors
from ledger.store.planner import (
    ChainHead,
    KnownEvent,
    Outcome,
    PreparedWrite,
    Row,
    known_from_record,
    plan_group,
)
from ledger.store.records import account_of_record
from ledger.transparency.merkle import STORED_LEVEL, Frontier, NodeKey, frontier_keys

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
"""A connection, or the pool's proxy of one: both run the same queries."""

WRITE_LOCK = 0x6361_7264_6C65_6467  # "cardledg": the one lock every writer takes
MIGRATION_LOCK = WRITE_LOCK + 1

async def _add_account_column(db: Connection) -> None:
    """The account column, filled in for the rows already stored (their records decoded),
    the append-only trigger lifted for that alone, inside the migration's transaction."""
    # Byte order ("C"), as Python compares text: the same account ranges on both sides.
    await db.execute('ALTER TABLE events ADD COLUMN account_id TEXT COLLATE "C"')
    await db.execute("ALTER TABLE events DISABLE TRIGGER events_no_change")
    after = 0
    while rows := await db.fetch("SELECT position, record FROM events WHERE position > $1 "
                                 "ORDER BY position LIMIT $2", after, limits.READ_BATCH_EVENTS):
        await db.executemany("UPDATE events SET account_id = $1 WHERE position = $2",
                             [(account_of_record(bytes(r[1])), r[0]) for r in rows])
        after = rows[-1][0]
    await db.execute("ALTER TABLE events ENABLE TRIGGER events_no_change")
    await db.execute("CREATE INDEX events_account ON events (account_id, position)")


MIGRATIONS: tuple[str | Callable[[Connection], Awaitable[None]], ...] = (
    """
    CREATE TABLE events (
        position    BIGINT  PRIMARY KEY,
        stream      TEXT    NOT NULL,
        version     INTEGER NOT NULL,
        event_id    BYTEA   NOT NULL,
        type        TEXT    NOT NULL,
        recorded_at BIGINT  NOT NULL,
        record      BYTEA   NOT NULL,
        hash        BYTEA   NOT NULL
    );
    CREATE UNIQUE INDEX events_event_id ON events (event_id);
    CREATE UNIQUE INDEX events_stream_version ON events (stream, version);
    CREATE TABLE event_types (type TEXT PRIMARY KEY);
    CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the event log is append-only'; END $$;
    CREATE TRIGGER events_no_change BEFORE UPDATE OR DELETE ON events
        FOR EACH ROW EXECUTE FUNCTION events_append_only();
    """,
    # The Merkle tree's stored nodes (ledger.transparency.merkle), and the ledger's name.
    """
    CREATE TABLE merkle_nodes (
        level SMALLINT NOT NULL,
        idx   BIGINT   NOT NULL,
        hash  BYTEA    NOT NULL,
        PRIMARY KEY (level, idx)
    );
    CREATE TRIGGER merkle_nodes_no_change BEFORE UPDATE OR DELETE ON merkle_nodes
        FOR EACH ROW EXECUTE FUNCTION events_append_only();
    CREATE TABLE merkle_frontier (
        id    INTEGER PRIMARY KEY CHECK (id = 1),
        size  BIGINT  NOT NULL,
        stack BYTEA   NOT NULL
    );
    CREATE TABLE ledger_identity (origin TEXT NOT NULL);
    INSERT INTO ledger_identity
        VALUES ('cardledger/' || md5(random()::text || clock_timestamp()::text));
    """,
    # Consumers' positions, committed with what they wrote (EventStore.append's tracking).
    """
    CREATE TABLE tracking (consumer TEXT PRIMARY KEY, position BIGINT NOT NULL);
    """,
    # Each event's account (records.account_of), indexed: a reader of some accounts reads
    # only their events, each account's in log order.
    _add_account_column,
)

_SAVE_FRONTIER = ("INSERT INTO merkle_frontier VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE "
                  "SET size = EXCLUDED.size, stack = EXCLUDED.stack")
_TRACKED = "SELECT consumer, position FROM tracking WHERE consumer = ANY($1::text[])"
_SAVE_TRACKING = ("INSERT INTO tracking VALUES ($1, $2) ON CONFLICT (consumer) DO UPDATE SET "
                  "position = EXCLUDED.position")
_SAVE_TREE = (f"WITH saved AS ({_SAVE_FRONTIER}) INSERT INTO merkle_nodes "
              "SELECT * FROM unnest($3::smallint[], $4::bigint[], $5::bytea[])")
"""A commit's new tree nodes and its frontier, in one statement (one round trip)."""
_SAVE_ALL = (
    "WITH saved AS (INSERT INTO merkle_frontier VALUES (1, $10, $11) ON CONFLICT (id) DO "
    "UPDATE SET size = EXCLUDED.size, stack = EXCLUDED.stack), "
    "nodes AS (INSERT INTO merkle_nodes SELECT * FROM unnest($12::smallint[], $13::bigint[], "
    "$14::bytea[])) "
    "INSERT INTO events SELECT * FROM unnest($1::bigint[], $2::text[], $3::integer[], "
    "$4::bytea[], $5::text[], $6::bigint[], $7::bytea[], $8::bytea[], $9::text[])")
"""A group's rows, nodes and frontier in one statement."""
_HEAD_AND_FRONTIER = (
    "SELECT e.position, e.hash, e.recorded_at, f.size, f.stack FROM (SELECT 1) AS one "
    "LEFT JOIN LATERAL (SELECT position, hash, recorded_at FROM events ORDER BY position "
    "DESC LIMIT 1) AS e ON TRUE LEFT JOIN merkle_frontier AS f ON TRUE")
_COLUMNS = ("position", "stream", "version", "event_id", "type", "recorded_at", "record", "hash",
            "account_id")
_STREAM_VERSIONS = ("SELECT s, (SELECT max(version) FROM events WHERE stream = s) "
                    "FROM unnest($1::text[]) AS s")


async def migrate(db: Connection) -> None:
    """Apply the migrations this database has not seen, under a lock (several processes may
    start at once), in one transaction."""
    async with db.transaction():
        await db.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = await db.fetchval("SELECT max(version) FROM schema_version") or 0
        if current > len(MIGRATIONS):
            raise SchemaError(f"the database's schema version {current} is newer than this "
                              f"program's ({len(MIGRATIONS)})")
        for version in range(current, len(MIGRATIONS)):
            step = MIGRATIONS[version]
            await (step(db) if callable(step) else db.execute(step))
            await db.execute("INSERT INTO schema_version VALUES ($1)", version + 1)


LOST = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError, asyncpg.exceptions.OperatorInterventionError)
"""What asyncpg raises when the server is unreachable, restarting or shutting down (the
projection backend's connection meets the same)."""
_driver_errors = driver_errors("PostgreSQL", LOST, (asyncpg.PostgresError,))


class PostgresEventStore(EventStore):
    def __init__(self, dsn: str, **options: Any) -> None:
        super().__init__(**options)
        self.dsn = dsn
        self._pool: asyncpg.Pool | None = None
        self._stored_types: set[str] = set()
        self._frontier = tree.FrontierCache()

    @property
    def _p(self) -> asyncpg.Pool:
        assert self._pool is not None
        return self._pool

    async def _connect(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4)
        except (*LOST, asyncpg.PostgresError) as exc:
            raise StoreUnavailableError(f"cannot connect to PostgreSQL: {exc}") from None
        try:
            async with self._p.acquire() as db:
                await migrate(db)
                await _complete_the_tree(db)
                self._stored_types = {r[0] for r in await db.fetch("SELECT type FROM event_types")}
            self.registry.check_stored(self._stored_types)
        except BaseException:
            await self._disconnect()
            raise

    async def _disconnect(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # --- writing ------------------------------------------------------------------------

    @_driver_errors
    async def _commit_group(self, writes: list[PreparedWrite], now: datetime) -> list[Outcome]:
        streams = sorted({a.stream for w in writes for a in w.appends})
        consumers = sorted({w.tracking.consumer for w in writes if w.tracking is not None})
        async with self._p.acquire() as db:
            # Optimistic first, as in SQLite: ids are looked up only after a version conflict
            # (maybe a retry) or when the unique index refuses a row.
            for look_up_ids in (False, True):
                try:
                    async with db.transaction():
                        await db.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
                        head, saved = await _chain_head_and_frontier(db)
                        versions = _versions(await db.fetch(_STREAM_VERSIONS, streams))
                        tracked = ({r[0]: r[1] for r in await db.fetch(_TRACKED, consumers)}
                                   if consumers else {})
                        known = await _known(db, writes) if look_up_ids else {}
                        plan = plan_group(writes, head, versions, known, now, tracked)
                        if plan.has_version_conflict and not look_up_ids:
                            plan = plan_group(writes, head, versions, await _known(db, writes),
                                              now, tracked)
                        frontier = (self._frontier.at(head) or saved
                                    or await _frontier(db, head.position))
                        await _insert(db, plan.rows, frontier, tree.extend(frontier, plan.rows))
                        if plan.tracking:
                            await db.executemany(_SAVE_TRACKING, plan.tracking.items())
                        new_types = {row.type for row in plan.rows} - self._stored_types
                        if new_types:
                            await db.executemany(
                                "INSERT INTO event_types VALUES ($1) ON CONFLICT DO NOTHING",
                                [(t,) for t in new_types])
                except asyncpg.UniqueViolationError:
                    self._frontier.clear()
                    if look_up_ids:
                        raise
                    continue
                except BaseException:
                    self._frontier.clear()
                    raise
                self._frontier.committed(frontier, plan.head)
                self._stored_types |= new_types
                return plan.outcomes
        raise AssertionError("unreachable")


    # --- reading ------------------------------------------------------------------------

    @_driver_errors
    async def _max_position(self) -> int:
        return int(await self._p.fetchval("SELECT COALESCE(max(position), 0) FROM events"))

    @_driver_errors
    async def _stream_versions(self, streams: Sequence[str]) -> dict[str, int | None]:
        return _versions(await self._p.fetch(_STREAM_VERSIONS, list(streams)))

    @_driver_errors
    async def _fetch_stream(self, stream: str, from_version: int,
                            limit: int | None) -> list[bytes]:
        rows = await self._p.fetch("SELECT record FROM events WHERE stream = $1 AND version >= $2 "
                                   "ORDER BY version LIMIT $3", stream, from_version, limit)
        return [bytes(r[0]) for r in rows]

    @_driver_errors
    async def _fetch(self, after: int, upto: int, log_filter: LogFilter,
                     limit: int) -> tuple[list[bytes], int]:
        if log_filter.everything:
            # Positions are gap-free and committed up to the head, so the next `count` rows
            # are exactly after+1 .. after+count: no upper bound in the query, which lets the
            # planner walk the primary key instead of sorting a bitmap scan.
            count = min(limit, upto - after)
            rows = await self._p.fetch("SELECT record FROM events WHERE position > $1 "
                                       "ORDER BY position LIMIT $2", after, count)
            return [r[0] for r in rows], after + len(rows)
        where, params = _filter_sql(log_filter, first=4)
        rows = await self._p.fetch(f"SELECT position, record FROM events WHERE position > $1 "
                                   f"AND position <= $2 AND ({where}) ORDER BY position "
                                   f"LIMIT $3", after, upto, limit, *params)
        return [bytes(r[1]) for r in rows], (rows[-1][0] if len(rows) == limit else upto)

    @_driver_errors
    async def _account_sizes(self, upto: int) -> list[tuple[str | None, int]]:
        rows = await self._p.fetch("SELECT account_id, COUNT(*) FROM events WHERE position <= "
                                   "$1 GROUP BY account_id", upto)
        return [(r[0], r[1]) for r in rows]

    @_driver_errors
    async def _fetch_accounts(self, after: tuple[str | None, int], last: str | None, upto: int,
                              limit: int) -> list[tuple[str | None, int, bytes]]:
        account, position = after
        if account is None:
            rows = await self._p.fetch(
                "SELECT account_id, position, record FROM events WHERE account_id IS NULL AND "
                "position > $1 AND position <= $2 ORDER BY position LIMIT $3",
                position, upto, limit)
        else:
            rows = await self._p.fetch(
                "SELECT account_id, position, record FROM events WHERE (account_id, position) "
                "> ($1, $2) AND account_id <= $3 AND position <= $4 ORDER BY account_id, "
                "position LIMIT $5", account, position, last, upto, limit)
        return [(r[0], r[1], bytes(r[2])) for r in rows]

    @_driver_errors
    async def _tracked(self, consumer: str) -> int:
        found = await self._p.fetchval("SELECT position FROM tracking WHERE consumer = $1",
                                       consumer)
        return 0 if found is None else int(found)

    @_driver_errors
    async def _origin(self) -> str:
        return str(await self._p.fetchval("SELECT origin FROM ledger_identity"))

    @_driver_errors
    async def _nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        rows = await self._p.fetch(
            "SELECT n.level, n.idx, n.hash FROM merkle_nodes n JOIN unnest($1::smallint[], "
            "$2::bigint[]) AS k(level, idx) ON n.level = k.level AND n.idx = k.idx",
            [k[0] for k in keys], [k[1] for k in keys])
        return {(r[0], r[1]): bytes(r[2]) for r in rows}

    async def _stored_nodes(self) -> AsyncIterator[list[tuple[int, int, bytes]]]:
        after = (-1, -1)
        while True:
            rows = await self._p.fetch("SELECT level, idx, hash FROM merkle_nodes WHERE "
                                       "(level, idx) > ($1, $2) ORDER BY level, idx LIMIT $3",
                                       *after, limits.READ_BATCH_EVENTS)
            if not rows:
                return
            yield [(r[0], r[1], bytes(r[2])) for r in rows]
            after = rows[-1][0], rows[-1][1]

    async def _verify_rows(self) -> AsyncIterator[list[Row]]:
        after = 0
        while True:
            rows = await self._p.fetch(f"SELECT {', '.join(_COLUMNS)} FROM events WHERE "
                                       "position > $1 ORDER BY position LIMIT $2",
                                       after, limits.READ_BATCH_EVENTS)
            if not rows:
                return
            yield [Row(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], bytes(r[6]), bytes(r[7]),
                       r[8]) for r in rows]
            after = rows[-1][0]


_COPY_FROM = 500
"""Groups of more rows go in by COPY (then the tree in a statement of its own): one
statement is one round trip inside the write lock that every writer queues on."""


async def _insert(db: Connection, rows: list[Row], frontier: Frontier,
                  completed: list[tuple[int, int, bytes]]) -> None:
    """A group's rows, the tree nodes they complete and the tree's new frontier."""
    nodes = [list(c) for c in zip(*completed, strict=True)] if completed else [[], [], []]
    if len(rows) > _COPY_FROM:
        await db.copy_records_to_table("events", records=rows, columns=_COLUMNS)
        await db.execute(_SAVE_TREE, *tree.encoded(frontier), *nodes)
        return
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[]] * len(_COLUMNS)
    await db.execute(_SAVE_ALL, *columns, *tree.encoded(frontier), *nodes)


async def _chain_head_and_frontier(db: Connection) -> tuple[ChainHead, Frontier | None]:
    """The log's last row, and the tree's frontier the last commit stored if it is at that
    row (one round trip under the write lock)."""
    row = await db.fetchrow(_HEAD_AND_FRONTIER)
    assert row is not None  # one row, always
    head = ChainHead() if row[0] is None else ChainHead(row[0], bytes(row[1]), row[2])
    saved = (tree.decoded(row[3], bytes(row[4])) if row[3] is not None
             and row[3] == head.position else None)
    return head, saved


async def _frontier(db: Connection, size: int) -> Frontier:
    """The tree's right edge at ``size``, resumed from the stored nodes and the last records."""
    keys, start = frontier_keys(size)
    rows = await db.fetch("SELECT n.level, n.idx, n.hash FROM merkle_nodes n JOIN unnest("
                          "$1::smallint[], $2::bigint[]) AS k(level, idx) ON n.level = k.level "
                          "AND n.idx = k.idx", [k[0] for k in keys], [k[1] for k in keys])
    tail = await db.fetch("SELECT record FROM events WHERE position > $1 ORDER BY position",
                          start)
    return tree.resumed(size, start, {(r[0], r[1]): bytes(r[2]) for r in rows}, keys,
                        [bytes(r[0]) for r in tail])


async def _complete_the_tree(db: Connection) -> None:
    """Store the tree's nodes for a log written before it was kept, or whose newest nodes
    are missing: recomputed from the records, under the write lock."""
    async with db.transaction():
        await db.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
        head = await db.fetchval("SELECT COALESCE(max(position), 0) FROM events")
        newest = await db.fetchval("SELECT max(idx) FROM merkle_nodes WHERE level = $1",
                                   STORED_LEVEL)
        if (newest if newest is not None else -1) + 1 >= head >> STORED_LEVEL:
            return
        frontier, completed = Frontier(), []
        async for row in db.cursor("SELECT record FROM events ORDER BY position"):
            completed += frontier.extend(tree.leaves([bytes(row[0])]))
        await db.executemany("INSERT INTO merkle_nodes VALUES ($1, $2, $3) ON CONFLICT DO "
                             "NOTHING", completed)
        await db.execute(_SAVE_FRONTIER, *tree.encoded(frontier))


def _versions(rows: Sequence[asyncpg.Record]) -> dict[str, int | None]:
    return {row[0]: row[1] for row in rows}


async def _known(db: Connection, writes: list[PreparedWrite]) -> dict[bytes, KnownEvent]:
    ids = [e.id_bytes for w in writes for e in w.events]
    rows = await db.fetch("SELECT event_id, record FROM events WHERE event_id = ANY($1::bytea[])",
                          ids)
    return {bytes(r[0]): known_from_record(bytes(r[1])) for r in rows}


def _filter_sql(log_filter: LogFilter, first: int) -> tuple[str, list[Any]]:
    """As in SQLite: a category ``c`` is the range ['c-', 'c.') in byte order (COLLATE "C",
    whatever the database's collation)."""
    clauses: list[str] = []
    params: list[Any] = []
    n = first
    for category in log_filter.categories:
        clauses.append(f'(stream COLLATE "C" >= ${n} AND stream COLLATE "C" < ${n + 1})')
        params += [f"{category}-", f"{category}."]
        n += 2
    category_sql = " OR ".join(clauses) if clauses else "TRUE"
    type_sql = "TRUE"
    if log_filter.wire_names:
        type_sql = f"type = ANY(${n}::text[])"
        params.append(list(log_filter.wire_names))
    return f"({category_sql}) AND {type_sql}", params
