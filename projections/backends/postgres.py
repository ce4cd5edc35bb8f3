"""Projections in the PostgreSQL database of the log, written by one runner at a time.

The projection that serves keeps its tables where the log's connection puts new tables (its
``search_path``); every projection of that name and its parts share them. A projection
rebuilt online (``ProjectionRunner.rebuild_online``) and its parts have a schema of their own,
named after the rebuild and put first on their connection's ``search_path``, so the same
statements write the rebuild's tables and still read the log's. The swap copies the rebuilt
rows into the serving tables in one transaction; readers see the old rows or the new.

The lead is a session advisory lock held by the runner's own connection, and every commit goes
through that connection: if the leader's process dies or its connection drops, the server
releases the lock and no later write can come from the old leader. A runner whose connection
dropped gets a ProjectionError; its next call connects again, as a runner without the lead.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import asyncpg

from ledger.errors import StoreUnavailableError
from ledger.store.postgres import LOST
from projections import tables
from projections.backends.base import (
    ProjectionBackend,
    ProjectionError,
    ProjectionUnavailableError,
    ProjectionUsageError,
    Snapshot,
    Stored,
    moved,
    rebuilt_home,
)

_SCHEMA_LOCK = 0x6361_7264_7072_6F6A  # "cardproj": creating the tables, once at a time


def lead_key(name: str) -> int:
    """The advisory lock of one projection: a signed 64-bit number derived from its name."""
    digest = hashlib.sha256(f"cardledger projection {name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresProjections(ProjectionBackend):
    def __init__(self, dsn: str, name: str) -> None:
        super().__init__(name)
        self.dsn, self._key = dsn, lead_key(name)
        self.schema = rebuilt_home(name)
        """The schema of a rebuild's tables, or None: those of the log's connection."""
        self._db: asyncpg.Connection | None = None
        self._busy = anyio.Lock()  # a connection runs one query at a time

    @property
    def db(self) -> asyncpg.Connection:
        if self._db is None:
            raise ProjectionUsageError("the projection tables are not open")
        return self._db

    @asynccontextmanager
    async def _session(self, *, leading: bool = False) -> AsyncIterator[asyncpg.Connection]:
        """The connection, one query at a time, and ProjectionError if it is lost. A lost
        connection took the lead with it: writing (``leading``) needs the session that took
        the lead, anything else connects again."""
        async with self._busy:
            try:
                if self.db.is_closed():
                    if leading:
                        raise ProjectionUnavailableError("lost the connection to PostgreSQL, "
                                                         "and the lead "
                                              "with it")
                    self._db = await self._connect()
                yield self.db
            except LOST as exc:
                self.db.terminate()  # so that the next call connects again
                raise ProjectionUnavailableError(
                    f"lost the connection to PostgreSQL: {exc}") from exc
            except BaseException:
                if not self.db.is_closed() and self.db.is_in_transaction():
                    # Cancelled inside a transaction: a cancel scope cancels its rollback
                    # too, and the connection would refuse every transaction after it.
                    self.db.terminate()
                raise

    async def _connect(self) -> asyncpg.Connection:
        db = await asyncpg.connect(self.dsn)
        if self.schema is not None:  # the rebuild's tables first; the log's after them
            path = await db.fetchval("SELECT current_setting('search_path')")
            await db.execute(f"SET search_path TO {_quoted(self.schema)}, {path}")
        return db

    async def open(self) -> None:
        try:
            self._db = await self._connect()
        except LOST as exc:
            raise StoreUnavailableError(f"cannot connect to PostgreSQL: {exc}") from None
        # Each statement in a transaction of its own: even a CREATE INDEX IF NOT EXISTS
        # takes its table's SHARE lock, and several held at once deadlocked with another
        # process's commit to those tables (a rebuild's parts open while others write).
        await self.db.execute("SELECT pg_advisory_lock($1)", _SCHEMA_LOCK)
        try:
            if self.schema is not None:
                await self.db.execute(f"CREATE SCHEMA IF NOT EXISTS {_quoted(self.schema)}")
            for statement in tables.schema("postgres"):
                await self.db.execute(statement)
        finally:
            await self.db.execute("SELECT pg_advisory_unlock($1)", _SCHEMA_LOCK)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()  # ends the session: releases the lead, if held
            self._db = None

    async def try_lead(self) -> bool:
        async with self._session() as db:
            return bool(await db.fetchval("SELECT pg_try_advisory_lock($1)", self._key))

    async def resign(self) -> None:
        if self._db is None or self._db.is_closed():
            return  # a closed session holds no lock
        try:
            async with self._session() as db:
                await db.execute("SELECT pg_advisory_unlock($1)", self._key)
        except ProjectionError:
            pass  # the connection was lost, and the lock with it

    async def checkpoint(self) -> int:
        async with self._session() as db:
            return await self._checkpoint(db)

    async def _checkpoint(self, db: asyncpg.Connection, lock: str = "") -> int:
        found = await db.fetchval(
            f"SELECT position FROM projection_checkpoints WHERE name = $1 {lock}", self.name)
        return int(found or 0)

    async def load(self) -> Stored:
        async with self._session() as db, db.transaction(isolation="repeatable_read",
                                                         readonly=True):
            accounts = await db.fetch("SELECT account_id, facts FROM projection_accounts")
            entities = await db.fetch(tables.open_facts_sql())
            model = await db.fetchval(tables.model_sql("postgres"), self.name)
            quarantined = await db.fetchval("SELECT COUNT(*) FROM quarantined")
            return Stored(await self._checkpoint(db), model, quarantined,
                          [(a, bytes(f)) for a, f in accounts],
                          [(e, k, a, bytes(f)) for e, k, a, f in entities])

    async def commit(self, write: tables.BatchWrite, expected: int, position: int) -> None:
        async with self._session(leading=True) as db, db.transaction():
            found = await self._checkpoint(db, "FOR UPDATE")
            if found != expected:
                raise moved(expected, found)
            for sql, rows in write.statements("postgres"):
                await db.executemany(sql, rows)
            await db.execute(tables.insert_sql("postgres", "projection_checkpoints",
                                               replace=True), self.name, position)

    async def clear(self) -> None:
        async with self._session(leading=True) as db, db.transaction():
            await db.execute(f"TRUNCATE {', '.join(tables.ALL_TABLES)}")
            await db.execute("DELETE FROM projection_checkpoints WHERE name = $1", self.name)

    rebuilds_online = True

    async def has_projection(self, name: str) -> bool:
        schema = rebuilt_home(name)
        if schema is None:
            raise ProjectionUsageError(f"{name!r} is not the name of a rebuild")
        async with self._session() as db:
            return bool(await db.fetchval(
                "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", schema))

    async def adopt(self, rebuilt: ProjectionBackend, expected: int) -> None:
        assert isinstance(rebuilt, PostgresProjections) and rebuilt.dsn == self.dsn
        assert rebuilt.schema is not None and self.schema is None
        source = _quoted(rebuilt.schema)
        async with self._session(leading=True) as db, db.transaction():
            found = await self._checkpoint(db, "FOR UPDATE")
            if found != expected:
                raise moved(expected, found)
            for table in (*tables.ALL_TABLES, "projection_checkpoints"):
                named = table in tables.NAMED_TABLES
                delete, insert = tables.copy_sql(
                    "postgres", table, [c for c, _ in tables.TABLES[table].columns], source,
                    named=named)
                await db.execute(delete, *((self.name,) if named else ()))
                await db.execute(insert, *((self.name, rebuilt.name) if named else ()))

    async def discard(self) -> None:
        if self.schema is None:
            raise ProjectionUsageError("the tables that serve are never discarded")
        async with self._session() as db:
            await db.execute(f"DROP SCHEMA IF EXISTS {_quoted(self.schema)} CASCADE")

    async def merge(self, parts: list[str], position: int, model: int) -> None:
        # The parts wrote their rows into the same tables as this projection: what is left is
        # the bookkeeping of names.
        async with self._session(leading=True) as db, db.transaction():
            found = await self._checkpoint(db, "FOR UPDATE")
            if found != 0:
                raise moved(0, found)
            await self._drop_parts(db, parts)
            await db.execute(tables.insert_sql("postgres", "projection_checkpoints",
                                               replace=True), self.name, position)
            await db.execute(tables.insert_sql("postgres", "projection_models", replace=True),
                             self.name, model)

    async def drop_parts(self, parts: list[str]) -> None:
        async with self._session(leading=True) as db, db.transaction():
            await self._drop_parts(db, parts)

    @staticmethod
    async def _drop_parts(db: asyncpg.Connection, parts: list[str]) -> None:
        for table in tables.NAMED_TABLES:
            await db.execute(f"DELETE FROM {table} WHERE name = ANY($1::text[])", parts)

    async def account_records(self, account_id: str, after: int, upto: int,
                              recorded_by: int) -> list[bytes]:
        async with self._session() as db:
            rows = await db.fetch(tables.account_records_sql("postgres"), account_id, after,
                                  upto, recorded_by)
        return [bytes(r[0]) for r in rows]

    async def settled_facts(self, groups: list[str]) -> list[tuple[str, str, str, bytes]]:
        async with self._session() as db:
            rows = await db.fetch(
                "SELECT entity_id, kind, account_id, facts FROM projection_facts "
                "WHERE open = 0 AND grp = ANY($1::text[])", groups)
        return [(e, k, a, bytes(f)) for e, k, a, f in rows]

    async def holds_of_cards(self, card_ids: list[str]) -> list[tuple[str, str]]:
        async with self._session() as db:
            rows = await db.fetch("SELECT authorisation_id, account_id FROM holds "
                                  "WHERE card_id = ANY($1::text[])", card_ids)
        return [(h, a) for h, a in rows]

    async def account_facts(self, account_id: str) -> list[tuple[str, str, str, bytes]]:
        async with self._session() as db:
            rows = await db.fetch(tables.account_facts_sql("postgres"), account_id)
        return [(e, k, a, bytes(f)) for e, k, a, f in rows]

    async def card_ids(self, account_id: str) -> list[str]:
        async with self._session() as db:
            return [r[0] for r in await db.fetch(tables.card_ids_sql("postgres"), account_id)]

    async def snapshot(self) -> Snapshot:
        async with self._session() as db, db.transaction(isolation="repeatable_read",
                                                         readonly=True):
            rows = {table: {tuple(r) for r in await db.fetch(f"SELECT * FROM {table}")}
                    for table in tables.VIEW_TABLES}
            return Snapshot(await self._checkpoint(db), rows)


def _quoted(identifier: str) -> str:
    """``identifier`` as a quoted SQL identifier (a rebuild's name has a ``~``)."""
    return '"' + identifier.replace('"', '""') + '"'
