"""The projections on both backends (SQLite and PostgreSQL), and one writer at a time: a
runner that does not lead never writes, and a standby takes over when the leader dies."""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from ledger import EventStore, NewEvent, open_store
from ledger.domain.programme import stream_for
from ledger.events import DomainEvent, FundsDeposited
from projections import ProjectionRunner, view
from projections.backends import ProjectionError
from projections.backends.postgres import PostgresProjections
from projections.replay import drift, replay
from projections.tables import BatchWrite
from tests.support.histories import books
from tests.support.known_history import day, known_history

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return str(request.getfixturevalue("postgres_database"))


def deposits(first: int, count: int) -> list[DomainEvent]:
    return [FundsDeposited(account_id=f"a{n % 3}", amount=Decimal(n) / 100, currency="EUR",
                           chain_transaction=f"eip155:324:0x{n:064x}", at=day(n / 1000))
            for n in range(first, first + count)]


async def append(store: EventStore, events: list[DomainEvent]) -> int:
    for event in events:
        await store.append(stream_for(event), [NewEvent(payload=event)])
    return await store.head()


@asynccontextmanager
async def ledger_at(url: str, events: list[DomainEvent]) -> AsyncIterator[EventStore]:
    async with open_store(url, poll_interval=0.02) as store:
        await append(store, events)
        yield store


async def no_drift(store: EventStore, runner: ProjectionRunner) -> None:
    stored = await runner.backend.snapshot()
    assert stored.position == await store.head()
    assert drift(await replay(store.read_batches()), stored) == []


async def test_the_projection_restarts_from_its_checkpoint_and_equals_a_replay(url: str) -> None:
    events = known_history() + deposits(0, 20)
    async with ledger_at(url, events) as store:
        async with ProjectionRunner(store, batch_size=4) as runner, runner._lead():
            async for batch in store.read_batches(0, batch_size=4):
                await runner._apply(batch)  # a first runner stops after one batch
                break
        async with ProjectionRunner(store, batch_size=4) as runner:
            assert runner.position == 4
            assert await runner.catch_up() == len(events)
            await no_drift(store, runner)
            expected = books(events)
            assert {a: await runner.stored_view(a) for a in runner.account_ids()} == {
                a: view(b, None) for a, b in expected.items()}
            assert await runner.view_as_of("a1", day(35)) == view(expected["a1"], day(35))
            before = await runner.backend.snapshot()
            assert await runner.rebuild() == len(events)
            assert await runner.backend.snapshot() == before


async def test_a_runner_that_does_not_lead_takes_the_leaders_state_and_writes_nothing(
    url: str,
) -> None:
    async with ledger_at(url, known_history()) as store, ProjectionRunner(
            store, lead_poll=0.02) as leader, ProjectionRunner(store, lead_poll=0.02) as other:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:
                group.start_soon(leader.follow)
                head = await append(store, deposits(0, 5))
                await leader.wait_for(head)
                assert leader.leading
                assert await other.catch_up(wait=False) == head and not other.leading
                assert await other.stored_view("a1") == await leader.stored_view("a1")
                with anyio.move_on_after(0.3) as waiting:
                    await other.catch_up()  # waits for the lead while the leader follows
                assert waiting.cancelled_caught and not other.leading
                group.cancel_scope.cancel()
            assert not leader.leading
            head = await append(store, deposits(5, 5))
            assert await other.catch_up() == head and not other.leading
            await no_drift(store, other)


async def test_a_commit_from_a_stale_checkpoint_writes_nothing(url: str) -> None:
    async with ledger_at(url, known_history()) as store, ProjectionRunner(store) as runner:
        head = await runner.catch_up()
        before = await runner.backend.snapshot()
        write = BatchWrite()
        write.upserts["balances"].append(("a9", "EUR", "1", "0", "0", "1", "0", "1"))
        with pytest.raises(ProjectionError, match="another runner"):
            await runner.backend.commit(write, head - 1, head + 1)
        assert await runner.backend.snapshot() == before
        assert await runner.backend.checkpoint() == head


@pytest.mark.slow
async def test_a_standby_takes_over_when_the_leader_is_killed(url: str) -> None:
    async with ledger_at(url, known_history()) as store, ProjectionRunner(
            store, lead_poll=0.05) as standby:
        with anyio.fail_after(60):
            async with await anyio.open_process(
                    [sys.executable, "-m", "tests.projections.runner_child", url],
                    cwd=ROOT) as leader, anyio.create_task_group() as group:
                assert leader.stdout is not None
                assert (await leader.stdout.receive()).strip() == b"leading"
                group.start_soon(standby.follow)
                head = await append(store, deposits(0, 30))
                while await standby.backend.checkpoint() < head:  # noqa: ASYNC110 (the leader)
                    await anyio.sleep(0.02)
                assert not standby.leading and standby.position < head
                leader.send_signal(signal.SIGKILL)
                await leader.wait()
                head = await append(store, deposits(30, 30))
                await standby.wait_for(head)  # took the lead, loaded, caught up
                assert standby.leading
                group.cancel_scope.cancel()
        await no_drift(store, standby)


async def test_a_failed_commit_loses_nothing_and_the_next_catch_up_writes_it_all(
    url: str,
) -> None:
    async with ledger_at(url, known_history()) as store, ProjectionRunner(store) as runner:
        await runner.catch_up()
        head = await append(store, deposits(0, 10))
        commit = runner.backend.commit

        async def failing(*args: Any) -> None:
            raise OSError("disk full")  # after the books took the batch in

        runner.backend.commit = failing  # type: ignore[method-assign, assignment]
        with pytest.raises(OSError, match="disk full"):
            await runner.catch_up()
        runner.backend.commit = commit  # type: ignore[method-assign]
        assert await runner.catch_up() == head
        await no_drift(store, runner)
        assert {a: await runner.stored_view(a) for a in runner.account_ids()} == {
            a: view(b, None) for a, b in books(known_history() + deposits(0, 10)).items()}


async def test_a_leader_that_loses_its_connection_hands_over_and_comes_back_as_standby(
    postgres_database: str,
) -> None:
    import asyncpg

    async with ledger_at(postgres_database, known_history()) as store, ProjectionRunner(
            store, lead_poll=0.02) as first, ProjectionRunner(store, lead_poll=0.02) as second:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(partial(first.follow, retry_after=0.05))
                head = await append(store, deposits(0, 5))
                await first.wait_for(head)
                group.start_soon(partial(second.follow, retry_after=0.05))
                assert isinstance(first.backend, PostgresProjections)
                admin = await asyncpg.connect(postgres_database)
                try:  # what a network failure or a server restart does to a session
                    await admin.execute("SELECT pg_terminate_backend($1)",
                                        first.backend.db.get_server_pid())
                finally:
                    await admin.close()
                head = await append(store, deposits(5, 5))
                await second.wait_for(head)
                assert second.leading and not first.leading
                head = await append(store, deposits(10, 5))
                await second.wait_for(head)
                assert first.position < head  # a standby now: it writes nothing
                group.cancel_scope.cancel()
        await no_drift(store, second)
