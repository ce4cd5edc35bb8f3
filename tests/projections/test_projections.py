"""The balance model on histories with known answers, and the runner's behaviour."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from adapters.service.sweeper import sweep
from ledger import EventStore, NewEvent, open_store
from ledger.domain.programme import Programme, stream_for
from ledger.events import DomainEvent, FundsDeposited, HoldExpired
from projections import ProjectionRunner, view
from projections.book import AccountBook
from tests.support.known_history import (
    T0,
    auth,
    day,
    known_history,
)

pytestmark = pytest.mark.anyio














def test_balances_on_a_history_with_known_answers() -> None:
    book = AccountBook("a1")
    for event in known_history():
        book.apply(event)

    def figures(moment: datetime) -> tuple[str, ...]:
        (b,) = view(book, moment).balances
        return tuple(str(x) for x in (b.deposits, b.debits, b.credits, b.posted, b.held,
                                      b.available))

    assert figures(day(3.5)) == ("100.00", "0", "0", "100.00", "75.00", "25.00")
    # h1 partially captured: its remaining hold is 40 - 30 while it is capturing...
    assert figures(day(4.2)) == ("100.00", "30.00", "0", "70.00", "45.00", "25.00")
    # ...and 0 once captured, since the linked debit is known.
    assert figures(day(4.6)) == ("100.00", "30.00", "0", "70.00", "35.00", "35.00")
    assert figures(day(6.5)) == ("100.00", "42.00", "5.00", "63.00", "25.00", "38.00")
    # The reversed debit counts for nothing.
    assert figures(day(8)) == ("100.00", "30.00", "5.00", "75.00", "25.00", "50.00")
    # h2 was pending when the card was terminated (day 10): held until day 40, not day 32.
    assert figures(day(39.9)) == ("100.00", "30.00", "5.00", "75.00", "25.00", "50.00")
    assert figures(day(40)) == ("100.00", "30.00", "5.00", "75.00", "0", "75.00")
    (h2,) = [h for h in view(book, day(20)).holds if h.authorisation_id == "h2"]
    assert h2.expires_at == day(40)
    assert h2.card_status == "terminated, capture window open until 2026-03-13"
    tokens = {(t.kind, str(t.token_amount)) for t in view(book, day(8)).tokens}
    assert tokens == {("debit", "30.00"), ("credit", "5.00")}


@asynccontextmanager
async def ledger_with(path: Path, events: list[DomainEvent],
                      clock: object = None) -> AsyncIterator[EventStore]:
    options = {"clock": clock} if clock else {}
    async with open_store(path, **options) as store:  # type: ignore[arg-type]
        for event in events:
            await store.append(stream_for(event), [NewEvent(payload=event)])
        yield store


async def test_the_runner_follows_live_commits_and_callers_can_wait(tmp_path: Path) -> None:
    events = known_history()
    async with ledger_with(tmp_path / "l.db", events[:3]) as store, ProjectionRunner(
            store) as runner:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(runner.follow)
                for event in events[3:]:
                    result = await store.append(stream_for(event), [NewEvent(payload=event)])
                await runner.wait_for(result.last_position)
                group.cancel_scope.cancel()
        stored = await runner.stored_view("a1")
        assert stored is not None
        (balance,) = stored.balances
        assert (balance.posted, balance.held) == (Decimal("75.00"), Decimal("25.00"))
        (row,) = (await runner.backend.snapshot()).rows["balances"]
        assert row[5:] == ("75.00", "25.00", "50.00")  # posted, held, available


async def test_the_sweeper_records_each_expiry_once(tmp_path: Path) -> None:
    async with ledger_with(tmp_path / "l.db", known_history()) as store, ProjectionRunner(
            store) as runner:
        await runner.catch_up()
        assert await sweep(runner, now=day(39)) == 0
        assert await sweep(runner, now=day(45)) == 1
        assert await sweep(runner, now=day(46)) == 0
        expired = [e async for e in store.read_all(types=["HoldExpired"])]
        assert [(e.payload.authorisation_id, e.payload.at) for e in expired
                if isinstance(e.payload, HoldExpired)] == [("h2", day(40))]
        stored = await runner.stored_view("a1")
        assert stored is not None and stored.balances[0].held == 0


async def test_rebuild_gives_the_same_tables(tmp_path: Path) -> None:
    async with ledger_with(tmp_path / "l.db", known_history()) as store, ProjectionRunner(
            store, batch_size=3) as runner:
        await runner.catch_up()
        before = await runner.backend.snapshot()
        assert await runner.rebuild() == await store.head()
        after = await runner.backend.snapshot()
        assert after == before and before.rows["holds"]


async def test_tables_of_another_model_version_are_rebuilt_by_the_first_leader(
        tmp_path: Path) -> None:
    import sqlite3

    from projections.backends.sqlite import projection_file
    from projections.runner import MODEL_VERSION

    async with ledger_with(tmp_path / "l.db", known_history()) as store:
        async with ProjectionRunner(store) as runner:
            await runner.catch_up()
            before = await runner.backend.snapshot()
        # As another version of the model left them:
        with sqlite3.connect(projection_file(tmp_path / "l.db", "ledger")) as raw:
            raw.execute("UPDATE projection_models SET version = ?", (MODEL_VERSION - 1,))
            raw.execute("UPDATE holds SET remaining = '999'")
        async with ProjectionRunner(store) as outdated:
            assert outdated.outdated
            applied: list[int] = []
            outdated.on_commit = applied.append
            assert await outdated.catch_up() == await store.head()
            assert sum(applied) == await store.head()  # from position 0: what a bar shows
            assert not outdated.outdated
            assert await outdated.backend.snapshot() == before


async def test_known_at_sees_only_what_was_recorded_by_then(tmp_path: Path) -> None:
    events = known_history()
    ticks = iter(T0 + timedelta(seconds=n) for n in range(1000))
    async with ledger_with(tmp_path / "l.db", events, clock=lambda: next(ticks)) as store, \
            ProjectionRunner(store) as runner:
        await runner.catch_up()
        head = await store.head()
        # Known before the card's termination (the last event) was recorded: hold h2 still
        # expires on day 32, so on day 35 it holds nothing; knowing everything, until day 40.
        (before_termination,) = [e async for e in store.read_all(head - 2)
                                 if e.position == head - 1]
        known = await runner.view_as_of("a1", as_of=day(35),
                                        known_at=before_termination.recorded_at)
        expected = AccountBook("a1")
        for event in events[: head - 1]:
            expected.apply(event)
        assert known.balances == view(expected, day(35)).balances
        assert known.balances[0].held == 0
        assert (await runner.view_as_of("a1", as_of=day(35))).balances[0].held == Decimal(25)


async def test_settled_payments_leave_memory_and_come_back_for_a_late_report(
        tmp_path: Path) -> None:
    from projections.tables import VIEW_TABLES, rows_of

    events = known_history()
    late = Programme()
    for event in events:
        late.apply(event)
    late_events = late.observe(auth("h3", "captured", "10.00", day(3), day(12)))  # contradicts

    async def rows_equal_a_replay(runner: ProjectionRunner, log: list[DomainEvent]) -> None:
        book = AccountBook("a1")
        for event in log:
            book.apply(event)
        found = (await runner.backend.snapshot()).rows
        expected = rows_of(view(book, None))
        for table in VIEW_TABLES:
            if table not in ("anomalies", "quarantined"):
                assert found[table] == set(expected[table].values()), table

    async with ledger_with(tmp_path / "l.db", events) as store:
        async with ProjectionRunner(store, batch_size=1, commit_every=1) as runner:
            await runner.catch_up()
            live = runner._accounts["a1"]
            # h3 released, r1 processed, t2 reversed: settled; h1's debit is still processing.
            assert (set(live.book.holds), set(live.book.transactions)) == ({"h1", "h2"}, {"h1"})
            await rows_equal_a_replay(runner, events)
        async with ProjectionRunner(store) as restarted:  # only what was open is read
            live = restarted._accounts["a1"]
            assert set(live.book.holds) == {"h1", "h2"}
            for event in late_events:
                await store.append(stream_for(event), [NewEvent(payload=event)])
            await restarted.catch_up()
            await rows_equal_a_replay(restarted, events + late_events)
            stored = await restarted.stored_view("a1")
            assert stored is not None
            assert rows_of(stored) == rows_of(await restarted.view_as_of("a1"))


async def test_an_append_never_waits_for_a_projection_commit(tmp_path: Path) -> None:
    """The projection's tables are a file of their own: holding their write lock (as a long
    commit of a catch-up does) leaves the log's writers alone."""
    import sqlite3

    from projections.backends.sqlite import projection_file

    async with ledger_with(tmp_path / "l.db", known_history()) as store, ProjectionRunner(
            store) as runner:
        await runner.catch_up()
        raw = sqlite3.connect(projection_file(tmp_path / "l.db", "ledger"), isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        try:
            deposit = FundsDeposited(account_id="a1", amount=Decimal(7), currency="EUR",
                                     chain_transaction="eip155:1:0x7", at=day(50))
            with anyio.fail_after(5):  # the lock's busy timeout is 30 s
                await store.append(stream_for(deposit), [NewEvent(payload=deposit)])
        finally:
            raw.execute("ROLLBACK")
            raw.close()
        await runner.catch_up()
        assert runner.position == await store.head()


async def test_tables_an_older_release_kept_in_the_log_file_are_dropped(
        tmp_path: Path) -> None:
    """They would show stale rows to anyone reading the log's file; the projection is
    rebuilt in its own file."""
    import sqlite3

    from projections.backends.sqlite import projection_file

    async with ledger_with(tmp_path / "l.db", known_history()) as store:
        with sqlite3.connect(tmp_path / "l.db") as raw:
            raw.execute("CREATE TABLE balances (account_id TEXT, available TEXT)")
            raw.execute("INSERT INTO balances VALUES ('a1', '999')")
            raw.execute("CREATE TABLE projection_checkpoints (name TEXT, position INT)")
        async with ProjectionRunner(store) as runner:
            assert await runner.catch_up() == await store.head()
            stored = await runner.backend.snapshot()
        with sqlite3.connect(tmp_path / "l.db") as raw:
            names = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
        assert "events" in names and not names & {"balances", "projection_checkpoints"}
        assert projection_file(tmp_path / "l.db", "ledger").exists()
    async with ledger_with(tmp_path / "clean.db", known_history()) as store, ProjectionRunner(
            store) as clean:
        await clean.catch_up()
        assert stored.rows == (await clean.backend.snapshot()).rows


async def test_a_projection_of_another_log_is_rebuilt_not_continued(tmp_path: Path) -> None:
    """The log deleted and begun anew (or restored from a backup) beside the projection's
    file: its checkpoint is a position of another log, so the tables are emptied and built
    again, not continued from there."""
    path = tmp_path / "l.db"
    async with ledger_with(path, known_history()) as store, ProjectionRunner(store) as runner:
        await runner.catch_up()
    for suffix in ("", "-wal", "-shm"):
        await anyio.Path(f"{path}{suffix}").unlink(missing_ok=True)
    first = FundsDeposited(account_id="a1", amount=Decimal(7), currency="EUR",
                           chain_transaction="eip155:1:0x7", at=T0)
    other = [first, *known_history()]  # longer than the old one: its checkpoint exists here
    async with ledger_with(path, other) as store, ProjectionRunner(store) as runner:
        assert runner.position == 0
        await runner.catch_up()
        found = await runner.backend.snapshot()
    async with ledger_with(tmp_path / "clean.db", other) as store, ProjectionRunner(
            store) as clean:
        await clean.catch_up()
        assert found == await clean.backend.snapshot()
