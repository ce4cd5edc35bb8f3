"""Online rebuilds (``ProjectionRunner.rebuild_online``): the projection is recomputed beside
the one that serves, and swapped in at the head in one transaction."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from ledger import EventStore, NewEvent, open_store
from ledger.domain.programme import stream_for
from ledger.events import DomainEvent, FundsDeposited
from projections import ProjectionRunner
from projections.backends import REBUILD_SUFFIX, ProjectionConflictError, backend_for
from projections.backends.sqlite import projection_file
from projections.replay import drift, replay
from projections.runner import LeadElsewhereError
from tests.support.known_history import day, known_history

pytestmark = pytest.mark.anyio
SHADOW = f"ledger{REBUILD_SUFFIX}"


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "l.db")
    return str(request.getfixturevalue("postgres_database"))


def deposits(count: int, first: int = 0) -> list[DomainEvent]:
    return [FundsDeposited(account_id=f"a{n % 7}", amount=Decimal(n % 50 + 1), currency="EUR",
                           chain_transaction=f"eip155:1:0x{n:x}", at=day(50 + n / 1000))
            for n in range(first, first + count)]


async def record(store: EventStore, events: list[DomainEvent]) -> None:
    for event in events:
        await store.append(stream_for(event), [NewEvent(payload=event)])


def served(log: Path) -> tuple[int, list[Any]]:
    """What a reader of the projection's SQLite file sees, read by plain sqlite3 (another
    connection): the checkpoint and the balances, in one read transaction."""
    db = sqlite3.connect(projection_file(log, "ledger"), isolation_level=None)
    try:
        db.execute("BEGIN")
        (position,) = db.execute("SELECT position FROM projection_checkpoints WHERE name = "
                                 "'ledger'").fetchone()
        return position, sorted(db.execute("SELECT * FROM balances"))
    finally:
        db.close()


async def served_by_postgres(dsn: str) -> tuple[int, list[Any]]:
    """``served`` for the tables that serve on PostgreSQL, read on a connection of its own."""
    db = await asyncpg.connect(dsn)
    try:
        async with db.transaction(isolation="repeatable_read", readonly=True):
            position = await db.fetchval("SELECT position FROM projection_checkpoints WHERE "
                                         "name = 'ledger'")
            return position, sorted(tuple(r) for r in await db.fetch("SELECT * FROM balances"))
    finally:
        await db.close()


def kill_after_its_first_commit(url: str) -> None:
    """Run ``rebuild_child`` on the log and SIGKILL it once its rebuild has committed once."""
    with subprocess.Popen([sys.executable, "-m", "tests.projections.rebuild_child", url],
                          stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": os.getcwd()}) as child:
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.startswith("committed"), line
        finally:
            child.send_signal(signal.SIGKILL)


async def the_same_as_a_replay(store: EventStore, runner: ProjectionRunner) -> None:
    """The runner's tables are at the head and hold what a replay of the log computes."""
    stored = await runner.backend.snapshot()
    assert stored.position == await store.head()
    assert drift(await replay(store.read_batches()), stored) == []


async def test_an_online_rebuild_swaps_in_the_same_tables_never_half_built(
        tmp_path: Path) -> None:
    log = tmp_path / "l.db"
    async with open_store(log) as store, ProjectionRunner(
            store, batch_size=7, commit_every=20) as runner:
        await record(store, [*known_history(), *deposits(150)])
        await runner.catch_up()
        before = await runner.backend.snapshot()
        seen_before = served(log)
        checks = []

        def mid_rebuild(_: int) -> None:  # each commit of the rebuild's own tables
            checks.append(served(log) == seen_before)

        runner.on_commit = mid_rebuild
        assert await runner.rebuild_online() == await store.head()
        assert len(checks) > 5 and all(checks)  # the readers saw the old tables throughout
        assert await runner.backend.snapshot() == before
        assert not projection_file(log, SHADOW).exists()
        # The runner goes on from the swapped tables, and a restart loads the same.
        await record(store, deposits(5, first=500))
        await runner.catch_up()
        await the_same_as_a_replay(store, runner)


async def test_an_online_rebuild_on_postgresql_has_a_schema_of_its_own_until_the_swap(
        postgres_database: str) -> None:
    async with open_store(postgres_database) as store, ProjectionRunner(
            store, batch_size=7, commit_every=20) as runner:
        await record(store, [*known_history(), *deposits(150)])
        await runner.catch_up()
        before = await runner.backend.snapshot()
        seen_before = await served_by_postgres(postgres_database)
        commits: list[int] = []
        reads: list[tuple[int, bool]] = []  # commits of the rebuild so far; the same rows?
        runner.on_commit = commits.append

        async def read_meanwhile() -> None:  # another connection, reading as it rebuilds
            while True:
                seen = await served_by_postgres(postgres_database)
                reads.append((len(commits), seen == seen_before))

        async with anyio.create_task_group() as group:
            group.start_soon(read_meanwhile)
            assert await runner.rebuild_online() == await store.head()
            group.cancel_scope.cancel()
        assert len(commits) > 5 and all(same for _, same in reads)
        assert any(0 < n < len(commits) for n, _ in reads)  # some, half-way through
        assert await runner.backend.snapshot() == before
        await record(store, deposits(5, first=500))
        await runner.rebuild_online(workers=2)  # its parts write in the rebuild's schema
        await the_same_as_a_replay(store, runner)
        assert not await runner.rebuild_left_off()
        db = await asyncpg.connect(postgres_database)
        try:
            assert await db.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE "
                                  "'%~%'") == []  # the rebuild's schema is gone
        finally:
            await db.close()


async def test_what_is_recorded_during_an_online_rebuild_is_counted_once(url: str) -> None:
    async with open_store(url) as store, ProjectionRunner(
            store, batch_size=5, commit_every=10) as runner:
        await record(store, [*known_history(), *deposits(200)])
        await runner.catch_up()
        started_at = await store.head()
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(runner.follow)

                async def keep_recording() -> None:
                    for event in deposits(60, first=1_000):
                        await record(store, [event])

                group.start_soon(keep_recording)
                swapped_at = await runner.rebuild_online()
                await anyio.sleep(0.05)
                group.cancel_scope.cancel()
        assert swapped_at > started_at  # some were recorded while it rebuilt
        await runner.catch_up()
        await the_same_as_a_replay(store, runner)


async def test_one_online_rebuild_at_a_time(url: str) -> None:
    async with open_store(url) as store, ProjectionRunner(store) as runner:
        await record(store, known_history())
        await runner.catch_up()
        other = backend_for(store, SHADOW)  # another rebuild's lead
        await other.open()
        try:
            assert await other.try_lead()
            with pytest.raises(ProjectionConflictError, match="running already"):
                await runner.rebuild_online(wait=False)
        finally:
            await other.close()
        assert await runner.rebuild_online(wait=False) == await store.head()


async def test_an_online_rebuild_needs_the_lead(url: str) -> None:
    async with open_store(url) as store, ProjectionRunner(store) as runner:
        await record(store, known_history())
        leader = backend_for(store, "ledger")  # a runner of another process
        await leader.open()
        try:
            assert await leader.try_lead()
            with pytest.raises(LeadElsewhereError, match="leads the projection"):
                await runner.rebuild_online(wait=False)
            # Built beside, for the leader to swap in: it needs only the rebuild's lead.
            assert await runner.rebuild_beside(wait=False) == await store.head()
            assert await runner.rebuild_left_off()
        finally:
            await leader.close()
        assert await runner.rebuild_online(wait=False) == await store.head()
        assert not await runner.rebuild_left_off()
        await the_same_as_a_replay(store, runner)


async def test_a_rebuild_killed_half_way_leaves_the_tables_serving_and_resumes(
        url: str) -> None:
    async with open_store(url) as store:
        await record(store, [*known_history(), *deposits(300)])
        head = await store.head()
        async with ProjectionRunner(store) as runner:
            await runner.catch_up()
            before = await runner.backend.snapshot()
        await anyio.to_thread.run_sync(kill_after_its_first_commit, url)
        serving = backend_for(store, "ledger")  # read as any reader reads: not leading
        shadow = backend_for(store, SHADOW)
        await serving.open()
        await shadow.open()
        try:
            assert await serving.snapshot() == before  # the old tables, whole
            left_at = await shadow.checkpoint()
        finally:
            await serving.close()
            await shadow.close()
        assert 0 < left_at < head
        async with ProjectionRunner(store, commit_every=50) as runner:
            applied: list[int] = []
            runner.on_commit = applied.append
            assert await runner.rebuild_online() == head
            assert sum(applied) == head - left_at  # resumed where it stopped
            assert await runner.backend.snapshot() == before


async def test_a_serving_ledger_resumes_a_rebuild_left_half_way(url: str) -> None:
    from adapters.service.card_ledger import CardLedger

    async with open_store(url) as store:
        await record(store, [*known_history(), *deposits(300)])
    await anyio.to_thread.run_sync(kill_after_its_first_commit, url)
    async with CardLedger.open(url) as ledger:
        runner = ledger.runner
        assert await runner.rebuild_left_off()
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(lambda: ledger.run_background(resume_every=0.05,
                                                               sweep_every=3600))
                while await runner.rebuild_left_off():  # noqa: ASYNC110 (tables, not an event)
                    await anyio.sleep(0.02)
                group.cancel_scope.cancel()
        await runner.catch_up()
        await the_same_as_a_replay(ledger.store, runner)


async def outdate(url: str) -> None:
    """Mark the serving tables as another version of the model left them, with an index
    of the accounts' events this version cannot use (here: none at all)."""
    from projections.runner import MODEL_VERSION

    older = "UPDATE projection_models SET version = $1 WHERE name = 'ledger'"
    unusable = "DELETE FROM account_events"
    if url.startswith("postgresql"):
        db = await asyncpg.connect(url)
        try:
            await db.execute(older, MODEL_VERSION - 1)
            await db.execute(unusable)
        finally:
            await db.close()
        return
    with sqlite3.connect(projection_file(Path(url), "ledger")) as raw:
        raw.execute(older.replace("$1", "?"), (MODEL_VERSION - 1,))
        raw.execute(unusable)


async def test_tables_of_another_model_version_are_rebuilt_online_while_answering(
        url: str) -> None:
    from adapters.service.card_ledger import CardLedger

    async with open_store(url) as store, ProjectionRunner(store) as runner:
        await record(store, [*known_history(), *deposits(400)])
        await runner.catch_up()
    async with CardLedger.open(url) as ledger:
        before = await ledger.balances()
    await outdate(url)
    async with CardLedger.open(url) as ledger:
        runner = ledger.runner
        assert runner.reads_the_log and not runner.account_ids()
        assert await ledger.balances() == before  # answered from the log, no rebuild yet
        assert any("another model version" in p for p in ledger.problems())
        runner.commit_every = 25  # many commits of the rebuild, with answers between them
        rebuilding = anyio.Event()
        runner.on_commit = lambda _: rebuilding.set()  # the rebuild's runner takes it
        answered_meanwhile = []
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(lambda: ledger.run_background(resume_every=0.05,
                                                               sweep_every=3600))
                await rebuilding.wait()
                while runner.reads_the_log:
                    answered_meanwhile.append(await ledger.balances() == before)
                # What is recorded while it rebuilds is answered at once, and is in the
                # tables swapped in: the late deposit of 1 EUR to a4.
                await record(ledger.store, deposits(1, first=900))
                a4 = [b for b in await ledger.balances("a4") if b.currency == "EUR"]
                old_a4 = [b for b in before if b.account_id == "a4" and b.currency == "EUR"]
                assert a4[0].posted == old_a4[0].posted + 1
                # The sweep waits for the swap; its expiries recorded, nothing else writes.
                metrics = ledger.metrics.registry
                while not metrics.get_sample_value(  # noqa: ASYNC110 (a counter, not an event)
                        "cardledger_sweeper_runs_total"):
                    await anyio.sleep(0.02)
                group.cancel_scope.cancel()
        assert answered_meanwhile and all(answered_meanwhile)
        assert not runner.reads_the_log and not ledger.problems()
        await runner.catch_up()
        await the_same_as_a_replay(ledger.store, runner)
        assert not await runner.rebuild_left_off()
