"""The conformance suite on PostgreSQL, unchanged; and many writer processes at once."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from ledger import EventStore, open_store
from ledger.store.postgres import PostgresEventStore
from tests.support.sample_events import REGISTRY
from tests.support.store_conformance import StoreConformance, StoreFactory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store_factory(postgres_database: str) -> StoreFactory:
    @asynccontextmanager
    async def factory(**options: Any) -> AsyncIterator[EventStore]:
        options.setdefault("registry", REGISTRY)
        async with open_store(postgres_database, **options) as store:
            yield store

    return factory


class TestPostgresConformance(StoreConformance):
    pass


def test_postgresql_urls_open_the_postgres_backend() -> None:
    assert isinstance(open_store("postgresql://u@127.0.0.1:5432/db", registry=REGISTRY),
                      PostgresEventStore)


@pytest.mark.anyio
@pytest.mark.slow
async def test_concurrent_writer_processes_and_a_subscriber_see_every_event_once(
    postgres_database: str,
) -> None:
    """Several processes append at once for a while, each printing what was acknowledged,
    while a subscriber follows the log: every acknowledged event is seen exactly once, in
    position order, with no gap."""
    writers, seconds = 4, 3.0
    acknowledged: dict[str, int] = {}
    seen: list[tuple[int, str]] = []
    async with open_store(postgres_database, registry=REGISTRY, poll_interval=0.05) as store:

        async def follow() -> None:
            async for batch in store.subscribe(0):
                seen.extend((e.position, str(e.event_id)) for e in batch)

        async def writer(n: int) -> None:
            async with await anyio.open_process(
                    [sys.executable, "-m", "tests.store.pg_writer", postgres_database, str(n),
                     str(seconds)], cwd=ROOT) as process:
                assert process.stdout is not None
                output = b""
                async for chunk in process.stdout:
                    output += chunk
                assert await process.wait() == 0
            for line in output.decode().splitlines():
                event_id, position = line.split()
                acknowledged[event_id] = int(position)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(follow)  # following while the writers write
                async with anyio.create_task_group() as writing:
                    for n in range(writers):
                        writing.start_soon(writer, n)
                head = await store.head()
                while not seen or seen[-1][0] < head:  # noqa: ASYNC110 (caught up: then stop)
                    await anyio.sleep(0.05)
                group.cancel_scope.cancel()
        assert (await store.verify()).ok
    positions = [p for p, _ in seen]
    assert positions == list(range(1, len(seen) + 1))  # in order, no gap, nothing twice
    assert len(acknowledged) > writers * 50
    by_id = {event_id: position for position, event_id in seen}
    assert len(by_id) == len(seen)
    for event_id, position in acknowledged.items():
        assert by_id[event_id] == position


@pytest.mark.anyio
async def test_two_receivers_on_one_postgres_ledger_count_nothing_twice(
    postgres_database: str,
) -> None:
    """Two service instances (two stores, observers and projection runners) receive the same
    deliveries, each twice, at the same time: every report is recorded once, one runner
    writes the projections, and they equal a replay of the log."""
    from adapters.processor.deliveries import parse_delivery
    from adapters.processor.observer import Observer
    from ledger.domain.programme import Programme
    from ledger.events import DomainEvent
    from ledger.testing import webhook_payload
    from projections import ProjectionRunner
    from projections.replay import drift, replay
    from tests.support.known_history import known_history_snapshots

    bodies = [webhook_payload(s, uuid.UUID(int=n + 1))
              for n, s in enumerate(known_history_snapshots())]
    async with open_store(postgres_database, poll_interval=0.02) as first, \
            open_store(postgres_database, poll_interval=0.02) as second, \
            ProjectionRunner(first, lead_poll=0.02) as one, \
            ProjectionRunner(second, lead_poll=0.02) as other:

        async def receive(store: EventStore, order: list[bytes]) -> None:
            observer = Observer(store)
            for body in order:
                delivery = parse_delivery(body)
                await observer.record(delivery.snapshot, delivery=delivery)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as following:
                following.start_soon(one.follow)
                following.start_soon(other.follow)
                async with anyio.create_task_group() as group:
                    for store, order in ((first, bodies), (second, bodies[::-1]),
                                         (first, bodies[::-1]), (second, bodies)):
                        group.start_soon(receive, store, order)
                head = await first.head()
                leader = one if one.leading else other
                await leader.wait_for(head)
                assert [one.leading, other.leading].count(True) == 1
                following.cancel_scope.cancel()
        stored = await leader.backend.snapshot()
        assert stored.position == head
        assert drift(await replay(first.read_batches()), stored) == []
        events = [e async for e in first.read_all()]
        assert (await first.verify()).ok
    markers = [e for e in events if e.type == "ObservationReceived"]
    assert len(markers) == len(bodies)  # one per delivery, whoever received it first
    replayed, in_order = Programme(), Programme()
    replayed.apply_all(e.payload for e in events if isinstance(e.payload, DomainEvent))
    for snapshot in known_history_snapshots():
        in_order.observe(snapshot)
    assert replayed.summary() == in_order.summary()


@pytest.mark.anyio
async def test_a_log_written_before_the_account_column_gets_it_when_opened(
        postgres_database: str) -> None:
    """Schema 3 had no account column: opening fills it in from the records, and the log
    stays append-only afterwards."""
    import asyncpg

    from ledger import NewEvent
    from ledger.store import AccountRange
    from tests.support.sample_events import Deposited, note

    async with open_store(postgres_database, registry=REGISTRY) as store:
        for i in range(30):
            await store.append(f"account-{i % 3}", [NewEvent(payload=Deposited(
                account_id=f"acc-{i % 3}", amount=Decimal(i)))])
        await store.append("note-x", [NewEvent(payload=note("x"))])
    db = await asyncpg.connect(postgres_database)
    await db.execute("DROP INDEX events_account; ALTER TABLE events DROP COLUMN account_id; "
                     "DELETE FROM schema_version WHERE version = 4")
    async with open_store(postgres_database, registry=REGISTRY) as store:
        head = await store.head()
        assert await store.account_sizes(head) == [(None, 1), ("acc-0", 10), ("acc-1", 10),
                                                   ("acc-2", 10)]
        found = [e async for b in store.read_accounts(AccountRange("acc-1", "acc-1"),
                                                      upto=head) for e in b]
        assert len(found) == 10
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await db.execute("UPDATE events SET account_id = 'acc-9' WHERE position = 1")
    await db.close()
