"""Properties of the balance model and of the projection that maintains it."""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import NewEvent, open_store
from ledger.domain.programme import stream_for
from ledger.events import DomainEvent
from ledger.observations import AnySnapshot
from ledger.testing import deliveries
from projections import AccountView, ProjectionRunner, view
from projections.postings import AVAILABLE, CHAIN, HELD, MERCHANTS, journal, totals
from projections.tables import VIEW_TABLES, rows_of
from tests.support.histories import books, funded_histories, moments, record
from tests.support.postgres_cluster import new_database

SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])




async def _project(url: str, events: list[DomainEvent], batch: int, restart_at: int,
                   span: int,
                   ) -> tuple[dict[str, AccountView | None], dict[str, set[tuple[object, ...]]]]:
    async with open_store(url) as store:
        for event in events:
            await store.append(stream_for(event), [NewEvent(payload=event)])
        async with ProjectionRunner(store, batch_size=batch) as runner, runner._lead():
            async for chunk in store.read_batches(0, batch_size=restart_at):
                await runner._apply(chunk)  # part of the log, then stop
                break
        async with ProjectionRunner(store, batch_size=batch,  # restart, continue
                                    commit_every=span) as runner:
            assert await runner.catch_up() == len(events)
            views = {a: await runner.stored_view(a) for a in runner.account_ids()}
            rows = (await runner.backend.snapshot()).rows
    return views, rows


Projected = tuple[dict[str, AccountView | None], dict[str, set[tuple[object, ...]]]]


async def _project_in_parts(url: str, events: list[DomainEvent], workers: int, split: int,
                            span: int) -> Projected:
    """Rebuilt in ``workers`` parts after ``split`` events, then the rest caught up."""
    async with open_store(url) as store, ProjectionRunner(store, batch_size=7,
                                                          commit_every=span) as runner:
        for n, event in enumerate(events):
            if n == split:
                assert await runner.rebuild(workers=workers) == split
            await store.append(stream_for(event), [NewEvent(payload=event)])
        assert await runner.catch_up() == len(events)
        views = {a: await runner.stored_view(a) for a in runner.account_ids()}
        rows = (await runner.backend.snapshot()).rows
    return views, rows


def _equal_to_a_full_replay(url: str, events: list[DomainEvent], batch: int,
                            restart_at: int, span: int = 10_000) -> None:
    _equal_to_the_replay(events, *anyio.run(_project, url, events, batch, restart_at, span))


def _equal_to_the_replay(events: list[DomainEvent], views: dict[str, AccountView | None],
                         rows: dict[str, set[tuple[object, ...]]]) -> None:
    replayed = {a: view(book, None) for a, book in books(events).items()}
    assert views.keys() == replayed.keys()  # the same rows, in whatever order
    assert all(rows_of(v) == rows_of(replayed[a]) for a, v in views.items() if v is not None)
    expected: dict[str, set[tuple[object, ...]]] = {t: set() for t in VIEW_TABLES}
    for account in replayed.values():
        for table, table_rows in rows_of(account).items():
            expected[table] |= set(table_rows.values())
    assert rows == expected


@SLOW
@given(funded=funded_histories(), batch=st.integers(1, 40), restart_at=st.integers(1, 30),
       span=st.integers(1, 40))
def test_the_incremental_projection_equals_a_full_replay(
    funded: tuple[list[AnySnapshot], list[DomainEvent]], batch: int, restart_at: int,
    span: int) -> None:
    """Whatever the read batches and the commit spans (a span may end inside a batch)."""
    with tempfile.TemporaryDirectory() as directory:
        _equal_to_a_full_replay(str(Path(directory) / "l.db"), record(*funded), batch,
                                restart_at, span)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(funded=funded_histories(), workers=st.integers(2, 4), data=st.data())
def test_a_rebuild_in_parts_equals_a_full_replay(
        funded: tuple[list[AnySnapshot], list[DomainEvent]], workers: int,
        data: st.DataObject) -> None:
    """Each part folds its accounts alone, account by account; merged, then caught up, they
    are the projection of the whole log."""
    events = record(*funded)
    split = data.draw(st.integers(1, len(events)), label="split")
    span = data.draw(st.integers(1, 40), label="span")
    with tempfile.TemporaryDirectory() as directory:
        url = str(Path(directory) / "l.db")
        _equal_to_the_replay(events, *anyio.run(_project_in_parts, url, events, workers,
                                                split, span))


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(funded=funded_histories(), workers=st.integers(2, 3))
def test_a_rebuild_in_parts_on_postgresql_equals_a_full_replay(
        postgres_server: str, funded: tuple[list[AnySnapshot], list[DomainEvent]],
        workers: int) -> None:
    """The parts write into the projection's own tables there, each its accounts' rows."""
    events = record(*funded)
    url = new_database(postgres_server)
    _equal_to_the_replay(events, *anyio.run(_project_in_parts, url, events, workers,
                                            len(events) * 2 // 3 + 1, 25))


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(funded=funded_histories(), batch=st.integers(1, 40), restart_at=st.integers(1, 30))
def test_the_incremental_projection_on_postgresql_equals_a_full_replay(
    postgres_server: str, funded: tuple[list[AnySnapshot], list[DomainEvent]], batch: int,
    restart_at: int,
) -> None:
    _equal_to_a_full_replay(new_database(postgres_server), record(*funded), batch, restart_at)


@FAST
@given(funded=funded_histories(), data=st.data())
def test_duplicated_and_reordered_deliveries_give_the_same_balances_at_every_moment(
    funded: tuple[list[AnySnapshot], list[DomainEvent]], data: st.DataObject
) -> None:
    history, money = funded
    in_order = record(history, money)
    shuffled = record(data.draw(deliveries(history)), money)
    ordered_books, shuffled_books = books(in_order), books(shuffled)
    assert ordered_books.keys() == shuffled_books.keys()
    for account_id, book in ordered_books.items():
        for moment in moments(in_order):
            shuffled_view = view(shuffled_books[account_id], moment)
            ordered_view = view(book, moment)
            assert shuffled_view.balances == ordered_view.balances
            assert shuffled_view.anomalies == ordered_view.anomalies


@FAST
@given(funded=funded_histories())
def test_available_is_posted_minus_held_and_held_is_never_negative(
    funded: tuple[list[AnySnapshot], list[DomainEvent]],
) -> None:
    events = record(*funded)
    for book in books(events).values():
        for moment in [*moments(events), None]:
            for b in view(book, moment).balances:
                assert b.held >= 0
                assert b.available == b.posted - b.held
                assert b.posted == b.deposits - b.debits + b.credits
            for hold in view(book, moment).holds:
                assert 0 <= hold.remaining <= hold.amount


@FAST
@given(funded=funded_histories())
def test_every_money_movement_is_a_balanced_set_of_postings(
    funded: tuple[list[AnySnapshot], list[DomainEvent]],
) -> None:
    events = record(*funded)
    times = moments(events)
    for book in books(events).values():
        entries = journal(book, times)
        for entry in entries:
            for currency in {p.currency for p in entry.postings}:
                assert sum(p.amount for p in entry.postings if p.currency == currency) == 0
        ledger = totals(entries)
        for b in view(book, times[-1]).balances:
            mine = ledger.get((AVAILABLE, b.currency), Decimal(0)) + ledger.get(
                (HELD, b.currency), Decimal(0))
            assert mine == b.posted
            assert ledger.get((HELD, b.currency), Decimal(0)) == b.held
            outside = ledger.get((CHAIN, b.currency), Decimal(0)) + ledger.get(
                (MERCHANTS, b.currency), Decimal(0))
            assert outside == -b.posted


@FAST
@given(funded=funded_histories(), data=st.data())
def test_balances_as_of_t_equal_a_replay_of_only_what_had_happened_by_t(
    funded: tuple[list[AnySnapshot], list[DomainEvent]], data: st.DataObject
) -> None:
    events = record(*funded)
    moment = data.draw(st.sampled_from(moments(events)))
    everything = books(events)
    happened = books([e for e in events if e.at <= moment])
    for account_id, book in everything.items():
        past = happened.get(account_id)
        expected = view(past, moment).balances if past else []
        assert view(book, moment).balances == expected


async def _rows_after_every_commit(url: str, events: list[DomainEvent], batch: int) -> None:
    async with open_store(url) as store:
        for event in events:
            await store.append(stream_for(event), [NewEvent(payload=event)])
        async with ProjectionRunner(store) as runner, runner._lead():
            seen: list[DomainEvent] = []
            async for chunk in store.read_batches(0, batch_size=batch):
                await runner._apply(chunk)
                seen += [e.payload for e in chunk if isinstance(e.payload, DomainEvent)]
                expected: dict[str, set[tuple[object, ...]]] = {t: set() for t in VIEW_TABLES}
                for book in books(seen).values():
                    for table, table_rows in rows_of(view(book, None)).items():
                        expected[table] |= set(table_rows.values())
                found = (await runner.backend.snapshot()).rows
                # Contradictions are rows of the reports themselves, not of the view.
                found["anomalies"] = {r for r in found["anomalies"]
                                      if r[0] != "final_state_changed"}
                for table in VIEW_TABLES:
                    assert found[table] == expected[table], (table, len(seen))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(funded=funded_histories(), batch=st.integers(1, 12), data=st.data())
def test_the_stored_rows_equal_a_full_view_after_every_commit(
    funded: tuple[list[AnySnapshot], list[DomainEvent]], batch: int, data: st.DataObject
) -> None:
    """The incremental upkeep (``projections.live``) re-derives only what each commit touched;
    after every commit, the tables hold exactly the full view of the log so far."""
    history, money = funded
    events = record(data.draw(deliveries(history)), money)
    with tempfile.TemporaryDirectory() as directory:
        anyio.run(_rows_after_every_commit, str(Path(directory) / "l.db"), events, batch)
