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
import pytest

from ledger import EventStore, NewEvent, open_store
from ledger.domain.programme import stream_for
from ledger.events import DomainEvent, FundsDeposited
from projections import ProjectionRunner
from projections.backends import ProjectionConflictError
from projections.backends.sqlite import SqliteProjections, projection_file
from projections.runner import REBUILD_SUFFIX, LeadElsewhereError
from tests.support.known_history import day, known_history

pytestmark = pytest.mark.anyio
SHADOW = f"ledger{REBUILD_SUFFIX}"


def deposits(count: int, first: int = 0) -> list[DomainEvent]:
    return [FundsDeposited(account_id=f"a{n % 7}", amount=Decimal(n % 50 + 1), currency="EUR",
                           chain_transaction=f"eip155:1:0x{n:x}", at=day(50 + n / 1000))
            for n in range(first, first + count)]


async def record(store: EventStore, events: list[DomainEvent]) -> None:
    for event in events:
        await store.append(stream_for(event), [NewEvent(payload=event)])


def served(log: Path) -> tuple[int, list[Any]]:
    """What a reader of the projection's file sees, read by plain sqlite3 (another
    connection): the checkpoint and the balances, in one read transaction."""
    db = sqlite3.connect(projection_file(log, "ledger"), isolation_level=None)
    try:
        db.execute("BEGIN")
        (position,) = db.execute("SELECT position FROM projection_checkpoints WHERE name = "
                                 "'ledger'").fetchone()
        return position, sorted(db.execute("SELECT * FROM balances"))
    finally:
        db.close()


def kill_after_its_first_commit(log: Path) -> None:
    """Run ``rebuild_child`` on the log and SIGKILL it once its rebuild has committed once."""
    with subprocess.Popen([sys.executable, "-m", "tests.projections.rebuild_child", str(log)],
                          stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": os.getcwd()}) as child:
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.startswith("committed"), line
        finally:
            child.send_signal(signal.SIGKILL)


async def clean_rows(store: EventStore) -> dict[str, set[tuple[Any, ...]]]:
    """The view tables as a projection built from nothing makes them."""
    async with ProjectionRunner(store, name="reference") as reference:
        await reference.catch_up()
        return (await reference.backend.snapshot()).rows


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
        assert (await runner.backend.snapshot()).rows == await clean_rows(store)


async def test_what_is_recorded_during_an_online_rebuild_is_counted_once(
        tmp_path: Path) -> None:
    async with open_store(tmp_path / "l.db") as store, ProjectionRunner(
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
        assert runner.position == await store.head()
        assert (await runner.backend.snapshot()).rows == await clean_rows(store)


async def test_one_online_rebuild_at_a_time(tmp_path: Path) -> None:
    log = tmp_path / "l.db"
    async with open_store(log) as store, ProjectionRunner(store) as runner:
        await record(store, known_history())
        await runner.catch_up()
        other = SqliteProjections(log, SHADOW)  # another rebuild's lead
        await other.open()
        try:
            assert await other.try_lead()
            with pytest.raises(ProjectionConflictError, match="running already"):
                await runner.rebuild_online(wait=False)
        finally:
            await other.close()
        assert await runner.rebuild_online(wait=False) == await store.head()


async def test_an_online_rebuild_needs_the_lead(tmp_path: Path) -> None:
    log = tmp_path / "l.db"
    async with open_store(log) as store, ProjectionRunner(store) as runner:
        await record(store, known_history())
        leader = SqliteProjections(log, "ledger")  # a runner of another process
        await leader.open()
        try:
            assert await leader.try_lead()
            with pytest.raises(LeadElsewhereError, match="leads the projection"):
                await runner.rebuild_online(wait=False)
            # Built beside, for the leader to swap in: it needs only the rebuild's lead.
            assert await runner.rebuild_beside(wait=False) == await store.head()
            assert runner.rebuild_left_off
        finally:
            await leader.close()
        assert await runner.rebuild_online(wait=False) == await store.head()
        assert not runner.rebuild_left_off


async def test_a_rebuild_killed_half_way_leaves_the_tables_serving_and_resumes(
        tmp_path: Path) -> None:
    log = tmp_path / "l.db"
    async with open_store(log) as store:
        await record(store, [*known_history(), *deposits(300)])
        head = await store.head()
        async with ProjectionRunner(store) as runner:
            await runner.catch_up()
            before = await runner.backend.snapshot()
    seen_before = served(log)
    await anyio.to_thread.run_sync(kill_after_its_first_commit, log)
    assert served(log) == seen_before  # the old tables, whole
    async with open_store(log) as store:
        shadow = SqliteProjections(log, SHADOW)
        await shadow.open()
        left_at = await shadow.checkpoint()
        await shadow.close()
        assert 0 < left_at < head
        async with ProjectionRunner(store, commit_every=50) as runner:
            applied: list[int] = []
            runner.on_commit = applied.append
            assert await runner.rebuild_online() == head
            assert sum(applied) == head - left_at  # resumed where it stopped
            assert await runner.backend.snapshot() == before


async def test_a_serving_ledger_resumes_a_rebuild_left_half_way(tmp_path: Path) -> None:
    from adapters.service.card_ledger import CardLedger

    log = tmp_path / "l.db"
    async with open_store(log) as store:
        await record(store, [*known_history(), *deposits(300)])
    await anyio.to_thread.run_sync(kill_after_its_first_commit, log)
    async with CardLedger.open(log) as ledger:
        runner = ledger.runner
        assert runner.rebuild_left_off
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(lambda: ledger.run_background(resume_every=0.05))
                while runner.rebuild_left_off:  # noqa: ASYNC110 (a file, not an event)
                    await anyio.sleep(0.02)
                group.cancel_scope.cancel()
        assert not projection_file(log, SHADOW).exists()
        await runner.catch_up()
        assert (await runner.backend.snapshot()).rows == await clean_rows(ledger.store)
