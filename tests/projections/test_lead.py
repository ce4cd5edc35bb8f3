"""A background task's lead (``projections.backends.lead``), on both backends: one holder at a
time, across processes' handles; released on ``release`` or when the holder's session ends; and
a standby's try is one statement on its open connection, never the projection's DDL."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from ledger import open_store
from projections.backends.lead import Lead

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return str(request.getfixturevalue("postgres_database"))


async def test_one_holder_at_a_time_and_a_standby_takes_over_on_release(url: str) -> None:
    async with open_store(url) as store:
        leader, standby, other_task = (Lead(store, "sweeper"), Lead(store, "sweeper"),
                                       Lead(store, "pull"))
        try:
            assert await leader.take() and await leader.take()  # held: taking again is a no-op
            assert not await standby.take() and not await standby.take()
            assert await other_task.take()  # another task's lead is another lock
            await leader.release()
            assert await standby.take() and not await leader.take()
        finally:
            for lead in (leader, standby, other_task):
                await lead.release()


async def test_a_standby_on_postgresql_tries_with_one_statement_on_one_connection(
        postgres_database: str) -> None:
    database = postgres_database.rsplit("/", 1)[1]
    async with open_store(postgres_database) as store:
        leader, standby = Lead(store, "sweeper"), Lead(store, "sweeper")
        watcher = await asyncpg.connect(postgres_database)
        try:
            assert await leader.take()
            assert not await standby.take()  # connects once
            connections = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database)
            tables = await watcher.fetchval(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'balances'")
            assert tables == 0, "a lead must not create the projection's tables"
            for _ in range(20):
                assert not await standby.take()
            after = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database)
            assert after == connections, "each try reuses the standby's one connection"
        finally:
            await watcher.close()
            await leader.release()
            await standby.release()


async def test_a_lead_whose_session_ended_is_no_longer_held(postgres_database: str) -> None:
    async with open_store(postgres_database) as store:
        leader, standby = Lead(store, "outbox"), Lead(store, "outbox")
        try:
            assert await leader.take()
            assert leader._db is not None
            leader._db.terminate()  # the connection drops: the server releases the lock
            assert await standby.take()
            assert not await leader.take()
        finally:
            await leader.release()
            await standby.release()
