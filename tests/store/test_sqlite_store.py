"""The conformance suite on the embedded SQLite backend, plus what only SQLite has."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from ledger import EventStore, NewEvent, open_store
from ledger.errors import StoreUrlError
from ledger.store import limits
from ledger.store.sqlite import SqliteEventStore
from tests.support.sample_events import REGISTRY, note
from tests.support.store_conformance import StoreConformance, StoreFactory


@pytest.fixture
def store_factory(tmp_path: Path) -> StoreFactory:
    @asynccontextmanager
    async def factory(**options: Any) -> AsyncIterator[EventStore]:
        options.setdefault("registry", REGISTRY)
        async with open_store(f"sqlite:///{tmp_path}/ledger.db", **options) as store:
            yield store

    return factory


class TestSqliteConformance(StoreConformance):
    pass


def test_urls_and_paths(tmp_path: Path) -> None:
    plain = open_store(tmp_path / "a.db", registry=REGISTRY)
    relative = open_store("sqlite:///rel.db", registry=REGISTRY)
    absolute = open_store(f"sqlite:///{tmp_path}/b.db?synchronous=normal", registry=REGISTRY)
    assert isinstance(plain, SqliteEventStore) and plain.path == tmp_path / "a.db"
    assert isinstance(relative, SqliteEventStore) and str(relative.path) == "rel.db"
    assert isinstance(absolute, SqliteEventStore) and absolute.synchronous == "normal"
    assert absolute.path == tmp_path / "b.db"
    for bad in ("sqlite://", "sqlite:///:memory:", "sqlite://host/x.db",
                f"sqlite:///{tmp_path}/c.db?cache=big", "mysql://x/y"):
        with pytest.raises(StoreUrlError):
            open_store(bad, registry=REGISTRY)


@pytest.fixture
def thread_hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the functions the store runs in a worker thread, in order."""
    hops: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(function, "__name__", repr(function)))
        return await run_sync(function, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    return hops


@pytest.mark.anyio
async def test_an_append_alone_is_committed_without_a_thread_hop(
    tmp_path: Path, thread_hops: list[str]
) -> None:
    async with open_store(tmp_path / "a.db", registry=REGISTRY) as store:
        thread_hops.clear()  # opening the writer is one
        for i in range(20):
            result = await store.append("note-alone", [NewEvent(payload=note(f"n{i}"))])
            assert result.positions == (i + 1,)
        assert thread_hops == []
        assert (await store.verify()).ok


@pytest.mark.anyio
async def test_a_task_that_only_appends_still_lets_waiting_tasks_run(tmp_path: Path) -> None:
    """An inline commit with no other task ready skips its turn of the event loop; a timer
    (like a socket) is only seen on a turn, so one is still taken every millisecond or so."""
    appended, woke_at = 0, []

    async def sleeper() -> None:
        await anyio.sleep(0.002)
        woke_at.append(appended)

    async with open_store(tmp_path / "a.db", registry=REGISTRY) as store:
        async with anyio.create_task_group() as group:
            group.start_soon(sleeper)
            await anyio.lowlevel.checkpoint()  # the sleeper now waits on its timer
            for i in range(1_000):
                await store.append("note-busy", [NewEvent(payload=note(f"b{i}"))])
                appended += 1
        assert woke_at and woke_at[0] < 1_000
        assert (await store.verify()).ok


@pytest.mark.anyio
async def test_on_a_slow_disk_commits_go_to_the_writer_thread_and_come_back(
    tmp_path: Path, thread_hops: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = SqliteEventStore._commit_planned
    slow = True

    def disk(self: SqliteEventStore, *args: Any) -> Any:
        if slow:
            time.sleep(limits.INLINE_COMMIT_SECONDS * 3)
        return commit(self, *args)

    monkeypatch.setattr(SqliteEventStore, "_commit_planned", disk)
    # A threshold well above what a real commit takes on any disk this runs on (a loaded
    # machine's fsync can take more than the 1 ms the store uses), so that only the slow
    # disk made here is slow.
    monkeypatch.setattr(limits, "INLINE_COMMIT_SECONDS", 0.01)
    async with open_store(tmp_path / "a.db", registry=REGISTRY) as store:
        thread_hops.clear()
        for i in range(10):
            await store.append("note-slow", [NewEvent(payload=note(f"s{i}"))])
        # A few commits are made inline before the average says the disk is slow.
        assert 5 <= thread_hops.count("_commit_group_now") < 10
        slow = False
        thread_hops.clear()
        for i in range(40):
            await store.append("note-fast", [NewEvent(payload=note(f"f{i}"))])
        # Commits in the thread keep the average current: it falls, and inline resumes.
        assert 0 < thread_hops.count("_commit_group_now") < 20
        thread_hops.clear()
        for i in range(10):
            await store.append("note-fast", [NewEvent(payload=note(f"g{i}"))])
        assert thread_hops == []
        assert await store.head() == 60 and (await store.verify()).ok


def test_a_log_written_before_the_account_column_gets_it_when_opened(tmp_path: Path) -> None:
    """Schema 3 had no account column: opening fills it in from the records, and the
    append-only triggers still hold afterwards."""
    import sqlite3
    from decimal import Decimal

    from ledger.store import AccountRange
    from tests.support.sample_events import Deposited

    path = tmp_path / "ledger.db"

    async def fill() -> None:
        async with open_store(path, registry=REGISTRY) as store:
            for i in range(1200):  # more than one batch of the migration
                await store.append(f"account-{i % 3}", [NewEvent(payload=Deposited(
                    account_id=f"acc-{i % 3}", amount=Decimal(i)))])
            await store.append("note-x", [NewEvent(payload=note("x"))])

    async def read() -> tuple[list[tuple[str | None, int]], int]:
        async with open_store(path, registry=REGISTRY) as store:
            found = [e async for b in store.read_accounts(AccountRange("acc-1", "acc-1"),
                                                          upto=await store.head()) for e in b]
            return await store.account_sizes(await store.head()), len(found)

    anyio.run(fill)
    db = sqlite3.connect(path, isolation_level=None)
    for statement in ("DROP INDEX events_account", "ALTER TABLE events DROP COLUMN account_id",
                      "PRAGMA user_version = 3"):
        db.execute(statement)
    db.close()
    assert anyio.run(read) == ([(None, 1), ("acc-0", 400), ("acc-1", 400), ("acc-2", 400)],
                               400)
    db = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE events SET account_id = 'acc-9' WHERE position = 1")
